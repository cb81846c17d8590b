"""CARLA's RPC `version` call over msgpack-rpc, for when the `carla` client cannot be imported.

Wire format (reference/carla.md §3): request [0, msgid, "version", []]; reply
[1, msgid, error, result] where result is carla::rpc::Response<std::string>, packed as a
one-element array holding the variant [index, value]: index 1 = the value, 0 = a ResponseError.
"""

from __future__ import annotations

import itertools
import socket
import time
from typing import Any

from simdoctor.system.msgpack import Incomplete, packb, unpack_from

_ids = itertools.count(1)


class RpcError(Exception):
    """The server answered with an error, or not in CARLA's format."""


def call(host: str, port: int, method: str, params: list[Any], timeout: float) -> Any:
    """One msgpack-rpc call; raises OSError (network, timeout) or RpcError (protocol)."""
    msgid = next(_ids)
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(packb([0, msgid, method, params]))
        buf = b""
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise RpcError("connection closed before a reply")
            buf += chunk
            try:
                reply, _ = unpack_from(buf)
            except Incomplete:
                continue
            break
    if not (isinstance(reply, list) and len(reply) == 4 and reply[0] == 1 and reply[1] == msgid):
        raise RpcError(f"not a msgpack-rpc reply: {reply!r:.80}")
    if reply[2] is not None:
        raise RpcError(f"server error: {reply[2]!r:.200}")
    return reply[3]


def server_version(host: str, port: int, timeout: float) -> str:
    """The server's CARLA version string, decoded from its Response<std::string>."""
    result = call(host, port, "version", [], timeout)
    if isinstance(result, list) and len(result) == 1 and isinstance(result[0], list) and len(result[0]) == 2:
        index, value = result[0]
        if index == 1 and isinstance(value, str):
            return value
        if index == 0:
            raise RpcError(f"CARLA returned an error: {value!r:.200}")
    raise RpcError(f"unexpected `version` result {result!r:.80}")
