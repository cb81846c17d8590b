"""What `run --viz` needs besides the agent: the font SimLingo's drawing loads by name, and an H.264 encoder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from simdoctor.probing import ProbeContext, probe
from simdoctor.subproc import run_bounded
from simdoctor.viz import font


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
    found = font.pillow_lookup(viz.font_name, ctx.settings.work_dir, dict(os.environ))
    source = font.source(viz)
    from simdoctor.viz import video  # imported here, not at the top: `check` starts faster

    encoder = video.find_encoder()
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
        source=str(source) if source else None,
        encoder=encoder.path if encoder else None,
        encoder_source=encoder.source if encoder else None,
        h264=h264,
        encoder_error=error,
    )
