"""Ready means CARLA answers its RPC `version` call: poll with a deadline instead of sleeping.

The upstream evaluators sleep 30-60 s after launching CARLA and then retry the client 20 times
(reference/simlingo-bench2drive.md §1.3); polling a cheap TCP connect every POLL_S, and the
`version` call once the port accepts, reports ready within a fraction of a second of the answer.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from typing import Callable, Optional

from simdoctor.doctor.probes.server import query_version
from simdoctor.system import rpc

POLL_S = 0.05
CONNECT_TIMEOUT_S = 0.25
RPC_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Ready:
    version: str
    via: str  # "carla client 0.9.x" or "msgpack-rpc"
    seconds: float  # from launch to the first answer
    at: float  # time.time() when simdoctor saw the answer


@dataclass(frozen=True)
class Waited:
    ready: Optional[Ready]
    reason: str  # "ready", "exited" or "timeout"
    last_error: Optional[str] = None


def warm_client() -> None:
    """Import the `carla` client now, so its import time is not paid after the server answers."""
    with contextlib.suppress(ImportError):
        import carla  # noqa: F401


def wait_ready(
    host: str,
    port: int,
    timeout: float,
    alive: Callable[[], bool],
    launched: float,
    poll: float = POLL_S,
) -> Waited:
    """Poll until `version` answers, the server exits (`alive()` False) or `timeout` seconds pass.

    `launched` is the time.monotonic() of the launch."""
    warm_client()
    deadline = launched + timeout
    error = None
    while True:
        if not alive():
            return Waited(None, "exited", error)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            error = exc.strerror or str(exc)
        else:
            try:
                version, via = query_version(host, port, RPC_TIMEOUT_S)
                return Waited(Ready(version, via, round(time.monotonic() - launched, 3), time.time()), "ready")
            except (OSError, RuntimeError, rpc.RpcError) as exc:
                error = str(exc)
        if time.monotonic() >= deadline:
            return Waited(None, "timeout", error)
        time.sleep(poll)
