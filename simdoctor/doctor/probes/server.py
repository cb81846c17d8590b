"""A CARLA server answering on the configured host and port, and the version it reports."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Optional

from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system import rpc

CONNECT_TIMEOUT = 0.3
RPC_TIMEOUT = 1.0


@dataclass(frozen=True)
class ServerFacts:
    host: str
    port: int
    listening: bool
    version: Optional[str]
    via: Optional[str]  # "carla client 0.9.16" or "msgpack-rpc"
    error: Optional[str]


def version_via_client(host: str, port: int, timeout: float) -> tuple[str, str]:
    """Ask through the real `carla` client library; raises ImportError when it is not installed."""
    import carla

    client = carla.Client(host, port)
    client.set_timeout(timeout)
    return client.get_server_version(), f"carla client {client.get_client_version()}"


def query_version(host: str, port: int, timeout: float) -> tuple[str, str]:
    """(version, via): the `carla` client when importable, else a direct msgpack-rpc call."""
    try:
        return version_via_client(host, port, timeout)
    except ImportError:
        return rpc.server_version(host, port, timeout), "msgpack-rpc"


@probe("server", ServerFacts, timeout=2.5, description="a CARLA server on --carla-host/--carla-port")
def probe_server(ctx: ProbeContext) -> ServerFacts:
    host, port = ctx.settings.carla_host, ctx.settings.carla_port
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        return ServerFacts(host, port, False, None, None, exc.strerror or str(exc))
    try:
        version, via = query_version(host, port, RPC_TIMEOUT)
    except (OSError, RuntimeError, rpc.RpcError) as exc:
        return ServerFacts(host, port, True, None, None, str(exc))
    return ServerFacts(host, port, True, version, via, None)
