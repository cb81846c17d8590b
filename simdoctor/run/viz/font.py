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

from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import VizRecipe
from simdoctor.doctor.probes.viz import source
from simdoctor.system import atomic

SPEC_DEFAULT_DATA_DIRS = "/usr/local/share:/usr/share"  # the XDG default, kept for everything else


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
