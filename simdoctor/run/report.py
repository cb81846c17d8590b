"""`simdoctor report OUT`: Bench2Drive's scores over the routes of a run, where they failed, how fast the agent was.

Definitions (Bench2Drive tools/merge_route_json.py, reference §2.6), taken over the route set, i.e. the
routes written under OUT/routes/:
- Driving Score = sum of score_composed / number of routes; a route without a record scores 0.
- Success Rate = routes whose status is Completed or Perfect with no non-empty infraction list other than
  min_speed_infractions / number of routes.
Upstream divides by the constant 220 (the same for the full Bench2Drive set, wrong for any other set);
SimLingo's copy drops 'Failed - Agent crashed' records and divides by the records left, so a route that
crashed or never ran does not count at all. OUT/merged.json has merge_route_json.py's format (records
without 'index', sorted by route_id descending; 'driving score' 0-100, 'success rate' a fraction,
'eval num' = records) so Bench2Drive's ability and efficiency/smoothness tools read it unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import ConfigError, RunRecipe
from simdoctor.config.settings import Settings
from simdoctor.config.typed import to_data
from simdoctor.doctor.findings import Fix
from simdoctor.run import profiling, results, routes
from simdoctor.run.outdir import Layout
from simdoctor.system import atomic, terminal

REPORT_SCHEMA_VERSION = 1
SLOWEST = 5
# The leaderboard's order of infraction kinds (statistics_manager.py `values`).
INFRACTION_ORDER = (
    "collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light", "stop_infraction",
    "outside_route_lanes", "route_dev", "route_timeout", "vehicle_blocked", "yield_emergency_vehicle_infractions",
    "scenario_timeouts", "min_speed_infractions",
)  # fmt: skip
OUTSIDE_LANES = "outside_route_lanes"
OUTSIDE_METERS = re.compile(r"for about ([0-9.]+) meters")
MISSING = "missing"
MERGED = "merged.json"  # merge_route_json.py's output, skipped by its own glob


@dataclass(frozen=True)
class RouteRow:
    route_id: str
    town: str
    scenario_type: Optional[str]
    status: str  # the record's status, or "missing" when no record was written
    success: bool
    score_composed: float  # 0 when missing
    score_route: float
    score_penalty: float
    route_length: float
    duration_game: Optional[float]
    duration_system: Optional[float]
    attempts: int  # from simdoctor's task record; 0 when there is none
    crashed: bool  # the last attempt failed on infrastructure (see results.RETRY_STATUSES)
    reason: Optional[str]
    log: list[results.LogFinding] = field(default_factory=list)
    profile: Optional[profiling.RouteProfile] = None
    fix: Optional[Fix] = None  # for a route whose CARLA died: what `check` says to do


@dataclass(frozen=True)
class GroupRow:
    name: str
    routes: int
    evaluated: int
    driving_score: float
    success_rate: float  # percent
    crashed: int


@dataclass(frozen=True)
class Definition:
    """DS and SR by one of the three definitions in use; they differ on any set but the full 220 routes run
    without a crash (module docstring)."""

    name: str  # routes_run, bench2drive, simlingo
    label: str
    divisor: int
    driving_score: Optional[float]  # 0-100; None when the divisor is 0
    success_rate: Optional[float]  # percent


@dataclass(frozen=True)
class Speed:
    """The agent over every timed step of every route."""

    routes: int
    steps: int
    step_p50_s: Optional[float]
    step_p95_s: Optional[float]
    step_max_s: Optional[float]
    steps_per_wall_s: Optional[float]
    sim_per_wall: Optional[float]
    peak_gpu_bytes: Optional[int]
    peak_ram_bytes: Optional[int]


@dataclass(frozen=True)
class Report:
    out: str
    routes: int
    evaluated: int  # routes with a record
    driving_score: Optional[float]  # 0-100
    success_rate: Optional[float]  # percent
    successes: int
    statuses: dict[str, int]
    missing: list[str]
    crashed: list[str]
    km_driven: float  # route length x completion over the records; 0 when nothing was driven
    # Counts per km driven, None when nothing was driven; outside_route_lanes: km outside the lanes, as the leaderboard
    infractions_per_km: dict[str, Optional[float]]
    infraction_counts: dict[str, int]  # over the records, outside_route_lanes included
    towns: list[GroupRow]
    scenario_types: list[GroupRow]
    slowest: list[str]
    speed: Speed
    rows: list[RouteRow]
    merged_file: str
    definitions: list[Definition] = field(default_factory=list)
    metric_dir: str = ""  # efficiency_smoothness_benchmark.py's --metric_dir, filled by publish
    metric_files: int = 0  # records whose metric_info.json it links
    tools: list[str] = field(default_factory=list)  # the exact command of each Bench2Drive tool on this folder


def document(report: Report | SeedsReport) -> dict:
    """What `report --json` prints for a run folder, an upstream folder or a folder of seeds."""
    return {"schema_version": REPORT_SCHEMA_VERSION, **to_data(report)}


def route_number(record_route_id: str) -> str:
    """RouteScenario_<id>_rep<n> -> <id> (ability_benchmark.py's split('_')[1], allowing '_' in ids)."""
    body = record_route_id.split("_", 1)[1] if "_" in record_route_id else record_route_id
    return body.rsplit("_rep", 1)[0]


def route_row(
    route: routes.Route, layout: Layout
) -> tuple[RouteRow, Optional[results.RouteRecord], Optional[profiling.StepSummary]]:
    """The route's row, its record, and its steps: summarised in its task record when its last attempt ended,
    else (a folder of an older simdoctor, an attempt cut short) read from its step file."""
    found = results.read_results(layout.results_file(route.id))
    record = found.last
    reason = found.error if record is None else None
    if record is not None and route_number(record.route_id) != route.id:
        reason, record = f"{found.path} holds {record.route_id}, not route {route.id}", None
    task = results.read_task(layout.task_file(route.id))
    last = task.last if task else None
    if last is not None and last.reason:
        reason = last.reason
    steps = (
        last.steps if last is not None and last.steps is not None else profiling.summarize(layout.steps_file(route.id))
    )
    timed = profiling.profile(steps)
    profile = profiling.with_peaks(timed, last.peak_gpu_bytes, last.peak_ram_bytes) if last else timed
    crashed = (task is not None and task.final == "crashed") or (
        record is not None and record.kind is results.Kind.RETRY
    )
    row = RouteRow(
        route_id=route.id,
        town=route.town,
        scenario_type=route.scenario_type,
        status=record.status if record else MISSING,
        success=record.success if record else False,
        score_composed=record.score_composed if record else 0.0,
        score_route=record.score_route if record else 0.0,
        score_penalty=record.score_penalty if record else 0.0,
        route_length=record.route_length if record else 0.0,
        duration_game=record.duration_game if record else None,
        duration_system=record.duration_system if record else None,
        attempts=len(task.attempts) if task else 0,
        crashed=crashed,
        reason=reason if (crashed or record is None) else None,
        log=list(last.log) if last else [],
        profile=profile,
        fix=last.fix if last and (crashed or record is None) else None,
    )
    return row, record, steps


def infractions_per_km(
    records: list[results.RouteRecord],
) -> tuple[float, dict[str, Optional[float]], dict[str, int]]:
    """As the leaderboard's global record: counts per km driven (route length x completion), except
    outside_route_lanes, which is the km driven outside the lanes (statistics_manager.py); and the counts.
    The leaderboard divides by at least 0.001 km (its lines 490-500), which made one collision on routes that never
    moved '1000 per km': here a rate over nothing driven is None, and km is not rounded to a floor."""
    km = sum(r.route_length / 1000 * r.score_route / 100 for r in records)
    names = [*INFRACTION_ORDER, *sorted({k for r in records for k in r.infractions} - set(INFRACTION_ORDER))]
    counts = {name: sum(len(r.infractions.get(name, [])) for r in records) for name in names}
    values: dict[str, Optional[float]] = {}
    for name in names:
        if name == OUTSIDE_LANES:
            first = [r.infractions[name][0] for r in records if r.infractions.get(name)]
            meters = [float(m.group(1)) for m in map(OUTSIDE_METERS.search, first) if m]
            values[name] = round(sum(meters) / 1000, 3)
        else:
            values[name] = round(counts[name] / km, 3) if km > 0 else None
    return round(km, 6), values, counts


def _group(name: str, rows: list[RouteRow]) -> GroupRow:
    return GroupRow(
        name=name,
        routes=len(rows),
        evaluated=sum(r.status != MISSING for r in rows),
        driving_score=sum(r.score_composed for r in rows) / len(rows),
        success_rate=100 * sum(r.success for r in rows) / len(rows),
        crashed=sum(r.crashed for r in rows),
    )


def _groups(rows: list[RouteRow], key) -> list[GroupRow]:
    by: dict[str, list[RouteRow]] = {}
    for row in rows:
        by.setdefault(key(row) or "?", []).append(row)
    return [_group(name, members) for name, members in sorted(by.items())]


def _speed(rows: list[RouteRow], route_steps: list[profiling.StepSummary]) -> Speed:
    """Over every timed step of every route: percentiles from the routes' merged histograms (within 1 %)."""
    timed = [s for s in route_steps if s.steps]
    histogram = profiling.merged_histogram(timed)
    steps = sum(s.intervals for s in timed)
    spans = sum(s.wall_s for s in timed if s.intervals)
    sim = sum(s.sim_s for s in timed if s.intervals)
    gpu = [r.profile.peak_gpu_bytes for r in rows if r.profile and r.profile.peak_gpu_bytes is not None]
    ram = [r.profile.peak_ram_bytes for r in rows if r.profile and r.profile.peak_ram_bytes is not None]
    return Speed(
        routes=len(timed),
        steps=sum(s.steps for s in timed),
        step_p50_s=profiling.histogram_percentile(histogram, 50),
        step_p95_s=profiling.histogram_percentile(histogram, 95),
        step_max_s=max((s.step_max_s for s in timed if s.step_max_s is not None), default=None),
        steps_per_wall_s=steps / spans if spans > 0 else None,
        sim_per_wall=sim / spans if spans > 0 else None,
        peak_gpu_bytes=max(gpu) if gpu else None,
        peak_ram_bytes=max(ram) if ram else None,
    )


def merged(records: list[results.RouteRecord], report: Report) -> dict:
    """merge_route_json.py's output for these records, with this report's scores."""
    rows = [{k: v for k, v in r.raw.items() if k != "index"} for r in records]
    rows.sort(key=lambda d: d["route_id"], reverse=True)
    return {
        "_checkpoint": {"records": rows},
        "driving score": report.driving_score,
        "success rate": None if report.success_rate is None else report.success_rate / 100,
        "eval num": len(rows),
    }


def build(out: Path, names: RunRecipe) -> tuple[Report, list[results.RouteRecord]]:
    layout = Layout(Path(out).expanduser().resolve(), names)
    if not layout.root.is_dir():
        raise ConfigError(f"{out}: no such folder" if not layout.root.exists() else f"{out} is a file, not a folder")
    if not layout.routes_dir.is_dir():
        raise ConfigError(f"{out} is not a `simdoctor run` output folder (no {names.routes_dir}/ in it)")
    route_set = [t.route for t in routes.read_routes(layout.routes_dir)]
    rows, records, route_steps = [], [], []
    for route in route_set:
        row, record, steps = route_row(route, layout)
        rows.append(row)
        records += [record] if record is not None else []
        route_steps += [steps] if steps is not None else []
    return summarize(str(layout.root), rows, records, route_steps, str(layout.merged_file)), records


def summarize(
    out: str,
    rows: list[RouteRow],
    records: list[results.RouteRecord],
    route_steps: list[profiling.StepSummary],
    merged_file: str,
    over: str = "routes run",
) -> Report:
    """The report over `rows` (one per route, or per record of an upstream folder) and their `records`."""
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    km, per_km, counts = infractions_per_km(records)
    count = len(rows)
    successes = sum(r.success for r in rows)
    timed = [r for r in rows if r.duration_system is not None]
    return Report(
        out=out,
        routes=count,
        evaluated=len(records),
        driving_score=sum(r.score_composed for r in rows) / count if count else None,
        success_rate=100 * successes / count if count else None,
        successes=successes,
        statuses=dict(sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0]))),
        missing=[r.route_id for r in rows if r.status == MISSING],
        crashed=[r.route_id for r in rows if r.crashed],
        km_driven=km,
        infractions_per_km=per_km,
        infraction_counts=counts,
        towns=_groups(rows, lambda r: r.town),
        scenario_types=_groups(rows, lambda r: r.scenario_type),
        slowest=[r.route_id for r in sorted(timed, key=lambda r: -(r.duration_system or 0))[:SLOWEST]],
        speed=_speed(rows, route_steps),
        rows=rows,
        merged_file=merged_file,
        definitions=definitions(rows, records, over),
    )


