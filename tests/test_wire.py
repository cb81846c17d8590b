"""simdoctor's msgpack-rpc client (rpc.py, over the msgpack package) against the stand-in CARLA RPC server and
raw sockets that send a reply in pieces or bytes that are not MessagePack."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable

import msgpack
import pytest
from conftest import free_port

from simdoctor.system import rpc
from tests.standins.carla_rpc import serve


def test_rpc_client_reads_the_standin_and_reports_unknown_methods():
    port = free_port()
    server = serve(port, "0.9.15")
    try:
        assert rpc.server_version("127.0.0.1", port, 2.0) == "0.9.15"
        with pytest.raises(rpc.RpcError, match="could not find function 'load_world'"):
            rpc.call("127.0.0.1", port, "load_world", [], 2.0)
    finally:
        server.shutdown()


def test_rpc_times_out_on_a_server_that_never_answers():
    port = free_port()
    server = serve(port, "0.9.15", reply_delay=5.0)
    try:
        with pytest.raises(OSError):
            rpc.server_version("127.0.0.1", port, 0.3)
    finally:
        server.shutdown()


def answer_once(reply: Callable[[int], list[bytes]]) -> int:
    """A one-connection server on loopback: reads a request, sends reply(msgid)'s pieces 50 ms apart."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one() -> None:
        with listener, listener.accept()[0] as conn:
            request = msgpack.Unpacker()
            while True:
                request.feed(conn.recv(65536))
                message = next(request, None)
                if message is not None:
                    break
            for piece in reply(message[1]):
                conn.sendall(piece)
                time.sleep(0.05)

    threading.Thread(target=serve_one, daemon=True).start()
    return listener.getsockname()[1]


def test_rpc_reads_a_reply_that_arrives_in_pieces():
    def split(msgid: int) -> list[bytes]:
        data = msgpack.packb([1, msgid, None, [[1, "0.9.15"]]])
        return [data[:1], data[1:9], data[9:]]

    assert rpc.server_version("127.0.0.1", answer_once(split), 2.0) == "0.9.15"


def test_rpc_refuses_bytes_that_are_not_messagepack():
    with pytest.raises(rpc.RpcError, match="not MessagePack"):
        rpc.call("127.0.0.1", answer_once(lambda _: [b"\xc1"]), "version", [], 2.0)
