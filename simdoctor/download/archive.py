"""Plain-URL archives (the CARLA packages): no published checksum, so the whole gzip/tar stream is
read before the archive counts as verified, and unpacking goes through a temporary folder.

`check_stream` is the engine's extra check for an archive: every member read to its end (gzip's
CRC and length trailer included), every name kept inside the destination. `extract` unpacks beside
the destination and renames at the end, so no half-extracted tree ever carries the final name.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional
from urllib.parse import unquote, urlsplit

from simdoctor.config.settings import redact_url
from simdoctor.download import DownloadError

READ = 1 << 20


def archive_name(url: str) -> str:
    """The file name a URL's path ends in (what `wget` would save it as)."""
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    if not name or name in (".", ".."):
        raise DownloadError(f"cannot tell a file name from the URL {redact_url(url)}")
    return name


def _unsafe(member: tarfile.TarInfo) -> Optional[str]:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        return "absolute or climbing with `..`"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        if target.is_absolute() or ".." in (name.parent / target).parts:
            return f"a link pointing outside ({member.linkname})"
    if member.isdev():
        return "a device file"
    return None


def check_stream(path: Path) -> None:
    """Read every member to its end: a truncated or corrupt archive raises DownloadError."""
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                why = _unsafe(member)
                if why:
                    raise DownloadError(f"{path.name}: member {member.name!r} is {why}; refusing this archive")
                if member.isfile():
                    data = tar.extractfile(member)
                    while data is not None and data.read(READ):
                        pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DownloadError(f"{path.name} is not a complete gzip/tar archive: {exc}") from None


def extract(archive: Path, dest: Path) -> None:
    """Unpack into a temporary folder beside `dest`, then rename it to `dest` (absent or empty)."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DownloadError(f"{dest} already exists and is not empty; move it away first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Python without extraction filters; check_stream vetted the names
                tar.extractall(tmp)
        os.chmod(tmp, 0o755)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"extracting {archive.name} into {dest} failed: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
