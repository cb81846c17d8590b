"""`simdoctor run --executor slurm`: the routes as Slurm job arrays, followed from the login node until
each route is decided, then the same report as a local run.

- Submission: sbatch with a generated script (<out>/slurm/<n>/job.sh, every value quoted, printable with
  --dry-run): one array task per route, each running `<this interpreter> -m simdoctor run-task
  <out>/slurm/<n>/spec.json` on its node (simdoctor/run/slurm/node.py: the local Supervisor, one attempt).
  The submission is recorded in <out>/slurm/jobs.json before sbatch (with the job's --comment, which
  finds the job again if simdoctor dies before it records the id) and with its job id right after.
- Following: squeue shows which tasks are queued or running; the tasks' own attempt records (written to
  the shared --out) say which route started where and on which port, and how its attempt ended.
- Settling a task that left the queue (settle): a decided route is done; an attempt the node judged an
  infrastructure failure, one Slurm stopped (SIGTERM: scancel, time limit, preemption), one killed
  outright (node failure: no end recorded), and a task that never started its route (the node failed,
  the task vanished) are resubmitted, as one new array of just those routes, while --retries last. Why
  Slurm ended a task comes from sacct where accounting answers, else from slurmstepd's line in the
  task's log (`*** JOB n ON host CANCELLED AT t DUE TO TIME LIMIT ***`).
- Ctrl-C: on a terminal, simdoctor asks whether to cancel this run's jobs or leave them running;
  otherwise --on-interrupt says (default: leave). Leaving prints how to reattach and how to cancel; a
  cancelled job's interrupted attempts cost no retry. Only jobs in jobs.json are ever cancelled.
- Reattach: a rerun on the same --out follows the submissions not settled yet (same job ids, nothing
  resubmitted that is still queued) and submits only the routes that are neither decided nor queued.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import math
import re
import secrets
import shlex
import signal
import site
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import simdoctor
from simdoctor.carla.lifecycle import terminate_as_interrupt
from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings
from simdoctor.run import results, runplan
from simdoctor.run.outdir import Layout
from simdoctor.run.progress import Lane, Progress
from simdoctor.run.results import Exit, Kind, TaskRecord
from simdoctor.run.runplan import Plan
from simdoctor.run.slurm import jobs
from simdoctor.run.slurm.jobs import Spec, Submission
from simdoctor.run.supervisor import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    charged,
    clean_stale,
    conclude,
    describe,
    finished_scores,
    forget,
    is_terminal,
    locked,
    refuse_root,
    writing,
)
from simdoctor.system import atomic, proctree, sbatch, slurm, terminal
from simdoctor.system.slurm import JobState, SlurmError

DRY_RUN_SCHEMA_VERSION = 1
ON_INTERRUPT = ("cancel", "leave")
RUNNING = ("RUNNING", "COMPLETING")  # squeue states of a task that has started
# sacct states of a job Slurm ended (not its own script): scancel, time limit, preemption, node trouble, OOM.
STOPPED_BY_SLURM = ("CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE")
# slurmstepd's line in a task's output when Slurm stops it (src/slurmd/slurmstepd/req.c), e.g.
# `*** JOB 6 ON n1 CANCELLED AT 2026-11-24T00:17:16 DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***`
# (older releases leave out `ON <node>`).
STEPD_LINE = re.compile(r"\*\*\* (?:JOB|STEP) \S+ (?:ON \S+ )?CANCELLED AT \S+(?: DUE TO ([A-Z ]+))?[^*]*\*\*\*")
STEPD_STATES = {"TIME LIMIT": "TIMEOUT", "PREEMPTION": "PREEMPTED", "NODE FAILURE": "NODE_FAIL"}
UNSAFE_IN_SBATCH_LINES = set(" \t\n\"'%\\")  # sbatch splits #SBATCH lines itself; % is a --output pattern


@dataclass(frozen=True)
class SlurmOptions:
    """`run --executor slurm`'s own options; None takes the recipe's default (worker needs, route timeout)."""

    time: Optional[str] = None
    max_concurrent: Optional[int] = None
    gpus_per_task: int = 1
    cpus_per_task: Optional[int] = None
    mem: Optional[str] = None
    on_interrupt: Optional[str] = None  # cancel, leave; None: ask on a terminal, else leave


class Outcome(str, enum.Enum):
    DECIDED = "decided"  # a result, or crashed with its retries used up
    AGAIN = "again"  # an infrastructure failure with retries left: resubmit
    CANCELLED = "cancelled"  # simdoctor cancelled the task: the route stays to run, no retry spent


# ---- pure parts: the job script, settling a task ----


def check_options(settings: Settings, opts: SlurmOptions, layout: Layout) -> None:
    if opts.on_interrupt is not None and opts.on_interrupt not in ON_INTERRUPT:
        raise ConfigError(f"--on-interrupt must be cancel or leave, not {opts.on_interrupt!r}")
    if opts.gpus_per_task not in (0, 1):
        raise ConfigError(
            f"--gpus-per-task {opts.gpus_per_task}: a route's evaluator runs CARLA and the agent on one GPU "
            "(SimLingo's own jobs ask for gpu:1); give 1, or 0 for nodes without GPUs"
        )
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent {opts.max_concurrent}: give 1 or more")
    if opts.cpus_per_task is not None and opts.cpus_per_task < 1:
        raise ConfigError(f"--cpus-per-task {opts.cpus_per_task}: give 1 or more")
    sbatch.check_values({"partition": settings.slurm_partition, "account": settings.slurm_account,
                         "qos": settings.slurm_qos, "mem": opts.mem, "time": opts.time})  # fmt: skip
    if UNSAFE_IN_SBATCH_LINES & set(str(layout.root)):
        raise ConfigError(
            f"--out {layout.root}: for the Slurm backend the path cannot hold spaces, quotes, backslashes or %: "
            "sbatch reads the #SBATCH lines itself, and % starts a pattern in --output"
        )


def job_minutes(plan: Plan, settings: Settings) -> int:
    """The default --time: one attempt's route timeout, its cleanup, and the recipe's margin."""
    r = settings.recipe
    return math.ceil((plan.route_timeout_s + 2 * r.carla.stop_grace_s + r.slurm.time_margin_s) / 60)


def interpreter_env() -> dict[str, str]:
    """PYTHONPATH for the job when this interpreter finds simdoctor only through PYTHONPATH (a checkout)."""
    parent = str(Path(simdoctor.__file__).resolve().parent.parent)
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    return {} if parent in installed else {"PYTHONPATH": parent}


def job_script(settings: Settings, layout: Layout, plan: Plan, number: int, count: int, opts: SlurmOptions,
               throttle: Optional[int], comment: str) -> str:  # fmt: skip
    r = settings.recipe
    directives = sbatch.directives(
        settings,
        job_name=r.slurm.job_name,
        array=sbatch.array(count, throttle),
        ntasks=1,
        cpus_per_task=opts.cpus_per_task or r.worker.cpus,
        mem=opts.mem or f"{r.worker.ram_gib:g}G",
        gres=f"{r.slurm.gres}:{opts.gpus_per_task}" if opts.gpus_per_task else None,
        time=opts.time or job_minutes(plan, settings),
        output=str(layout.job_log_pattern(number)),
        chdir=str(layout.root),
        no_requeue=True,  # simdoctor resubmits, counting retries; Slurm's requeue would not
        comment=comment,
    )
    command = [sys.executable, "-m", "simdoctor", "run-task", str(layout.spec_file(number))]
    return sbatch.render(directives, interpreter_env(), command)


def submit_argv(layout: Layout, number: int) -> list[str]:
    """The exact submission command (slurm.submit runs it)."""
    return ["sbatch", "--parsable", str(layout.script_file(number))]


def stepd_state(log_text: str) -> Optional[str]:
    """The state slurmstepd's last CANCELLED line gives: CANCELLED, TIMEOUT, PREEMPTED, NODE_FAIL."""
    found = STEPD_LINE.findall(log_text)
    if not found:
        return None
    due = found[-1].strip()
    return STEPD_STATES.get(due, f"CANCELLED ({due.lower()})" if due else "CANCELLED")


