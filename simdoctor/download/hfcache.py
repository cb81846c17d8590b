"""The Hugging Face hub cache, laid out as huggingface_hub lays it out, filled from a verified download.

SimLingo's agent loads its base model by hub name (`AutoProcessor/AutoModel/AutoConfig.from_pretrained(
"OpenGVLab/InternVL2-1B")`, the variant of the released Hydra config), and `run` sets HF_HUB_OFFLINE=1: then
transformers finds a repo id only in the hub cache, never in `pretrained/InternVL2-1B/`
(reference/upstream-behaviour.md §4). The layout: `<cache>/models--<org>--<name>/blobs/<etag>`,
`refs/<revision>` holding the commit, `snapshots/<commit>/<path> -> ../../blobs/<etag>`, where the etag is the
file's sha256 (LFS files) or git blob sha1 (files kept in git): the very hashes the download verified, read
from its manifest. Blobs are hard links to the downloaded files, so the bytes exist once (and a later
re-download, which replaces a file rather than writing into it, leaves a blob's content matching its name);
where the two places are on different filesystems, a blob is a symlink to the file instead.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.download import manifest
from simdoctor.system import atomic

LINK_ERRORS = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES)  # no hard link possible here: symlink


class CacheError(Exception):
    """The download cannot be put into the cache (no verified download of a hub repo there)."""


def hub_cache(env: Mapping[str, str]) -> Path:
    """The cache huggingface_hub uses under `env` (its constants.py): HF_HUB_CACHE, the legacy
    HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface, ~/.cache/..."""
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expanduser(cache))


def repo_folder(cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    return cache / f"{repo_type}s--{repo_id.replace('/', '--')}"


def downloaded(local_dir: Path) -> tuple[str, str, str, manifest.Manifest]:
    """(repo type, repo id, commit, manifest) of the verified hub download in `local_dir`."""
    record = manifest.read(local_dir)
    if record is None or not record.source.startswith("hf:") or "@" not in record.source:
        raise CacheError(f"{local_dir} holds no verified download of a Hugging Face repo (no simdoctor manifest)")
    kind, rest = record.source[len("hf:") :].split("/", 1)
    repo_id, commit = rest.rsplit("@", 1)
    return kind, repo_id, commit, record


def link(local_dir: Path, cache: Path, revision: str) -> Path:
    """Put every verified file of `local_dir`'s download into the cache (links only) and point
    refs/<revision> at its commit; returns the snapshot folder. Files changed since they were verified
    are refused. Rerunning it changes nothing that is already right."""
    kind, repo_id, commit, record = downloaded(local_dir)
    folder = repo_folder(cache, repo_id, kind)
    for relpath, entry in sorted(record.files.items()):
        etag = entry.sha256 or entry.git_sha1
        source = local_dir / relpath
        if etag is None:
            continue
        if not manifest.still_verified(source, entry):
            raise CacheError(f"{source} changed since it was verified: run `simdoctor download --verify-only` first")
        blob = folder / "blobs" / etag
        _place_blob(source, blob)
        pointer = folder / "snapshots" / commit / relpath
        _symlink(os.path.relpath(blob, pointer.parent), pointer)
    ref = folder / "refs" / revision
    if not (ref.is_file() and ref.read_text(encoding="utf-8") == commit):
        atomic.write_text(ref, commit)
    return folder / "snapshots" / commit


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")  # secrets.token_hex(4), without its imports


def _place_blob(source: Path, blob: Path) -> None:
    if blob.exists() and os.path.samefile(source, blob):
        return
    blob.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp(blob)
    try:
        os.link(source, temp)
    except OSError as exc:
        if exc.errno not in LINK_ERRORS:
            raise
        os.symlink(source.resolve(), temp)
    os.replace(temp, blob)


def _symlink(target: str, path: Path) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp(path)
    os.symlink(target, temp)
    os.replace(temp, path)


@dataclass(frozen=True)
class CachedRepo:
    """What resolving a repo id offline would find in the cache."""

    cache: str
    folder: str
    revision: str
    commit: Optional[str]  # refs/<revision>, None when there is none
    missing: list[str]  # required files that do not resolve under snapshots/<commit>
    downloaded_commit: Optional[str]  # the commit of the verified download in the local folder


def inspect(cache: Path, repo_id: str, revision: str, required: list[str], local_dir: Path) -> CachedRepo:
    folder = repo_folder(cache, repo_id)
    try:
        commit: Optional[str] = (folder / "refs" / revision).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        commit = None
    snapshot = folder / "snapshots" / (commit or "-")
    missing = [rel for rel in required if commit is None or not (snapshot / rel).is_file()]
    try:
        local = downloaded(local_dir)[2]
    except CacheError:
        local = None
    return CachedRepo(str(cache), str(folder), revision, commit, missing, local)
