"""Our MessagePack subset and msgpack-rpc client against independent implementations."""

from __future__ import annotations

import msgpack as reference
import pytest
from conftest import free_port

from simdoctor.system import rpc
from simdoctor.system.msgpack import Incomplete, packb, unpack_from
from tests.standins.carla_rpc import serve

VALUES = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**63 - 1, -1, -32, -33, -128, -129,
    -32768, -32769, -(2**31), -(2**63), 1.5, -0.25, "", "a" * 31, "b" * 32, "ü" * 300, "c" * 70000,
    b"", b"\x00" * 300, b"x" * 70000, [], [1, "x", None], list(range(16)), list(range(70000)),
    {}, {"a": 1}, {str(i): i for i in range(16)}, [[1, "0.9.15"]], {"k": [1, {"n": None}]},
]  # fmt: skip


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:30])
def test_pack_matches_the_reference_implementation(value):
    assert reference.unpackb(packb(value), raw=False, strict_map_key=False) == value
    assert unpack_from(reference.packb(value, use_bin_type=True)) == (value, len(reference.packb(value)))


def test_truncated_input_is_incomplete_not_garbage():
    data = packb([1, 2, "version", ["x" * 100]])
    for cut in range(len(data)):
        with pytest.raises(Incomplete):
            unpack_from(data[:cut])


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