def settle(
    record: TaskRecord,
    label: str,
    cancelled: bool,
    retries: int,
    why: str,
    stopped: bool,
    found: results.ResultsFile,
    submitted: float,
    now: float,
) -> tuple[TaskRecord, Outcome]:
    """What the array task `label`, gone from the queue, leaves of its route: the record to write and what
    next. `why` says how the task ended as Slurm tells it, `stopped`: Slurm stopped it (scancel, time
    limit, preemption, node failure); `cancelled`: simdoctor cancelled it. Idempotent."""
    last = record.last
    if last is None or last.job != label:  # it never started its route: the node failed first, or it vanished
        if cancelled:
            return record, Outcome.CANCELLED
        record = results.with_failure(record, f"{why}; it never started the route", submitted, now, None, label)
        last = record.last
    elif record.final:
        return record, Outcome.DECIDED
    elif last.ended is None:  # killed outright while its attempt ran: a result it wrote still stands
        verdict = results.judge(found, Exit(None))
        if verdict.kind is Kind.RESULT:
            last = dataclasses.replace(last, ended=now, kind=Kind.RESULT, status=verdict.status, reason=verdict.reason)
            return dataclasses.replace(record, attempts=[*record.attempts[:-1], last], final="result"), (
                Outcome.DECIDED
            )
        reason = f"{why}; the task ended while its attempt ran (its simdoctor was killed); {verdict.reason}"
        last = dataclasses.replace(last, ended=now, kind=None if cancelled else Kind.RETRY, reason=reason)
    elif cancelled:  # its attempt was stopped by simdoctor's scancel (or had just failed): costs no retry
        if last.kind is not None or not (last.reason or "").startswith(CANCELLED_BY_US):
            last = dataclasses.replace(last, kind=None, reason=f"{CANCELLED_BY_US} ({last.reason})")
    elif last.kind is None or (stopped and not (last.reason or "").startswith(why)):  # Slurm stopped it: a retry
        last = dataclasses.replace(last, kind=Kind.RETRY, reason=f"{why} ({last.reason})")
    record = dataclasses.replace(record, attempts=[*record.attempts[:-1], last])
    if last.kind is None:
        return record, Outcome.CANCELLED
    if charged(record) > retries:
        return dataclasses.replace(record, final="crashed"), Outcome.DECIDED
    return record, Outcome.AGAIN


