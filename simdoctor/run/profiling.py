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


def percentile(values: list[float], q: float, presorted: bool = False) -> Optional[float]:
    """Linear interpolation between closest ranks (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = values if presorted else sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Latency histogram buckets: 0 holds steps under FLOOR_S; bucket i >= 1 holds FLOOR_S * RATIO**(i-1) up to
# FLOOR_S * RATIO**i. A percentile over many routes, from their merged histograms, is within 1 % of the exact one.
FLOOR_S = 1e-6
RATIO = 1.02
_LOG_RATIO = math.log(RATIO)


@dataclass(frozen=True)
class StepSummary:
    """One attempt's step file, summarised once when the attempt ends (simdoctor.run.supervisor), so that
    `report` reads one small record per route instead of every step: its own figures exactly, and a
    latency histogram to merge with the other routes' for the percentiles over all of them."""

    steps: int  # steps with a latency
    setup_s: Optional[float]
    step_p50_s: Optional[float]
    step_p95_s: Optional[float]
    step_max_s: Optional[float]
    intervals: int  # steps that carry both clocks, less one
    wall_s: float  # wall seconds those steps span
    sim_s: float  # simulated seconds they span
    bucket_first: int = 0  # the first bucket of bucket_counts
    bucket_counts: list[int] = dataclasses.field(default_factory=list)  # steps per bucket, from bucket_first on


def bucket(latency: float) -> int:
    return 0 if latency < FLOOR_S else 1 + int(math.log(latency / FLOOR_S) / _LOG_RATIO)


def bucket_value(index: int) -> float:
    """The middle of a bucket (geometric), 0 for the first."""
    return 0.0 if index == 0 else FLOOR_S * RATIO ** (index - 0.5)


def summarize(path: Path) -> Optional[StepSummary]:
    """The step file's summary; None when the agent never wrote one. Lines that do not parse (a torn last
    line of a killed agent) are skipped. Only this route's latencies are held, while it is read."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError:
        return None
    latencies: list[float] = []
    setup_s: Optional[float] = None
    first: Optional[tuple[float, float]] = None
    last: Optional[tuple[float, float]] = None
    clocked = 0
    with handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(entry, dict):
                continue
            if entry.get("kind") == "setup" and _is_number(entry.get("setup_s")):
                setup_s = float(entry["setup_s"])
            elif entry.get("kind") == "step" and _is_number(entry.get("run_step_s")):
                latencies.append(float(entry["run_step_s"]))
                if _is_number(entry.get("wall")) and _is_number(entry.get("sim_time")):
                    last = (float(entry["wall"]), float(entry["sim_time"]))
                    first = first or last
                    clocked += 1
    counts: dict[int, int] = {}
    for latency in latencies:
        index = bucket(latency)
        counts[index] = counts.get(index, 0) + 1
    low = min(counts, default=0)
    latencies.sort()
    return StepSummary(
        steps=len(latencies),
        setup_s=setup_s,
        step_p50_s=percentile(latencies, 50, presorted=True),
        step_p95_s=percentile(latencies, 95, presorted=True),
        step_max_s=latencies[-1] if latencies else None,
        intervals=max(clocked - 1, 0),
        wall_s=last[0] - first[0] if first and last else 0.0,
        sim_s=last[1] - first[1] if first and last else 0.0,
        bucket_first=low,
        bucket_counts=[counts.get(i, 0) for i in range(low, max(counts, default=-1) + 1)],
    )


def _is_number(value: object) -> bool:
    """A finite number: json reads NaN and Infinity, which would make the report's JSON invalid."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def profile(summary: Optional[StepSummary]) -> Optional[RouteProfile]:
    """The route's profile; None when the agent never wrote a step file."""
    if summary is None:
        return None
    span = summary.wall_s
    return RouteProfile(
        steps=summary.steps,
        setup_s=summary.setup_s,
        step_p50_s=summary.step_p50_s,
        step_p95_s=summary.step_p95_s,
        step_max_s=summary.step_max_s,
        steps_per_wall_s=summary.intervals / span if span > 0 else None,
        sim_per_wall=summary.sim_s / span if span > 0 else None,
    )


def merged_histogram(summaries: list[StepSummary]) -> list[tuple[int, int]]:
    """(bucket, steps) over these routes, in bucket order."""
    counts: dict[int, int] = {}
    for s in summaries:
        for index, n in enumerate(s.bucket_counts, s.bucket_first):
            if n:
                counts[index] = counts.get(index, 0) + n
    return sorted(counts.items())


def histogram_percentile(histogram: list[tuple[int, int]], q: float) -> Optional[float]:
    """The q-th percentile (as `percentile` interpolates) of the steps in a merged histogram, within 1 %."""
    total = sum(n for _, n in histogram)
    if not total:
        return None
    position = (total - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    values, seen = {}, 0
    for index, n in histogram:
        for rank in (low, high):
            if seen <= rank < seen + n:
                values[rank] = bucket_value(index)
        seen += n
        if seen > high:
            break
    return values[low] + (values[high] - values[low]) * (position - low)


def with_peaks(profile: Optional[RouteProfile], gpu: Optional[int], ram: Optional[int]) -> Optional[RouteProfile]:
    if gpu is None and ram is None:
        return profile
    base = profile or RouteProfile(0, None, None, None, None, None, None)
    return dataclasses.replace(base, peak_gpu_bytes=gpu, peak_ram_bytes=ram)
