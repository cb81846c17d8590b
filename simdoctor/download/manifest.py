"""The record of verified downloads kept beside them: `<local_dir>/.simdoctor/manifest.json`.

A file whose size and mtime still match its entry was hashed and matched the pinned hash when
it was written, so `check` and a re-run of `download` trust it without reading it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor.config.typed import DataError, from_data, to_data
from simdoctor.system import atomic

STATE_DIR = ".simdoctor"
MANIFEST = "manifest.json"
PARTIAL_DIR = "partial"  # in-flight downloads: <local_dir>/.simdoctor/partial/<relpath>
PROGRESS_DIR = "progress"  # how far each chunk of an in-flight download is on disk: progress/<hash>.json
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FileRecord:
    size: int
    mtime_ns: int
    sha256: Optional[str] = None
    git_sha1: Optional[str] = None


@dataclass(frozen=True)
class Manifest:
    source: str  # e.g. "hf:model/RenzKa/simlingo@<commit>" or the URL of an archive
    files: dict[str, FileRecord] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION


def manifest_path(local_dir: Path) -> Path:
    return Path(local_dir) / STATE_DIR / MANIFEST


def partial_path(local_dir: Path, relpath: str) -> Path:
    return Path(local_dir) / STATE_DIR / PARTIAL_DIR / relpath


def progress_path(local_dir: Path, relpath: str) -> Path:
    """Kept apart from the partial data and named by a hash of the remote path, so no remote name
    can collide with it or make its name too long for the filesystem."""
    import hashlib  # here: check imports this module for its records, and hashlib loads OpenSSL

    return Path(local_dir) / STATE_DIR / PROGRESS_DIR / f"{hashlib.sha256(relpath.encode()).hexdigest()}.json"


def read(local_dir: Path) -> Optional[Manifest]:
    """The manifest, or None when there is none or it cannot be trusted (then nothing counts as verified)."""
    try:
        data = json.loads(manifest_path(local_dir).read_text(encoding="utf-8"))
        manifest = from_data(Manifest, data)
    except (OSError, ValueError, DataError):
        return None
    return manifest if manifest.schema_version == SCHEMA_VERSION else None


def write(local_dir: Path, manifest: Manifest) -> None:
    """Atomically replace the manifest (simdoctor.system.atomic: temp file, fsync, rename)."""
    atomic.write_json(manifest_path(local_dir), to_data(manifest), indent=1, sort_keys=True)


def still_verified(path: Path, record: Optional[FileRecord]) -> bool:
    """True when the file on disk is the one that was verified: same size, same mtime."""
    if record is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == record.size and st.st_mtime_ns == record.mtime_ns
