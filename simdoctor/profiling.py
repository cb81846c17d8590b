"""The agent's speed on one route, from the timing wrapper's step file (simdoctor/scripts/timed_agent.py).

Peak GPU memory and peak RAM are not in the step file: the supervisor samples the route's processes
(NVML, /proc) and records them in the route's task record; `with_peaks` adds them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class RouteProfile:
    steps: int
    setup_s: Optional[float]  # the agent's setup (model load)
    step_p50_s: Optional[float]
    step_p95_s: Optional[float]
    step_max_s: Optional[float]
    steps_per_wall_s: Optional[float]  # simulation steps per wall-clock second while driving
    sim_per_wall: Optional[float]  # simulated seconds per wall second (the real-time factor)
    peak_gpu_bytes: Optional[int] = None
    peak_ram_bytes: Optional[int] = None


def percentile(values: list[float], q: float) -> Optional[float]:
    """Linear interpolation between closest ranks (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Steps:
    """The step file's content; `walls` and `sims` hold the steps that carry both clocks."""

    exists: bool
    setup_s: Optional[float]
    latencies: list[float]
    walls: list[float]
    sims: list[float]


def read_steps(path: Path) -> Steps:
    """Lines that do not parse (a torn last line of a killed agent) are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return Steps(False, None, [], [], [])
    steps = Steps(True, None, [], [], [])
    setup_s: Optional[float] = None
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("kind") == "setup" and _is_number(entry.get("setup_s")):
            setup_s = float(entry["setup_s"])
        elif entry.get("kind") == "step" and _is_number(entry.get("run_step_s")):
            steps.latencies.append(float(entry["run_step_s"]))
            if _is_number(entry.get("wall")) and _is_number(entry.get("sim_time")):
                steps.walls.append(float(entry["wall"]))
                steps.sims.append(float(entry["sim_time"]))
    return dataclasses.replace(steps, setup_s=setup_s)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def profile(steps: Steps) -> Optional[RouteProfile]:
    """The route's profile; None when the agent never wrote a step file."""
    if not steps.exists:
        return None
    walls, sims, latencies = steps.walls, steps.sims, steps.latencies
    span = walls[-1] - walls[0] if len(walls) > 1 else 0.0
    return RouteProfile(
        steps=len(latencies),
        setup_s=steps.setup_s,
        step_p50_s=percentile(latencies, 50),
        step_p95_s=percentile(latencies, 95),
        step_max_s=max(latencies) if latencies else None,
        steps_per_wall_s=(len(walls) - 1) / span if span > 0 else None,
        sim_per_wall=(sims[-1] - sims[0]) / span if span > 0 else None,
    )


def with_peaks(profile: Optional[RouteProfile], gpu: Optional[int], ram: Optional[int]) -> Optional[RouteProfile]:
    if gpu is None and ram is None:
        return profile
    base = profile or RouteProfile(0, None, None, None, None, None, None)
    return dataclasses.replace(base, peak_gpu_bytes=gpu, peak_ram_bytes=ram)