CANCELLED_BY_US = "simdoctor cancelled its job"


# ---- following the arrays ----


@dataclass
class Flight:
    """A route's array task, from submission until it has left the queue and been settled."""

    route_id: str
    town: str
    submission: Submission
    index: int
    state: str = "PENDING"
    node: str = ""
    shown: int = 0  # the attempt number last announced as started

    @property
    def label(self) -> str:
        return self.submission.label(self.index)

    @property
    def lane(self) -> Lane:
        return Lane(f"task {self.label}", f"task {self.label}" + (f" on {self.node}" if self.node else ""))


class ArrayRun:
    def __init__(self, settings: Settings, plan: Plan, layout: Layout, opts: SlurmOptions, progress: Progress) -> None:
        self.settings = settings
        self.plan = plan
        self.layout = layout
        self.opts = opts
        self.progress = progress
        self.tasks = {t.route.id: t for t in plan.tasks}
        self.ledger = jobs.read_ledger(layout)
        self.flights: dict[str, Flight] = {}
        self.unclean: list[str] = []
        self.waiting: list[str] = []  # routes to submit (again), as soon as --max-concurrent allows
        self.attempts = 0
        self.stopping = False
        self._said = ""
        self._accounting: dict[str, dict[str, JobState]] = {}

    # ---- the ledger ----

    def _save(self, submission: Submission) -> None:
        self.ledger = self.ledger.put(submission)
        jobs.write_ledger(self.layout, self.ledger)

    def _by_number(self, number: int) -> Submission:
        return next(s for s in self.ledger.submissions if s.number == number)

    def reattach(self) -> list[Submission]:
        """Follow the submissions not settled yet: the latest one of each route is that route's task."""
        for sub in self.ledger.unsettled:
            if sub.job_id is None:
                found = slurm.find_by_comment(sub.comment)
                self._save(dataclasses.replace(sub, job_id=found) if found else dataclasses.replace(sub, done=True))
        subs = [s for s in self.ledger.unsettled if s.job_id]
        for sub in subs:
            for index, route_id in enumerate(sub.routes):
                task = self.tasks.get(route_id)
                self.flights[route_id] = Flight(route_id, task.route.town if task else "?", sub, index)
        return subs

    # ---- submission ----

    def submit(self, route_ids: list[str], throttle: Optional[int]) -> Submission:
        """One array of these routes: spec and script written, recorded, sbatch, the job id recorded."""
        number = self.ledger.next_number()
        comment = f"{self.settings.recipe.slurm.job_name}-{secrets.token_hex(6)}"
        tasks = [self.tasks[r] for r in route_ids]
        spec = Spec(dataclasses.replace(self.plan, slots=[], tasks=tasks), self.settings.recipe,
                    jobs.node_settings(self.settings), self.opts.gpus_per_task)  # fmt: skip
        jobs.write_spec(self.layout.spec_file(number), spec)
        text = job_script(self.settings, self.layout, self.plan, number, len(tasks), self.opts, throttle, comment)
        script_path = self.layout.script_file(number)
        atomic.write_text(script_path, text)
        sub = Submission(number, comment, list(route_ids), time.time(), throttle)
        with _deferred_interrupt():  # a job must not be left running without its record
            self._save(sub)
            try:
                job_id: Optional[str] = slurm.submit(script_path)
            except SlurmError as exc:
                job_id = _quietly(lambda: slurm.find_by_comment(comment))  # sbatch may have timed out after all
                if job_id is None:
                    self._save(dataclasses.replace(sub, done=True))
                    raise SubmitError(f"cannot submit {len(tasks)} route(s): {exc}") from None
            sub = dataclasses.replace(sub, job_id=job_id)
            self._save(sub)
            for index, route_id in enumerate(route_ids):
                self.flights[route_id] = Flight(route_id, self.tasks[route_id].route.town, sub, index)
        what = f"{len(tasks)} route(s)" if len(tasks) > 3 else "route(s) " + ", ".join(route_ids)
        self.progress.note(f"submitted array job {job_id} ({what}): {shlex.join(submit_argv(self.layout, number))}")
        return sub

    # ---- following ----

    def follow(self) -> None:
        """Until no route is waiting, queued or running: submit what waits (as one array) when
        --max-concurrent allows, poll the queue and the records, settle the tasks that left."""
        poll = self.settings.recipe.slurm.poll_s
        while self.flights or self.waiting:
            self.submit_waiting()
            again = self.poll()
            self.waiting += again
            if not (again and self._room()):
                time.sleep(poll)

    def _room(self) -> bool:
        limit = self.opts.max_concurrent
        return not self.stopping and (limit is None or len(self.flights) < limit)

    def submit_waiting(self) -> None:
        """With --max-concurrent N, the tasks of all this run's arrays, queued or running, stay at most N:
        a new array is submitted while fewer than N are, throttled to the difference; an array's throttle
        is raised as the others' tasks end (so the run keeps N busy)."""
        limit = self.opts.max_concurrent
        if limit is not None:
            self._raise_throttles(limit)
        if not self.waiting or self.stopping:
            return
        busy = len(self.flights)
        if not self._room():
            self._say_once(f"{len(self.waiting)} route(s) wait to be submitted until fewer than {limit} of this "
                           f"run's tasks are queued or running (--max-concurrent {limit})")  # fmt: skip
            return
        routes, self.waiting = self.waiting, []
        self.submit(routes, None if limit is None else min(limit - busy, len(routes)))

    def _raise_throttles(self, limit: int) -> None:
        for sub in self.ledger.unsettled:
            ours = sum(1 for f in self.flights.values() if f.submission.number == sub.number)
            allowed = min(limit - (len(self.flights) - ours), len(sub.routes))
            if sub.job_id and sub.throttle is not None and ours > sub.throttle and allowed > sub.throttle:
                try:
                    slurm.set_throttle(sub.job_id, allowed)
                except SlurmError as exc:
                    self._say_once(f"cannot raise job {sub.job_id}'s throttle to {allowed}: {exc}")
                    continue
                self._save(dataclasses.replace(sub, throttle=allowed))
                for flight in self.flights.values():
                    if flight.submission.number == sub.number:
                        flight.submission = self._by_number(sub.number)

    def poll(self) -> list[str]:
        """One look at the queue; returns the routes to resubmit. A failed squeue changes nothing."""
        ids = sorted({f.submission.job_id for f in self.flights.values() if f.submission.job_id})
        try:
            queued = {s.job_id: s for s in slurm.queue_states(ids)}
        except SlurmError as exc:
            self._say_once(f"the queue cannot be read ({exc}); trying again")
            return []
        self._accounting = {}
        again = []
        for flight in list(self.flights.values()):
            state = queued.get(flight.label)
            if state is not None:
                self._track(flight, state)
                continue
            outcome = self._land(flight)
            if outcome is Outcome.AGAIN or (outcome is Outcome.CANCELLED and not self.stopping):
                again.append(flight.route_id)  # cancelled by an earlier simdoctor: this run runs it
        self._close_settled()
        running = sum(1 for f in self.flights.values() if f.state in RUNNING)
        waiting = len(self.flights) - running
        self.progress.status(f"Slurm: {running} running, {waiting} queued" if self.flights else "")
        return again

    def _track(self, flight: Flight, state: JobState) -> None:
        flight.state, flight.node = state.state, state.node or flight.node
        record = results.read_task(self.layout.task_file(flight.route_id))
        last = record.last if record else None
        if last is not None and last.job == flight.label and last.number > flight.shown:
            flight.shown = last.number
            flight.node = last.host or flight.node
            self.attempts += 1
            self.progress.started(flight.lane, flight.route_id, flight.town, last.number, last.ports)

    def _land(self, flight: Flight) -> Outcome:
        """The task left the queue: settle its route's record."""
        path = self.layout.task_file(flight.route_id)
        record = results.read_task(path) or TaskRecord(flight.route_id)
        sub = self._by_number(flight.submission.number)  # cancelled may have been set since
        why, stopped = self._why(flight)
        found = results.read_results(self.layout.results_file(flight.route_id))
        settled, outcome = settle(record, flight.label, sub.cancelled, self.plan.retries, why, stopped, found,
                                  sub.submitted, time.time())  # fmt: skip
        if settled != record:
            results.write_task(path, settled)
        del self.flights[flight.route_id]
        last = settled.last
        if last is not None and last.job == flight.label:
            if last.number > flight.shown and last.tree is not None:
                self.attempts += 1  # it ran between two polls
            if last.left:
                left = ", ".join(map(str, last.left))
                self.unclean.append(f"route {flight.route_id} attempt {last.number} on {last.host}: pids {left} "
                                    "survived its cleanup")  # fmt: skip
            score = None
            if outcome is Outcome.DECIDED:
                best = found.last
                score = best.score_composed if best and last.kind is Kind.RESULT else None
            line = describe(settled, self.plan.retries, "resubmitting it")
            self.progress.ended(flight.lane, flight.route_id, line, score, outcome is Outcome.DECIDED)
        self.progress.close(flight.lane)
        return outcome

    def _why(self, flight: Flight) -> tuple[str, bool]:
        """How Slurm ended the task, and whether Slurm stopped it: sacct's state where accounting answers,
        else slurmstepd's line in its log; else what its log ends with."""
        job_id, label = flight.submission.job_id or "", flight.label
        if job_id not in self._accounting:
            try:
                self._accounting[job_id] = {s.job_id: s for s in slurm.accounting_states(job_id)}
            except SlurmError:
                self._accounting[job_id] = {}
        known = self._accounting[job_id].get(label)
        log = self.layout.job_log(flight.submission.number, label)
        text = proctree.read_log(log)
        if known is not None and known.state in STOPPED_BY_SLURM:
            return f"array task {label} ended {known.state} (sacct; its log {log})", True
        state = stepd_state(text)
        if state is not None:
            return f"array task {label} was stopped by Slurm: {state} (its log {log})", True
        tail = [line.strip() for line in text.splitlines() if line.strip()][-1:]
        ending = f"its log ends: {tail[0][:200]}" if tail else f"no log at {log}"
        if known is not None:
            return f"array task {label} ended {known.state} (sacct); {ending}", False
        return f"array task {label} left the queue; {ending}", False

    def _close_settled(self) -> None:
        active = {f.submission.number for f in self.flights.values()}
        for sub in self.ledger.unsettled:
            if sub.job_id and sub.number not in active:
                self._save(dataclasses.replace(sub, done=True))

    def _say_once(self, text: str) -> None:
        if text != self._said:
            self._said = text
            self.progress.note(text)

    # ---- interruption ----

    def job_ids(self) -> list[str]:
        return sorted({f.submission.job_id for f in self.flights.values() if f.submission.job_id}, key=int)

    def cancel(self) -> list[str]:
        """Cancel this folder's jobs still queued (only those in jobs.json), wait for their tasks to stop,
        and settle them: their interrupted attempts cost no retry. Returns what is still queued."""
        ids = self.job_ids()
        for sub in self.ledger.unsettled:
            if sub.job_id in ids:
                self._save(dataclasses.replace(sub, cancelled=True))
        for flight in self.flights.values():
            flight.submission = self._by_number(flight.submission.number)
        slurm.cancel(ids)
        deadline = time.monotonic() + self.settings.recipe.slurm.cancel_wait_s
        try:
            while self.flights and time.monotonic() < deadline:
                self.poll()
                if self.flights:
                    time.sleep(self.settings.recipe.slurm.poll_s)
        except KeyboardInterrupt:  # another Ctrl-C: stop waiting, say what is still queued
            pass
        return sorted({f.label for f in self.flights.values()})