BENCH2DRIVE_ROUTES = 220  # merge_route_json.py's divisor
AGENT_CRASHED = "Failed - Agent crashed"  # the status SimLingo's copy of merge_route_json.py drops


def _definition(name: str, label: str, divisor: int, scores: float, successes: int) -> Definition:
    if not divisor:
        return Definition(name, label, 0, None, None)
    return Definition(name, label, divisor, scores / divisor, 100 * successes / divisor)


def definitions(rows: list[RouteRow], records: list[results.RouteRecord], over: str = "routes run") -> list[Definition]:
    """The routes run (simdoctor: a route without a record scores 0), Bench2Drive's tools/merge_route_json.py
    (every record / 220), SimLingo's copy of it (records but 'Failed - Agent crashed' / the records kept)."""
    kept = [r for r in records if r.status != AGENT_CRASHED]
    return [
        _definition("routes_run", f"over the {len(rows)} {over}" + (" (no record: 0)" if over == "routes run" else ""),
                    len(rows),
                    sum(r.score_composed for r in rows), sum(r.success for r in rows)),
        _definition("bench2drive", "Bench2Drive merge_route_json.py (÷ 220)", BENCH2DRIVE_ROUTES,
                    sum(r.score_composed for r in records), sum(r.success for r in records)),
        _definition("simlingo", f"SimLingo's copy (drops '{AGENT_CRASHED}', ÷ {len(kept)} kept)", len(kept),
                    sum(r.score_composed for r in kept), sum(r.success for r in kept)),
    ]  # fmt: skip


