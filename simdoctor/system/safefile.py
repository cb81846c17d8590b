"""Files simdoctor opens to write in place (locks, logs, a download's partial file), in folders other users may
write too (an --out or a download folder under /tmp, a shared disk): never through what someone planted there.

O_NOFOLLOW refuses a symbolic link as the file; fstat on the opened descriptor then refuses anything but a
regular file of this user with a single link (a FIFO, a device, another user's file, a hard link to a file
elsewhere). Whole-file writes go through simdoctor.system.atomic instead, whose rename replaces a link, not its target.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

UNSAFE = "not a regular file of this user (a symbolic link, hard link, FIFO or another user's file): refusing to write"


def open_fd(path: Path, flags: int, mode: int = 0o644) -> int:
    """os.open(path, flags | O_CREAT, mode) for a file this user may safely write; OSError naming `path` when not."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise OSError(errno.ELOOP, UNSAFE, str(path)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
        os.close(fd)
        raise OSError(errno.EPERM, UNSAFE, str(path))
    os.set_blocking(fd, True)
    return fd


def open_append(path: Path) -> BinaryIO:
    """`path` opened to append (created when missing), for a log."""
    return os.fdopen(open_fd(path, os.O_WRONLY | os.O_APPEND), "ab")