class SubmitError(Exception):
    """sbatch refused the array (its own message)."""


# ---- the command ----


def run(settings: Settings, options: runplan.Options, opts: SlurmOptions, json_out: bool = False) -> int:
    """`simdoctor run --executor slurm`: exit codes as a local run (0 every route has a result; 1 some
    crashed or are missing, a submission failed, or processes survived a cleanup; 130 interrupted)."""
    refuse_root(settings)
    layout = runplan.out_layout(settings, options)
    check_options(settings, opts, layout)
    plan, texts = runplan.build(settings, options, [])
    mode = "quiet" if json_out else ("live" if is_terminal() else "lines")
    began = time.monotonic()
    with writing(layout.root):  # a file the run cannot write: one line naming it; the rerun reattaches
        with locked(layout):
            for line in clean_stale(layout, settings):  # a local run's attempts, killed with their simdoctor
                sys.stderr.write(f"simdoctor: {line}\n")
            if options.fresh and jobs.read_ledger(layout).unsettled:
                raise ConfigError(f"{layout.root} has Slurm jobs that may still run ({layout.ledger_file}): rerun "
                                  "without --fresh to follow them, or cancel them first")  # fmt: skip
            runplan.prepare(plan, texts, settings)
            layout.slurm_dir.mkdir(parents=True, exist_ok=True)
            if options.fresh:
                for task in plan.tasks:
                    forget(task)
            progress = Progress(plan, finished_scores(plan), mode)
            array = ArrayRun(settings, plan, layout, opts, progress)
            seen: list[int] = []
            interrupted, failure = False, None
            try:
                with terminate_as_interrupt(seen), progress:
                    followed = array.reattach()
                    if followed:
                        ids = ", ".join(s.job_id or "?" for s in followed)
                        progress.note(f"following Slurm job(s) {ids} of an earlier run ({len(array.flights)} route(s))")
                    todo = [t.route.id for t in plan.pending if t.route.id not in array.flights]
                    skipped = len(plan.tasks) - len(plan.pending)
                    progress.note(f"{len(plan.tasks)} routes, {skipped} already done, {len(array.flights)} in Slurm's "
                                  f"queue, {len(todo)} to submit · out {plan.out}")  # fmt: skip
                    array.waiting = todo
                    array.follow()
            except KeyboardInterrupt:
                interrupted = True
            except (SubmitError, SlurmError) as exc:
                failure = str(exc)
            if interrupted:
                return _interrupted(array, opts, not seen)
            if failure is not None:
                sys.stderr.write(f"simdoctor: {failure}\n")
                if array.flights:
                    _leave(array)
                return EXIT_FAILED
        return conclude(plan, settings, progress, array.attempts, began, array.unclean, json_out)


