"""Where the dynamic linker would find a shared library, without loading it into this process."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

DEFAULT_DIRS = (
    "/lib64",
    "/usr/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
)


@functools.lru_cache(maxsize=1)
def _ld_cache() -> dict[str, str]:
    """Name -> path from `ldconfig -p` (the ld.so.cache), 64-bit entries only."""
    ldconfig = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None
    )
    if ldconfig is None:
        return {}
    try:
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=2).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    cache: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        name, _, rest = line.strip().partition(" (")
        flags, _, path = rest.partition(") => ")
        if path and ("x86-64" in flags or "64bit" in flags or "AArch64" in flags):
            cache.setdefault(name, path)
    return cache


def resolve(name: str, env: Optional[dict[str, str]] = None) -> Optional[str]:
    """The path dlopen(name) would load: LD_LIBRARY_PATH, then ld.so.cache, then default dirs."""
    if "/" in name:
        return name if os.path.exists(name) else None
    env = os.environ if env is None else env
    for directory in filter(None, env.get("LD_LIBRARY_PATH", "").split(":")):
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    cached = _ld_cache().get(name)
    if cached:
        return cached
    for directory in DEFAULT_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return None
