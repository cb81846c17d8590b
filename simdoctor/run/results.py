"""The evaluator's per-route results JSON, what each outcome means, and what its log says.

Format: Bench2Drive `leaderboard/utils/statistics_manager.py` (reference §2.3). The evaluator writes the
file in place (`open(path, 'w')` + `json.dump`) and truncates it when it starts, so a file may be
missing, empty or cut short; reading never raises. Whether a route is done or must run again follows
what SimLingo's `start_eval_simlingo.py` resubmits (reference §1.4): driving results are final,
infrastructure failures are retried.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from simdoctor.config.typed import DataError, from_data, to_data
from simdoctor.doctor.findings import Fix
from simdoctor.run.profiling import StepSummary
from simdoctor.system import atomic, strictjson
from simdoctor.system.proctree import Tree

SUCCESS_STATUSES = ("Perfect", "Completed")
# Failures the driving itself caused (statistics_manager failure messages, TickRuntimeError), and the
# agent's sensor set being rejected: running the route again gives the same answer.
RESULT_STATUSES = (
    *SUCCESS_STATUSES,
    "Failed - Agent deviated from the route",
    "Failed - Agent got blocked",
    "Failed - Agent timed out",
    "Failed - TickRuntime",
    "Failed - Agent's sensors were invalid",
)
# What start_eval_simlingo.py resubmits: the simulator or the agent's process broke, not its driving.
# A bare 'Failed' is a route stopped from outside (the watchdog), 'Started' a record never finished.
RETRY_STATUSES = (
    "Failed - Simulation crashed",
    "Failed - Agent couldn't be set up",
    "Failed - Agent crashed",
    "Failed",
    "Started",
)
# Infraction lists that do not cost a success (merge_route_json.py, ability_benchmark.py).
NOT_COUNTED_FOR_SUCCESS = ("min_speed_infractions",)


class Kind(str, enum.Enum):
    RESULT = "result"  # final: the route's score stands
    RETRY = "retry"  # infrastructure: run the route again (fresh ports) while retries are left


def status_kind(status: str) -> Kind:
    """Statuses this version does not know are taken as results: retrying cannot be shown to help."""
    return Kind.RETRY if status in RETRY_STATUSES else Kind.RESULT


@dataclass(frozen=True)
class RouteRecord:
    """One record of `_checkpoint.records`, typed; `raw` keeps the evaluator's dict for merged.json."""

    route_id: str  # RouteScenario_<id>_rep<n>
    status: str
    index: Optional[int]
    town: Optional[str]
    scenario_name: Optional[str]
    save_name: Optional[str]
    score_composed: float
    score_route: float
    score_penalty: float
    infractions: dict[str, list[str]]
    route_length: float
    duration_game: float
    duration_system: float
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def kind(self) -> Kind:
        return status_kind(self.status)

    @property
    def success(self) -> bool:
        """Bench2Drive's success: Completed or Perfect, and no infraction list other than min speed."""
        return self.status in SUCCESS_STATUSES and not any(
            items for name, items in self.infractions.items() if name not in NOT_COUNTED_FOR_SUCCESS
        )


