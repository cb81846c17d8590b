"""The process table, read from /proc: who runs what, and which process owns a socket.

Shared by the probes (ports, GPU processes, X servers) and by the CARLA lifecycle code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PROC = Path("/proc")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    uid: int
    comm: str
    cmdline: list[str]
    start_ticks: int = 0  # clock ticks after boot: with the pid, names one process even after pid reuse

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else f"[{self.comm}]"


def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may itself contain spaces or parentheses.
    close = raw.rfind(")")
    return [raw[raw.find("(") + 1 : close], *raw[close + 2 :].split()]


def process(pid: int) -> Optional[ProcessInfo]:
    """One process, or None when it is gone (or unreadable)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        uid = (PROC / str(pid)).stat().st_uid
    except OSError:
        return None
    args = [a.decode("utf-8", "replace") for a in cmdline if a]
    # stat fields after comm: state ppid pgrp session ... (field 22, starttime, is fields[20])
    return ProcessInfo(pid, int(fields[2]), int(fields[3]), int(fields[4]), uid, fields[0], args, int(fields[20]))


def age(pid: int) -> Optional[float]:
    """Seconds since the process started (its fork, as /proc counts it: to the clock tick, 10 ms here), or None."""
    info = process(pid)
    if info is None:
        return None
    return time.clock_gettime(time.CLOCK_BOOTTIME) - info.start_ticks / os.sysconf("SC_CLK_TCK")


def pids() -> Iterator[int]:
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            yield int(entry.name)


def processes() -> list[ProcessInfo]:
    return [p for p in map(process, pids()) if p is not None]


def is_alive(pid: int) -> bool:
    """True while the pid exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[1] != "Z"


def environ(pid: int) -> Optional[dict[str, str]]:
    """A process's environment as it was started; None when gone or not ours to read (another user)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}


def rss_bytes(pid: int) -> Optional[int]:
    """Resident memory of a process (statm's second field, in pages); None when gone or unreadable."""
    try:
        pages = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * PAGE_SIZE


def boot_id() -> str:
    """Changes at every boot: a recorded pid from another boot names nothing."""
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def matches_name(proc: ProcessInfo, name: str) -> bool:
    """True when the process's executable or comm is `name` (comm is cut to 15 characters)."""
    exe = os.path.basename(proc.cmdline[0]) if proc.cmdline else ""
    return exe == name or proc.comm == name[:15]


def socket_owners(inodes: set[int]) -> dict[int, list[int]]:
    """Map socket inodes to the pids holding them; other users' fds are unreadable without root."""
    owners: dict[int, list[int]] = {}
    if not inodes:
        return owners
    wanted = {f"socket:[{i}]": i for i in inodes}
    for pid in pids():
        fd_dir = PROC / str(pid) / "fd"
        try:
            entries = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in entries:
            try:
                target = os.readlink(fd_dir / fd)
            except OSError:
                continue
            if target in wanted:
                owners.setdefault(wanted[target], []).append(pid)
    return owners


def listening_inodes(port: int) -> set[int]:
    """Inodes of TCP sockets in LISTEN state on `port`, on any local address (IPv4 and IPv6)."""
    return listening([port])[port]


def listening(ports: Collection[int]) -> dict[int, set[int]]:
    """listening_inodes for several ports at one read of the tables, which the kernel builds slowly."""
    found: dict[int, set[int]] = {port: set() for port in ports}
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":  # 0A = TCP_LISTEN
                continue
            port = int(parts[1].rsplit(":", 1)[1], 16)
            if port in found:
                found[port].add(int(parts[9]))
    return found