def _interrupted(array: ArrayRun, opts: SlurmOptions, ctrl_c: bool) -> int:
    """Cancel or leave the jobs still queued, as --on-interrupt says or the user answers."""
    array.stopping = True
    if not array.flights:
        sys.stderr.write("simdoctor: interrupted; nothing of this run is in Slurm's queue; rerun to resume\n")
        return EXIT_INTERRUPTED
    choice = opts.on_interrupt
    if choice is None:
        choice = _ask(array) if ctrl_c and sys.stdin.isatty() else "leave"
    if choice == "leave":
        _leave(array)
        return EXIT_INTERRUPTED
    ids = array.job_ids()
    sys.stderr.write(f"simdoctor: interrupted: cancelling Slurm job(s) {', '.join(ids)}\n")
    try:
        left = array.cancel()
    except SlurmError as exc:
        sys.stderr.write(f"simdoctor: cannot cancel: {exc}\n")
        _leave(array)
        return EXIT_INTERRUPTED
    done = len(array.progress.scores)
    if left:
        sys.stderr.write(f"simdoctor: cancelled job(s) {', '.join(ids)}, but {', '.join(left)} still in the queue "
                         f"after {array.settings.recipe.slurm.cancel_wait_s:g} s (see squeue); {done} of "
                         f"{len(array.plan.tasks)} routes done\n")  # fmt: skip
    else:
        sys.stderr.write(
            f"simdoctor: interrupted: cancelled job(s) {', '.join(ids)}, none of their tasks is left; {done} of "
            f"{len(array.plan.tasks)} routes done; rerun the same command to resume\n"
        )
    return EXIT_INTERRUPTED