@dataclass(frozen=True)
class ResultsFile:
    path: str
    records: list[RouteRecord]
    progress: Optional[list[int]]
    entry_status: Optional[str]
    error: Optional[str] = None  # why nothing (or not everything) could be read

    @property
    def last(self) -> Optional[RouteRecord]:
        """The route's record (one route per file, one repetition): the last one written."""
        return self.records[-1] if self.records else None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _record(raw: Any) -> RouteRecord:
    if not isinstance(raw, dict):
        raise ValueError("a record is not an object")
    scores, meta, infractions = raw.get("scores"), raw.get("meta") or {}, raw.get("infractions") or {}
    if not isinstance(raw.get("route_id"), str) or not isinstance(raw.get("status"), str):
        raise ValueError("a record has no route_id or status")
    if not isinstance(scores, dict) or not isinstance(meta, dict) or not isinstance(infractions, dict):
        raise ValueError(f"record {raw['route_id']} has no scores")
    index = raw.get("index")
    return RouteRecord(
        route_id=raw["route_id"],
        status=raw["status"],
        index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        town=raw.get("town_name") if isinstance(raw.get("town_name"), str) else None,
        scenario_name=raw.get("scenario_name") if isinstance(raw.get("scenario_name"), str) else None,
        save_name=raw.get("save_name") if isinstance(raw.get("save_name"), str) else None,
        score_composed=_number(scores.get("score_composed", 0)),
        score_route=_number(scores.get("score_route", 0)),
        score_penalty=_number(scores.get("score_penalty", 0)),
        infractions={str(k): [str(m) for m in v] for k, v in infractions.items() if isinstance(v, list)},
        route_length=_number(meta.get("route_length", 0)),
        duration_game=_number(meta.get("duration_game", 0)),
        duration_system=_number(meta.get("duration_system", 0)),
        raw=raw,
    )


