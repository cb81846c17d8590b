"""What `run --viz` needs besides the agent: the font SimLingo's drawing loads by name, found the way the agent's
Pillow 10.2 finds it (simdoctor.run.viz.font says how), and an H.264 encoder (the one simdoctor.run.viz.video uses)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import VizRecipe
from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system.subproc import run_bounded

PILLOW_DEFAULT_DATA_DIRS = "/usr/share"  # Pillow 10.2 when XDG_DATA_DIRS is unset


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


@dataclass(frozen=True)
class Encoder:
    path: str
    source: str  # "imageio-ffmpeg" or "system"


def find_encoder() -> Optional[Encoder]:
    """imageio-ffmpeg's bundled ffmpeg, else `ffmpeg` on PATH."""
    try:
        import imageio_ffmpeg

        return Encoder(imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg")
    except (ImportError, RuntimeError):
        pass
    system = shutil.which("ffmpeg")
    return Encoder(system, "system") if system else None


@dataclass(frozen=True)
class VizFacts:
    font_name: str
    found: Optional[str]  # where the agent's Pillow opens font_name today (its working directory, XDG_DATA_DIRS)
    source: Optional[str]  # the recipe's metric-compatible font, which `run --viz` gives the agent under that name
    encoder: Optional[str]
    encoder_source: Optional[str]  # imageio-ffmpeg or system
    h264: Optional[bool]  # libx264 among its encoders
    encoder_error: Optional[str] = None


@probe("viz", VizFacts, timeout=3.0, description="the font SimLingo's debug drawing loads, ffmpeg with libx264")
def probe_viz(ctx: ProbeContext) -> VizFacts:
    viz = ctx.settings.recipe.viz
    found = pillow_lookup(viz.font_name, ctx.settings.work_dir, dict(os.environ))
    font = source(viz)
    encoder = find_encoder()
    h264 = error = None
    if encoder is not None:
        outcome = run_bounded([encoder.path, "-hide_banner", "-encoders"], timeout=2.5)
        if outcome.ok:
            h264 = any(line.split()[1:2] == ["libx264"] for line in outcome.stdout.splitlines() if line.strip())
        else:
            error = f"ffmpeg -encoders {outcome.describe()}"
    return VizFacts(
        font_name=viz.font_name,
        found=found,
        source=str(font) if font else None,
        encoder=encoder.path if encoder else None,
        encoder_source=encoder.source if encoder else None,
        h264=h264,
        encoder_error=error,
    )
