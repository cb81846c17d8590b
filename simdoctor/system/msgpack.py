"""The part of MessagePack that msgpack-rpc needs: nil, bool, int, float, str, bin, array, map.

Small and dependency-free so the CARLA `version` call works where the `carla` wheel cannot be
installed (its wheels cover a few CPython versions only).
"""

from __future__ import annotations

import struct
from typing import Any


class Incomplete(Exception):
    """The buffer ends inside a value: read more bytes and try again."""


def packb(obj: Any) -> bytes:
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        return _pack_int(obj)
    if isinstance(obj, float):
        return b"\xcb" + struct.pack(">d", obj)
    if isinstance(obj, str):
        data = obj.encode("utf-8")
        n = len(data)
        if n < 32:
            return bytes([0xA0 | n]) + data
        return _sized(n, (0xD9, 0xDA, 0xDB)) + data
    if isinstance(obj, (bytes, bytearray)):
        return _sized(len(obj), (0xC4, 0xC5, 0xC6)) + bytes(obj)
    if isinstance(obj, (list, tuple)):
        n = len(obj)
        head = bytes([0x90 | n]) if n < 16 else _sized(n, (None, 0xDC, 0xDD))
        return head + b"".join(packb(v) for v in obj)
    if isinstance(obj, dict):
        n = len(obj)
        head = bytes([0x80 | n]) if n < 16 else _sized(n, (None, 0xDE, 0xDF))
        return head + b"".join(packb(k) + packb(v) for k, v in obj.items())
    raise TypeError(f"cannot pack {type(obj).__name__}")


def _sized(n: int, codes: tuple) -> bytes:
    small, mid, big = codes
    if n < 0x100 and small is not None:
        return bytes([small, n])
    if n < 0x10000:
        return bytes([mid]) + struct.pack(">H", n)
    return bytes([big]) + struct.pack(">I", n)


def _pack_int(n: int) -> bytes:
    if 0 <= n < 0x80:
        return bytes([n])
    if -32 <= n < 0:
        return struct.pack(">b", n)
    if n >= 0:
        for code, fmt, limit in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16), (0xCE, ">I", 1 << 32)):
            if n < limit:
                return bytes([code]) + struct.pack(fmt, n)
        return b"\xcf" + struct.pack(">Q", n)
    for code, fmt, limit in ((0xD0, ">b", 1 << 7), (0xD1, ">h", 1 << 15), (0xD2, ">i", 1 << 31)):
        if n >= -limit:
            return bytes([code]) + struct.pack(fmt, n)
    return b"\xd3" + struct.pack(">q", n)


_FIXED = {
    0xCA: ">f", 0xCB: ">d",
    0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
    0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
}  # fmt: skip
_LENGTH = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I",
           0xDC: ">H", 0xDD: ">I", 0xDE: ">H", 0xDF: ">I"}  # fmt: skip


def unpack_from(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """Decode one value at `pos`; returns (value, next position) or raises Incomplete."""

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(buf):
            raise Incomplete
        chunk = buf[pos : pos + n]
        pos += n
        return chunk

    code = take(1)[0]
    if code < 0x80:
        return code, pos
    if code >= 0xE0:
        return code - 0x100, pos
    if 0xA0 <= code <= 0xBF:
        return take(code & 0x1F).decode("utf-8", "replace"), pos
    if 0x90 <= code <= 0x9F:
        return _items(buf, pos, code & 0x0F)
    if 0x80 <= code <= 0x8F:
        return _pairs(buf, pos, code & 0x0F)
    if code == 0xC0:
        return None, pos
    if code in (0xC2, 0xC3):
        return code == 0xC3, pos
    if code in _FIXED:
        fmt = _FIXED[code]
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0], pos
    if code in _LENGTH:
        fmt = _LENGTH[code]
        n = struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
        if code in (0xD9, 0xDA, 0xDB):
            return take(n).decode("utf-8", "replace"), pos
        if code in (0xC4, 0xC5, 0xC6):
            return take(n), pos
        if code in (0xDC, 0xDD):
            return _items(buf, pos, n)
        return _pairs(buf, pos, n)
    raise ValueError(f"unsupported msgpack type byte 0x{code:02x}")


def _items(buf: bytes, pos: int, n: int) -> tuple[list, int]:
    out = []
    for _ in range(n):
        value, pos = unpack_from(buf, pos)
        out.append(value)
    return out, pos


def _pairs(buf: bytes, pos: int, n: int) -> tuple[dict, int]:
    out = {}
    for _ in range(n):
        key, pos = unpack_from(buf, pos)
        value, pos = unpack_from(buf, pos)
        out[key] = value
    return out, pos
