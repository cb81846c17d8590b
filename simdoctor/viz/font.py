"""The font SimLingo's debug drawing loads by file name (`ImageFont.truetype("arial.ttf", ...)`,
agent_simlingo.py:750), found the way the agent's Pillow finds it.

Pillow 10.2.0 (SimLingo's pin) tries the name as a path (relative to the working directory, the SimLingo
checkout), then walks `<d>/fonts` for each `d` in XDG_DATA_DIRS (unset: `/usr/share`), matching the file
name exactly; without a match it raises `OSError: cannot open resource` and the route fails as an agent
crash. (Pillow 10.3+ also looks in XDG_DATA_HOME; 10.2 does not, so `~/.local/share/fonts` does not help.)
`run --viz` copies a metric-compatible free font (Liberation Sans: Arial's advance widths, so the answer
band wraps as upstream's) to `<out>/viz-share/fonts/arial.ttf` and puts that folder first on the agent's
XDG_DATA_DIRS; the agent's own files are not touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from simdoctor import atomic
from simdoctor.recipe import VizRecipe

PILLOW_DEFAULT_DATA_DIRS = "/usr/share"  # Pillow 10.2 when XDG_DATA_DIRS is unset
SPEC_DEFAULT_DATA_DIRS = "/usr/local/share:/usr/share"  # the XDG default, kept for everything else


def source(viz: VizRecipe) -> Optional[Path]:
    """The first of the recipe's metric-compatible fonts installed here."""
    return next((Path(p) for p in viz.fonts if Path(p).is_file()), None)


def pillow_lookup(name: str, cwd: Path, env: dict[str, str]) -> Optional[str]:
    """Where Pillow 10.2 would open `name` from in a process with this working directory and environment."""
    if (cwd / name).is_file():
        return str(cwd / name)
    for data_dir in (env.get("XDG_DATA_DIRS") or PILLOW_DEFAULT_DATA_DIRS).split(":"):
        for root, _, files in os.walk(os.path.join(data_dir, "fonts")):
            if name in files:
                return os.path.join(root, name)
    return None


def data_dirs(share: Path, env: dict[str, str]) -> str:
    """XDG_DATA_DIRS for the agent: simdoctor's folder first, then what it was (or the XDG default)."""
    return f"{share}:{env.get('XDG_DATA_DIRS') or SPEC_DEFAULT_DATA_DIRS}"


def provide(share: Path, viz: VizRecipe) -> Optional[Path]:
    """Copy the font into `<share>/fonts/<font_name>` (atomically, once); None when no font is installed."""
    found = source(viz)
    if found is None:
        return None
    target = share / "fonts" / viz.font_name
    if not (target.is_file() and target.stat().st_size == found.stat().st_size):
        atomic.write_bytes(target, found.read_bytes())
    return target