def _ask(array: ArrayRun) -> str:
    running = sum(1 for f in array.flights.values() if f.state in RUNNING)
    sys.stderr.write(
        f"\nsimdoctor: interrupted. {len(array.flights)} route(s) of this run are in Slurm's queue "
        f"({running} running) as job(s) {', '.join(array.job_ids())}.\n"
        "Cancel them? [y/N] (N: leave them running; rerun the same command to follow them) "
    )
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (KeyboardInterrupt, OSError):
        answer = ""
    return "cancel" if answer.strip().lower() in ("y", "yes") else "leave"


def _leave(array: ArrayRun) -> None:
    ids = array.job_ids()
    again = shlex.join(["simdoctor", *[a for a in sys.argv[1:] if a != "--fresh"]])
    sys.stderr.write(
        f"simdoctor: left running in Slurm: job(s) {', '.join(ids)} ({len(array.flights)} route(s)); "
        f"{len(array.progress.scores)} of {len(array.plan.tasks)} routes done\n"
        f"  reattach: {again}\n"
        f"  cancel:   {shlex.join(['scancel', *ids])}\n"
    )


def dry_run(settings: Settings, options: runplan.Options, opts: SlurmOptions, json_out: bool = False) -> int:
    """`run --executor slurm --dry-run`: the job script and the submission command of the first array."""
    from rich.text import Text

    from simdoctor.config.typed import to_data

    layout = runplan.out_layout(settings, options)
    check_options(settings, opts, layout)
    plan, _ = runplan.build(settings, options, [])
    ledger = jobs.read_ledger(layout)
    number = ledger.next_number()
    pending = [t for t in plan.pending if not any(t.route.id in s.routes for s in ledger.unsettled)]
    limit = opts.max_concurrent
    busy = sum(len(s.routes) for s in ledger.unsettled)
    throttle = None if limit is None else max(limit - busy, 1)
    comment = f"{settings.recipe.slurm.job_name}-…"
    text = job_script(settings, layout, plan, number, max(len(pending), 1), opts, throttle, comment)
    argv = submit_argv(layout, number)
    if json_out:
        payload = {"schema_version": DRY_RUN_SCHEMA_VERSION, "script_file": str(layout.script_file(number)),
                   "script": text, "submit": argv, "routes": [t.route.id for t in pending],
                   "following": [s.job_id for s in ledger.unsettled], "plan": to_data(plan)}  # fmt: skip
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    out = terminal.console()
    finished = len(plan.tasks) - len(plan.pending)
    out.print(Text(f"simdoctor run --executor slurm --dry-run · {plan.out}", style="bold"))
    out.print(
        f"routes: {len(plan.tasks)} from {plan.routes_source}" + (f" ({finished} finished)" if finished else "")
        + f" · seed {plan.seed} · retries {plan.retries} · route timeout {plan.route_timeout_s:g} s"
    )  # fmt: skip
    for note in plan.notes:
        out.print(Text(f"  ! {note}", style="yellow"))
    for sub in ledger.unsettled:
        out.print(f"a rerun follows Slurm job {sub.job_id} ({len(sub.routes)} route(s)) of an earlier run")
    if not pending:
        out.print("nothing to submit")
        return 0
    out.print(Text(f"\njob script ({layout.script_file(number)}, written with its spec at submission):", style="bold"))
    out.print(text.rstrip("\n"), markup=False, highlight=False)
    out.print(Text("\nsubmission:", style="bold"))
    out.print(shlex.join(argv), markup=False, highlight=False)
    out.print(Text("\narray index: route", style="bold"))
    for index, task in enumerate(pending):
        out.print(f"  {index}: {task.route.id} ({task.route.town}, {task.route.scenario_type})")
    out.print(Text("\non its node, each array task", style="bold"))
    out.print(
        "  maps the GPU Slurm gave it to NVML and Vulkan there, picks free ports there, and runs the evaluator command "
        "`simdoctor run --dry-run` shows for a local slot (--port, --traffic-manager-port, --gpu-rank and "
        "CUDA_VISIBLE_DEVICES from the node), with this environment:"
    )
    for name, value in plan.environment.items():
        out.print(f"  {name}={shlex.quote(value)}", markup=False, highlight=False)
    return 0


# ---- small helpers ----


def _quietly(call: Callable[[], Optional[str]]) -> Optional[str]:
    try:
        return call()
    except SlurmError:
        return None


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Ctrl-C, TERM and HUP wait until the block is done, then interrupt."""
    caught: list[int] = []
    wanted = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN]
    saved = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in wanted}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt
