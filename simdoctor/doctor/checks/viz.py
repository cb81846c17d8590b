"""viz (with --viz): what `run --viz` needs to record SimLingo's own view without costing a route."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from simdoctor.doctor.checking import CheckContext, check, fail, ok
from simdoctor.doctor.distro import install_fix, os_of
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probing import Facts

if TYPE_CHECKING:  # names for annotations: the viz probe's module loads only for `check --viz`
    from simdoctor.doctor.probes.viz import VizFacts


@check("viz.font", "Font of SimLingo's drawing", needs=("viz",), uses=("system",))
def font(facts: Facts, ctx: CheckContext):
    v: VizFacts = facts.get("viz")
    if v.found:
        return ok(f"{v.font_name}: the agent's Pillow opens {v.found}")
    if v.source:
        return ok(
            f"{v.font_name}: run --viz gives the agent {v.source} under that name (metric-compatible with Arial, "
            "first on its XDG_DATA_DIRS)"
        )
    viz = ctx.settings.recipe.viz
    return fail(
        f"no font named {v.font_name} and no metric-compatible one to give the agent: SimLingo's drawing would "
        "raise `OSError: cannot open resource` (agent_simlingo.py:750) and every route fail as 'Agent crashed'",
        install_fix(
            ctx.settings.recipe.platform,
            os_of(facts.get("system")),
            [viz.font_package],
            f"Install Liberation Sans; run --viz then gives it to the agent as {v.font_name}.",
        ),
        [f"looked for: {p}" for p in viz.fonts],
    )


@check("viz.encoder", "Video encoder (ffmpeg, H.264)", needs=("viz",))
def encoder(facts: Facts, ctx: CheckContext):
    v: VizFacts = facts.get("viz")
    fix = Fix(
        "Install imageio-ffmpeg (a static ffmpeg with libx264) into simdoctor's interpreter.",
        [f"{sys.executable} -m pip install imageio-ffmpeg"],
    )
    if v.encoder is None:
        return fail("no ffmpeg: the routes' frames cannot become videos", fix)
    where = f"ffmpeg ({v.encoder_source}) at {v.encoder}"
    if v.encoder_error:
        return fail(f"{where} does not run: {v.encoder_error}", fix)
    if not v.h264:
        return fail(f"{where} has no libx264 encoder: no H.264 video", fix)
    return ok(f"{where}, with libx264")
