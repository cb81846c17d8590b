"""The model files the agent loads: present, whole (not a Git LFS pointer), and verified."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.download import hfcache, manifest

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
PARTIAL_SUFFIXES = (".incomplete", ".part", ".aria2", ".tmp")


@dataclass(frozen=True)
class WeightFile:
    role: str  # checkpoint, config, base_model
    repo: str
    local_dir: str
    relpath: str
    exists: bool
    size: Optional[int]
    lfs_pointer: bool
    partials: list[str]  # unfinished downloads of this file lying around
    in_manifest: bool
    verified: bool  # in the manifest and unchanged since it was verified


@dataclass(frozen=True)
class WeightsFacts:
    files: list[WeightFile]
    hub: Optional[hfcache.CachedRepo] = None  # the base model by hub name, in the cache the agent uses


def _partials(local_dir: Path, relpath: str) -> list[str]:
    target = local_dir / relpath
    found = [str(p) for p in target.parent.glob(target.name + "*") if p.name.endswith(PARTIAL_SUFFIXES)]
    pending = manifest.partial_path(local_dir, relpath)
    if pending.exists():
        found.append(str(pending))
    return sorted(found)


def inspect(role: str, repo: str, local_dir: Path, relpath: str, record: Optional[manifest.Manifest]) -> WeightFile:
    path = local_dir / relpath
    exists = path.is_file()
    size = path.stat().st_size if exists else None
    pointer = False
    if exists and size is not None and size < 1024:
        with open(path, "rb") as handle:
            pointer = handle.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    entry = record.files.get(relpath) if record else None
    return WeightFile(
        role=role,
        repo=repo,
        local_dir=str(local_dir),
        relpath=relpath,
        exists=exists,
        size=size,
        lfs_pointer=pointer,
        partials=_partials(local_dir, relpath),
        in_manifest=entry is not None,
        verified=exists and manifest.still_verified(path, entry),
    )


@probe("weights", WeightsFacts, timeout=2.0, description="checkpoint, Hydra config, InternVL2-1B files")
def probe_weights(ctx: ProbeContext) -> WeightsFacts:
    r = ctx.settings.recipe
    weights_dir, base_dir = Path(r.weights.local_dir), Path(r.base_model.local_dir)
    weights_manifest, base_manifest = manifest.read(weights_dir), manifest.read(base_dir)
    files = [
        inspect("checkpoint", r.weights.repo, weights_dir, r.weights.checkpoint, weights_manifest),
        inspect("config", r.weights.repo, weights_dir, r.weights.config, weights_manifest),
    ]
    files += [inspect("base_model", r.base_model.repo, base_dir, rel, base_manifest) for rel in r.base_model.required]
    b = r.base_model
    hub = hfcache.inspect(hfcache.hub_cache(os.environ), b.repo, b.revision, b.required, base_dir)
    return WeightsFacts(files, hub)
