"""One download at a time per directory: an exclusive flock on `<local_dir>/.simdoctor/lock`.

flock dies with its holder (SIGKILL and power cuts included), so there is no stale lock to clean.
The holder writes who it is into the file, for the message the second run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from simdoctor import manifest
from simdoctor.download import DownloadError

LOCK = "lock"


@contextlib.contextmanager
def exclusive(local_dir: Path, what: str) -> Iterator[None]:
    path = Path(local_dir) / manifest.STATE_DIR / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "a run that is starting"
            raise DownloadError(
                f"{local_dir} is in use by another simdoctor run ({holder}); wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {what}, since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
