"""One simdoctor process at a time per folder: an exclusive flock on a file inside it.

flock dies with its holder (SIGKILL and power cuts included), so there is never a stale lock to clean,
and processes simdoctor starts do not inherit it (they are started with close_fds). The holder writes
who it is into the file, for the message a second process prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from simdoctor.system import safefile


class Busy(Exception):
    """Another process holds the lock; `holder` is what it wrote ("pid N, what, since HH:MM:SS")."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold `path` for the block; raises Busy at once when another process holds it (OSError when the
    file cannot be made, or is not one this user may write: simdoctor.system.safefile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = safefile.open_fd(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            raise Busy(holder or "a process that is starting") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {what}, since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        except OSError as exc:  # a full disk: name the file
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        yield
    finally:
        os.close(fd)


def holder_pid(path: Path) -> Optional[int]:
    """The pid holding a flock on `path`, read from /proc/locks: asking by trying the lock would take it
    for a moment and turn away the process it belongs to. None when nobody holds it (or it is not there)."""
    try:
        st = os.stat(path)
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in text.splitlines():
        fields = line.split()
        if "FLOCK" in fields and wanted in fields and "->" not in fields:
            try:
                return int(fields[fields.index(wanted) - 1])
            except ValueError:
                return None
    return None
