"""CARLA's RPC `version` call over msgpack-rpc, for when the `carla` client cannot be imported.

Wire format (reference/carla.md §3): request [0, msgid, "version", []]; reply
[1, msgid, error, result] where result is carla::rpc::Response<std::string>, packed as a
one-element array holding the variant [index, value]: index 1 = the value, 0 = a ResponseError.
The MessagePack codec is the msgpack package's, imported on the first call: `check` imports this module with
its server probe, and needs the codec only when a server answers and the `carla` client is not installed.
"""

from __future__ import annotations

import itertools
import socket
import time
from typing import Any

_ids = itertools.count(1)


class RpcError(Exception):
    """The server answered with an error, or not in CARLA's format."""


def call(host: str, port: int, method: str, params: list[Any], timeout: float) -> Any:
    """One msgpack-rpc call; raises OSError (network, timeout) or RpcError (protocol)."""
    import msgpack

    msgid = next(_ids)
    deadline = time.monotonic() + timeout
    unpacker = msgpack.Unpacker(unicode_errors="replace")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(msgpack.packb([0, msgid, method, params]))
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise RpcError("connection closed before a reply")
            unpacker.feed(chunk)
            try:
                reply = unpacker.unpack()
            except msgpack.OutOfData:
                continue  # the reply arrives in pieces: read on
            except (ValueError, msgpack.UnpackException) as exc:  # not MessagePack, nested too deep, too long
                raise RpcError(f"not MessagePack: {exc}") from exc
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