def _seconds(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _distance(km: float) -> str:
    """km to the metre, or in metres under one, which would read 0.000 km."""
    return f"{km:.3f} km" if km >= 0.001 else f"{km * 1000:.3g} m"


def _gib(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / 2**30:.1f}"


def show(report: Report, out) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from simdoctor.doctor.render import fit, say, shell_lines

    say(out, f"simdoctor report · {report.out} · {report.routes} routes", hang=2, style="bold")
    if report.driving_score is not None:
        out.print(
            Text(
                f"Driving Score {report.driving_score:.2f}   Success Rate {report.success_rate:.2f} % "
                f"({report.successes} of {report.routes})",
                style="bold",
            )
        )
    say(out, f"evaluated {report.evaluated} · missing {len(report.missing)} (count as failed, score 0) · "
        f"crashed {len(report.crashed)}", hang=2)  # fmt: skip
    for d in report.definitions:
        if d.driving_score is not None:
            head = f"  DS {d.driving_score:6.2f}  SR {d.success_rate:6.2f} %   "
            first, *rest = fit(d.label, out.width, len(head), len(head))
            out.print(Text(head + first[len(head) :]))
            for line in rest:
                out.print(Text(line))
    say(out, "statuses: " + ", ".join(f"{status} {n}" for status, n in report.statuses.items()), hang=2)
    out.print()
    if report.km_driven > 0:
        say(out, f"infractions per km ({_distance(report.km_driven)} driven; outside_route_lanes in km)", style="bold")
        say(out, ", ".join(f"{k} {v:g}" for k, v in report.infractions_per_km.items()), indent=2)
    else:
        counted = ", ".join(f"{k} {n}" for k, n in report.infraction_counts.items() if n)
        say(out, "infractions: nothing was driven (0 km), " + (f"so no rate per km; counted: {counted}" if counted
            else "none counted"), hang=2, style="bold")  # fmt: skip

    def groups(title: str, rows: list[GroupRow]) -> None:
        table = Table(title=title, box=box.SIMPLE, title_justify="left", title_style="bold")
        for column in ("", "routes", "evaluated", "DS", "SR %", "crashed"):
            table.add_column(column, justify="left" if not column else "right")
        for g in rows:
            table.add_row(g.name, str(g.routes), str(g.evaluated), f"{g.driving_score:.2f}", f"{g.success_rate:.1f}",
                          str(g.crashed))  # fmt: skip
        out.print(table)

    groups("by town", report.towns)
    groups("by scenario type", report.scenario_types)
    by_id = {r.route_id: r for r in report.rows}
    if report.slowest:
        say(out, "slowest routes (system and game seconds, run_step p50/p95/max s, steps/s, peak GPU/RAM GiB)",
            hang=2, style="bold")  # fmt: skip
        table = Table(box=box.SIMPLE, pad_edge=False)
        for column in ("route", "town", "system", "game", "step", "steps/s", "GPU", "RAM", "status"):
            table.add_column(column, justify="left" if column in ("route", "town", "status") else "right")
        for route_id in report.slowest:
            r, p = by_id[route_id], by_id[route_id].profile
            step = f"{_seconds(p and p.step_p50_s)}/{_seconds(p and p.step_p95_s)}/{_seconds(p and p.step_max_s)}"
            table.add_row(r.route_id, r.town, _seconds(r.duration_system, 1), _seconds(r.duration_game, 1), step,
                          _seconds(p and p.steps_per_wall_s, 1), _gib(p and p.peak_gpu_bytes),
                          _gib(p and p.peak_ram_bytes), r.status)  # fmt: skip
        out.print(table)
    for route_id in report.crashed:
        r = by_id[route_id]
        say(out, f"crashed: route {r.route_id} ({r.town}): {r.reason or r.status}", hang=4, style="red")
        for finding in r.log:
            detail = f": {finding.detail}" if finding.detail else ""
            say(out, f"log line {finding.line_number}: {finding.meaning}{detail}", indent=4, hang=6)
        if r.fix is not None:
            say(out, f"fix: {r.fix.text}", indent=4, hang=9)
            for command in r.fix.commands:
                for line in shell_lines(command, out.width, "      $ ", " " * 10):
                    out.print(Text(line))
    if report.missing:
        say(out, "missing: " + ", ".join(report.missing), hang=2, style="yellow")
    s = report.speed
    if s.steps:
        out.print()
        speed = (
            f"agent speed over {s.steps} steps of {s.routes} routes: run_step p50 {_seconds(s.step_p50_s)} s, "
            f"p95 {_seconds(s.step_p95_s)} s, max {_seconds(s.step_max_s)} s; "
            f"{_seconds(s.steps_per_wall_s, 2)} steps per wall second ({_seconds(s.sim_per_wall, 3)}x real time); "
            f"peak GPU {_gib(s.peak_gpu_bytes)} GiB, peak RAM {_gib(s.peak_ram_bytes)} GiB"
        )
        say(out, speed, hang=2, style="bold")
    if report.merged_file:
        out.print()
        say(out, f"merged.json for Bench2Drive's tools: {report.merged_file}", hang=2)
    if report.metric_dir:
        say(out, f"metric dir for efficiency_smoothness_benchmark.py: {report.metric_dir} "
            f"({report.metric_files} of {report.evaluated} records have their metric_info.json)", hang=2)  # fmt: skip
    if report.tools:
        out.print("Bench2Drive's own tools on this folder:")
        for command in report.tools:
            for line in shell_lines(command, out.width, "  $ ", " " * 6):
                out.print(Text(line))


def run(out: Path, names: RunRecipe, json_out: bool = False, settings: Optional[Settings] = None) -> int:
    """`simdoctor report`: 0 when printed. A folder of seeds (`run --seeds`) gets each seed's merged.json and the
    seeds' DS and SR with their mean and standard deviation. A folder of upstream results, as Bench2Drive's or
    SimLingo's own scripts left it, is read as it is (nothing written into it)."""
    folder = Path(out).expanduser()
    found = upstream_folder(folder, names)
    if found:
        show_upstream(folder, found, json_out)
    elif run_folders(folder, names)[0][0] == "":
        publish(out, names, json_out, settings=settings)
    else:
        publish_seeds(out, names, json_out)
    return 0


def _simdoctor_folder(out: Path, names: RunRecipe) -> bool:
    return is_run_folder(out, names) or any(is_run_folder(p, names) for p in out.glob("seed-*"))


# --- results that simdoctor did not produce: Bench2Drive's and SimLingo's own folders ---------------------------


def _results_in(folder: Path) -> list[results.ResultsFile]:
    """The leaderboard results files directly in `folder` (merge_route_json.py's glob, merged.json excepted)."""
    found = [results.read_results(p) for p in sorted(folder.glob("*.json")) if p.name != MERGED]
    return [f for f in found if f.records]


def upstream_folder(out: Path, names: RunRecipe) -> list[tuple[str, list[results.ResultsFile]]]:
    """The result sets of `out` when it holds results simdoctor did not produce, else none."""
    folder = Path(out).expanduser()
    return upstream_sets(folder, names) if folder.is_dir() and not _simdoctor_folder(folder, names) else []


def upstream_sets(folder: Path, names: RunRecipe) -> list[tuple[str, list[results.ResultsFile]]]:
    """The result sets of an upstream folder: its own results files (Bench2Drive's run_evaluation_multi_*.sh writes
    one multi-route JSON per task into one folder), or its `res/` (SimLingo's `<seed>/res/<index>_res.json`), or
    one set per `<seed>/res/` under it (start_eval_simlingo.py's `<agent>/<benchmark>/<seed>/res/`)."""
    for candidate in (folder, folder / "res"):
        if candidate.is_dir() and (found := _results_in(candidate)):
            return [("", found)]
    seeds = sorted((p for p in folder.iterdir() if (p / "res").is_dir() and not _simdoctor_folder(p, names)),
                   key=lambda p: (len(p.name), p.name))  # fmt: skip
    sets = [(f"seed {p.name}", _results_in(p / "res")) for p in seeds]
    return [(label, files) for label, files in sets if files]


def upstream_row(record: results.RouteRecord) -> RouteRow:
    scenario = record.scenario_name or ""
    return RouteRow(
        route_id=route_number(record.route_id), town=record.town or "?",
        scenario_type=scenario.rsplit("_", 1)[0] if "_" in scenario else scenario or None,
        status=record.status, success=record.success, score_composed=record.score_composed,
        score_route=record.score_route, score_penalty=record.score_penalty, route_length=record.route_length,
        duration_game=record.duration_game, duration_system=record.duration_system, attempts=0,
        crashed=record.kind is results.Kind.RETRY, reason=None,
    )  # fmt: skip


def upstream_report(where: str, files: list[results.ResultsFile]) -> Report:
    """Every record of every file, as merge_route_json.py counts them."""
    records = [r for f in files for r in f.records]
    return summarize(where, [upstream_row(r) for r in records], records, [], "", over="records found")


def show_upstream(folder: Path, sets: list[tuple[str, list[results.ResultsFile]]], json_out: bool) -> None:
    reports = [(label, upstream_report(str(folder) + (f" ({label})" if label else ""), files)) for label, files in sets]
    if len(reports) == 1:
        report = reports[0][1]
        if json_out:
            sys.stdout.write(json.dumps(document(report)) + "\n")
        else:
            show(report, terminal.console())
        return
    seeds_summary(folder, reports, json_out)


def is_run_folder(out: Path, names: RunRecipe) -> bool:
    """Whether `out` holds a run's route files (rather than `seed-<n>/` runs); an unreadable folder is said."""
    try:
        return (Path(out) / names.routes_dir).is_dir()
    except OSError as exc:
        raise ConfigError(f"cannot read {out}: {exc.strerror}") from None


def run_folders(out: Path, names: RunRecipe) -> list[tuple[str, Path]]:
    """The run folder itself, or its `seed-<n>/` run folders (`run --seeds`)."""
    if not out.is_dir():
        raise ConfigError(f"{out}: no such folder" if not out.exists() else f"{out} is a file, not a folder")
    if is_run_folder(out, names):
        return [("", out)]
    try:
        found = [p for p in out.glob("seed-*") if is_run_folder(p, names)]
    except OSError as exc:
        raise ConfigError(f"cannot read {out}: {exc.strerror}") from None
    seeds = sorted(found, key=lambda p: (len(p.name), p.name))
    if not seeds:
        raise ConfigError(f"{out} is not a `simdoctor run` output folder (no {names.routes_dir}/ or seed-*/ in it)")
    return [(p.name.replace("-", " "), p) for p in seeds]


@dataclass(frozen=True)
class SeedRow:
    seed: str  # "seed 1"
    out: str
    routes: int
    evaluated: int
    driving_score: Optional[float]
    success_rate: Optional[float]
    crashed: int
    missing: int


@dataclass(frozen=True)
class SeedsReport:
    """SimLingo's protocol: the same routes once per traffic-manager seed, reported as mean ± std (sample std,
    n - 1, of the seeds' DS and SR over the routes run)."""

    out: str
    seeds: list[SeedRow]
    driving_score_mean: Optional[float]
    driving_score_std: Optional[float]
    success_rate_mean: Optional[float]
    success_rate_std: Optional[float]


def _spread(values: list[float]) -> tuple[Optional[float], Optional[float]]:
    import statistics

    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def publish_seeds(out: Path, names: RunRecipe, json_out: bool = False, display: bool = True) -> SeedsReport:
    """Each seed's report built and its merged.json written; the seeds' scores printed side by side when
    `display`."""
    reports = [
        (label, publish(folder, names, display=False))
        for label, folder in run_folders(Path(out).expanduser().resolve(), names)
    ]
    return seeds_summary(Path(out), reports, json_out, display)


def seeds_summary(out: Path, reports: list[tuple[str, Report]], json_out: bool, display: bool = True) -> SeedsReport:
    """Each seed's DS/SR and their mean ± std, printed when `display` (or one JSON object)."""
    rows = [SeedRow(label, r.out, r.routes, r.evaluated, r.driving_score, r.success_rate, len(r.crashed),
                    len(r.missing)) for label, r in reports]  # fmt: skip
    ds = _spread([r.driving_score for r in rows if r.driving_score is not None])
    sr = _spread([r.success_rate for r in rows if r.success_rate is not None])
    report = SeedsReport(str(out), rows, *ds, *sr)
    if not display:
        return report
    if json_out:
        sys.stdout.write(json.dumps(document(report)) + "\n")
    else:
        show_seeds(report, terminal.console())
    return report


def _pm(mean: Optional[float], std: Optional[float]) -> str:
    return "-" if mean is None else f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def show_seeds(report: SeedsReport, out) -> None:
    from simdoctor.doctor.render import say

    say(out, f"simdoctor report · {report.out} · {len(report.seeds)} seeds (SimLingo's protocol)", hang=2,
        style="bold")  # fmt: skip
    for s in report.seeds:
        say(out, f"{s.seed}: DS {_seconds(s.driving_score, 2)}  SR {_seconds(s.success_rate, 2)} %  "
            f"({s.routes} routes, {s.crashed} crashed, {s.missing} missing)  {s.out}", indent=2, hang=4)  # fmt: skip
    say(out, f"mean ± std (sample, n-1) over seeds: DS {_pm(report.driving_score_mean, report.driving_score_std)}"
        f"   SR {_pm(report.success_rate_mean, report.success_rate_std)} %  (each over the routes run)", hang=2,
        style="bold")  # fmt: skip


METRIC_FILE = "metric_info.json"


def link_metrics(layout: Layout, records: list[results.RouteRecord]) -> int:
    """<metric_dir>/<save_name>/metric_info.json -> the file the agent wrote for that record, as Bench2Drive's
    efficiency_smoothness_benchmark.py opens it (line 243: os.path.join(metric_dir, save_name, 'metric_info.json')).
    SimLingo's agent writes it at SAVE_PATH + save_name + /debug_viz/<session>/iter_<n>/<route type>/
    <route number>_<time>/metric/ (agent_simlingo.py lines 212, 229-232, 792-797): the newest such file of the
    record's save name. Relative symlinks, replaced atomically; returns how many records have one."""
    linked = 0
    for record in records:
        if not record.save_name or "/" in record.save_name or record.save_name in (".", ".."):
            continue
        agent_dir = layout.viz_dir(route_number(record.route_id)) / record.save_name
        found = sorted(agent_dir.glob(f"debug_viz/**/metric/{METRIC_FILE}"), key=lambda p: p.stat().st_mtime_ns)
        if not found:
            continue
        link = layout.metric_dir / record.save_name / METRIC_FILE
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(found[-1], link.parent)
        if not (link.is_symlink() and os.readlink(link) == target):
            temp = link.with_name(f".{METRIC_FILE}.tmp")
            temp.unlink(missing_ok=True)
            os.symlink(target, temp)
            os.replace(temp, link)
        linked += 1
    return linked


def tool_commands(layout: Layout, settings: Settings) -> list[str]:
    """Bench2Drive's own tools on this folder, unmodified, as run from SimLingo's Bench2Drive/ with the agent's
    interpreter: merge_route_json.py on the results, ability_benchmark.py (it needs CARLA's PythonAPI) and
    efficiency_smoothness_benchmark.py on merged.json and the metric dir."""
    from simdoctor.config.agentenv import agent_environment
    from simdoctor.doctor.probes.agent import resolve_python

    python = resolve_python(settings)[0] or "python"
    env = agent_environment(settings)
    cd = f"cd {shlex.quote(str(Path(settings.work_dir) / 'Bench2Drive'))} && "
    merged_file, metric = shlex.quote(str(layout.merged_file)), shlex.quote(str(layout.metric_dir))
    carla = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("CARLA_ROOT", "PYTHONPATH"))
    return [
        f"{cd}{python} tools/merge_route_json.py -f {shlex.quote(str(layout.results_dir))}",
        f"{cd}env {carla} {python} tools/ability_benchmark.py -r {merged_file}",
        f"{cd}{python} tools/efficiency_smoothness_benchmark.py -f {merged_file} -m {metric}",
    ]


def publish(out: Path, names: RunRecipe, json_out: bool = False, display: bool = True,
            settings: Optional[Settings] = None) -> Report:  # fmt: skip
    """Build the report, write merged.json and the metric dir beside it, print it when `display` (also at the end
    of `simdoctor run`), with each Bench2Drive tool's command when `settings` say where SimLingo is."""
    report, records = build(out, names)
    # Unindented: json's C encoder only writes without indent, and an indented merged.json of 2,200 routes took
    # longer to write than the rest of the report took to build; upstream's tools only parse it.
    atomic.write_json(Path(report.merged_file), merged(records, report), indent=None)
    layout = Layout(Path(report.out), names)
    report = dataclasses.replace(
        report, metric_dir=str(layout.metric_dir), metric_files=link_metrics(layout, records),
        tools=tool_commands(layout, settings) if settings is not None else [],
    )  # fmt: skip
    if not display:
        return report
    if json_out:
        sys.stdout.write(json.dumps(document(report)) + "\n")  # one line: see merged.json above
    else:
        show(report, terminal.console())
    return report