def read_results(path: Path) -> ResultsFile:
    """Parse one results file; every problem becomes `error`, with whatever records were readable."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ResultsFile(where, [], None, None, "no results file written")
    except (OSError, UnicodeDecodeError) as exc:
        return ResultsFile(where, [], None, None, f"unreadable results file: {exc}")
    if not text.strip():
        return ResultsFile(where, [], None, None, "empty results file (the evaluator truncates it when it starts)")
    try:
        data = strictjson.loads(text)
    except json.JSONDecodeError as exc:
        return ResultsFile(where, [], None, None, f"results file cut short or not JSON ({exc.msg})")
    except ValueError as exc:
        return ResultsFile(where, [], None, None, f"results file is not valid JSON ({exc})")
    checkpoint = data.get("_checkpoint") if isinstance(data, dict) else None
    if not isinstance(checkpoint, dict):
        return ResultsFile(where, [], None, None, "not a leaderboard results file (no _checkpoint)")
    progress = checkpoint.get("progress")
    progress = progress if isinstance(progress, list) and all(isinstance(p, int) for p in progress) else None
    entry = data.get("entry_status") if isinstance(data.get("entry_status"), str) else None
    records, errors = [], []
    for raw in checkpoint.get("records") or []:
        try:
            records.append(_record(raw))
        except ValueError as exc:
            errors.append(str(exc))
    return ResultsFile(where, records, progress, entry, "; ".join(errors) or None)


@dataclass(frozen=True)
class Exit:
    """How the evaluator process ended."""

    returncode: Optional[int]  # negative: killed by that signal; None: not known
    timed_out: bool = False  # simdoctor stopped it at the route timeout

    def describe(self) -> str:
        if self.timed_out:
            return "stopped at the route timeout"
        if self.returncode is None:
            return "ended in an unknown way"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        if self.returncode == 255:
            return "exited with code 255 (the evaluator's sys.exit(-1) after a crash)"
        return f"exited with code {self.returncode}"


@dataclass(frozen=True)
class Judgement:
    kind: Kind
    status: Optional[str]  # the record's status, None when no record was written
    reason: str


def judge(results: ResultsFile, exit: Exit, log: str = "") -> Judgement:
    """Decide one attempt: the record's status when there is a record, else a retry saying why: the last
    line of the last traceback in the evaluator's `log` first when there is one (a failed import, the
    UnboundLocalError of a simulator that never came up: the only explanation upstream gives).

    A record is only written once the route has been scored, so a final status stands even when the
    evaluator then hung or crashed on its way out.
    """
    record = results.last
    if record is None:
        why = f"{results.error or 'no route record written'}; the evaluator {exit.describe()}"
        error = last_exception(log)
        return Judgement(Kind.RETRY, None, f"{error} ({why})" if error else why)
    if record.kind is Kind.RETRY:
        return Judgement(Kind.RETRY, record.status, f"{record.status}; the evaluator {exit.describe()}")
    return Judgement(Kind.RESULT, record.status, record.status)


@dataclass(frozen=True)
class LogPattern:
    name: str
    text: str  # a substring of the line (lines carry ANSI colour codes)
    meaning: str
    source: str


# Lines start_eval_simlingo.py kills a job for (reference §1.4), then other evaluator/CARLA lines that
# say why a route ended (leaderboard_evaluator.py's messages; reference §3).
LOG_PATTERNS = (
    LogPattern("watchdog", "Watchdog exception", "a watchdog fired: the simulator or the agent stopped answering",
               "start_eval_simlingo.py kill_dead_jobs"),
    LogPattern("carla_segfault", "Engine crash handling finished; re-raising signal 11",
               "CARLA crashed (signal 11)", "start_eval_simlingo.py kill_dead_jobs"),
    LogPattern("agent_crash", "Stopping the route, the agent has crashed", "the agent raised an exception",
               "start_eval_simlingo.py kill_dead_jobs; leaderboard_evaluator.py"),
    LogPattern("agent_setup", "Could not set up the required agent", "the agent's setup raised an exception",
               "leaderboard_evaluator.py"),
    LogPattern("scenario_load", "The scenario could not be loaded", "the route's scenario could not be loaded",
               "leaderboard_evaluator.py"),
    LogPattern("simulation_error", "Error during the simulation", "the simulation raised an exception",
               "leaderboard_evaluator.py"),
    LogPattern("invalid_sensors", "The sensor's configuration used is invalid", "the agent's sensors were rejected",
               "leaderboard_evaluator.py"),
    LogPattern("client_timeout", "while waiting for the simulator", "the CARLA client timed out waiting for the server",
               "Bench2Drive#68, #72 (`time-out of 600000ms while waiting for the simulator`)"),
    LogPattern("load_world_failed", "load_world failed", "the evaluator could not reach the simulator (20 tries)",
               "leaderboard_evaluator.py _setup_simulation"),
    LogPattern("traffic_manager_failed", "traffic_manager init fail", "the traffic manager could not start (40 tries)",
               "leaderboard_evaluator.py _setup_simulation"),
    LogPattern("no_traffic_manager", "local variable 'traffic_manager' referenced before assignment",
               "the evaluator gave up on the simulator (UnboundLocalError, no results)",
               "leaderboard_evaluator.py line 253"),
    LogPattern("root_refused", "Refusing to run with the root privileges", "CARLA refuses to run as root",
               "Bench2Drive#37"),
)  # fmt: skip
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class LogFinding:
    name: str
    meaning: str
    line_number: int  # 1-based, of the first occurrence
    line: str  # that line, without colour codes
    count: int
    detail: Optional[str] = None  # for an exception: its last traceback line


def last_exception(text: str) -> Optional[str]:
    """The `Type: message` line closing the last Python traceback in `text`."""
    lines = text.splitlines()
    start = next((i for i in range(len(lines) - 1, -1, -1) if ANSI.sub("", lines[i]).strip().startswith("Traceback")),
                 None)  # fmt: skip
    return None if start is None else _exception_after(lines, start - 1)


def _exception_after(lines: list[str], start: int) -> Optional[str]:
    """The `Type: message` line closing the traceback printed after line `start`."""
    seen_traceback = False
    for line in lines[start + 1 : start + 200]:
        clean = ANSI.sub("", line).strip()
        if clean.startswith("Traceback"):
            seen_traceback = True
        elif seen_traceback and clean and not line.startswith((" ", "\t")) and not clean.startswith("File "):
            return clean[:300]
    return None


def scan_log(text: str) -> list[LogFinding]:
    """The known lines in an evaluator's log, each once, in the order they first appear."""
    lines = text.splitlines()
    found: dict[str, LogFinding] = {}
    for number, line in enumerate(lines):
        for pattern in LOG_PATTERNS:
            if pattern.text not in line:
                continue
            if pattern.name in found:
                previous = found[pattern.name]
                found[pattern.name] = LogFinding(
                    previous.name, previous.meaning, previous.line_number, previous.line, previous.count + 1,
                    previous.detail,
                )  # fmt: skip
                continue
            detail = _exception_after(lines, number) if pattern.name in ("agent_crash", "agent_setup") else None
            clean = ANSI.sub("", line).strip()[:300]
            found[pattern.name] = LogFinding(pattern.name, pattern.meaning, number + 1, clean, 1, detail)
    return sorted(found.values(), key=lambda f: f.line_number)


