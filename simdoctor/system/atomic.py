"""Writes that never leave a partial file under the final name: a temp file beside it, fsync, rename.

A command killed mid-write leaves either the old file or the new one, plus at most a hidden
`.NAME.*.tmp` that the next write ignores; so a killed command can be rerun and carries on.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`; the file gets the usual mode (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None or exc.filename == str(tmp):  # name the file the caller wrote, not the temp file
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A fresh hidden name beside `path` for a writer that makes the file itself (ffmpeg); renamed over
    `path` when the block succeeds, removed when it fails or is interrupted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any, indent: int = 2, sort_keys: bool = False) -> None:
    """Serialise first, so data that cannot be written never touches the disk."""
    write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def _sync_dir(directory: Path) -> None:
    """Make the rename itself durable; some filesystems cannot open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