# --- simdoctor's own per-route record (<out>/tasks/<id>.json), written by the supervisor ---------------

TASK_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Attempt:
    """One run of the evaluator for one route. Written before the evaluator starts (with `tree` holding
    only its cookie), again once it runs (the leader's pid), and when it ended: a record without `ended`
    after simdoctor died names exactly the processes the next run must stop."""

    number: int  # 1, 2, ...
    slot: int
    ports: dict[str, int]
    started: float  # epoch seconds
    ended: Optional[float] = None
    returncode: Optional[int] = None
    timed_out: bool = False
    kind: Optional[Kind] = None  # None once ended: interrupted, not judged (costs no retry)
    status: Optional[str] = None
    reason: Optional[str] = None
    log: list[LogFinding] = field(default_factory=list)
    peak_gpu_bytes: Optional[int] = None  # NVML sampling of the attempt's processes
    peak_ram_bytes: Optional[int] = None
    tree: Optional[Tree] = None  # the evaluator's process tree (proctree), CARLA included by its cookie
    log_offset: int = 0  # where this attempt's output starts in the route's log (bytes)
    carla_port: Optional[int] = None  # the RPC port the evaluator started CARLA on (its log's launch line)
    fix: Optional[Fix] = None  # for an attempt whose CARLA died: what `check` would say to do
    left: list[int] = field(default_factory=list)  # pids still running after the cleanup (none expected)
    host: Optional[str] = None  # where it ran
    job: Optional[str] = None  # the Slurm array task that ran it (`<array job id>_<index>`), None when local
    steps: Optional[StepSummary] = None  # its step file, summarised when it ended (None: no step file, or older)


@dataclass(frozen=True)
class TaskRecord:
    route_id: str
    attempts: list[Attempt] = field(default_factory=list)
    final: Optional[str] = None  # "result", "crashed" (retries used up), None while not decided
    schema_version: int = TASK_SCHEMA_VERSION

    @property
    def last(self) -> Optional[Attempt]:
        return self.attempts[-1] if self.attempts else None


def read_task(path: Path) -> Optional[TaskRecord]:
    """None when there is no record or it cannot be trusted (the route then counts as not run). Records of
    earlier versions carry `killed_by` in each attempt (a crash kill upstream never does): dropped."""
    try:
        data = strictjson.loads(Path(path).read_text(encoding="utf-8"))
        for attempt in data.get("attempts") or [] if isinstance(data, dict) else []:
            if isinstance(attempt, dict):
                attempt.pop("killed_by", None)
        record = from_data(TaskRecord, data)
    except (OSError, ValueError, DataError):
        return None
    return record if record.schema_version == TASK_SCHEMA_VERSION else None


def write_task(path: Path, record: TaskRecord) -> None:
    atomic.write_json(path, to_data(record))


def with_failure(
    record: TaskRecord, reason: str, started: float, ended: float, host: Optional[str], job: Optional[str]
) -> TaskRecord:
    """The record with one more attempt that failed on infrastructure without running the evaluator (a
    node that cannot run it, a Slurm array task that ended before it started the route)."""
    attempt = Attempt(len(record.attempts) + 1, 0, {}, started, ended=ended, kind=Kind.RETRY, reason=reason,
                      host=host, job=job)  # fmt: skip
    return dataclasses.replace(record, attempts=[*record.attempts, attempt], final=None)


def finished(results: ResultsFile, task: Optional[TaskRecord]) -> bool:
    """Whether a resumed run skips this route: it has a final record, or its retries were used up."""
    if task is not None and task.final == "crashed":
        return True
    record = results.last
    return record is not None and record.kind is Kind.RESULT
