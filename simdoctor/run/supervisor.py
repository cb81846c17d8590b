"""`simdoctor run`: the plan's routes driven on its worker slots, each attempt judged, retried, recorded.

- Scheduling: one thread per slot takes the next pending route and runs it to a decision; a slot runs
  one evaluator at a time. Each attempt gets its slot's planned ports when they are still free, else
  fresh ones; a retry always gets fresh ones (probes.ports.worker_ports, away from every port in use).
- An attempt: its identity (the proctree cookie, the ports, the log offset) is written to the route's
  task record before the evaluator starts, the leader's pid right after. The evaluator runs
  `runplan.launch`'s exact command in its own session; simdoctor stops it at `--route-timeout`. Then
  every process of the attempt is stopped, CARLA included (simdoctor.run.evaluator finds it by its cookie),
  then what left the attempt's tree (setsid and a cleared environment: seen by the sampler, or reparented
  to simdoctor, which makes itself the subreaper of its descendants), and the process table is checked:
  what survived is recorded and makes the run fail. The results JSON decides (results.judge): results
  stand, infrastructure failures are retried up to `--retries` and the route is then recorded as crashed.
- A dying CARLA: the evaluator does not notice one that dies at start (it sleeps 60 s, then tries the
  server 20 times with the whole client timeout each, the traffic manager 40 times, and dies with an
  UnboundLocalError: hours; upstream-behaviour.md §1). So once its log shows CARLA's launch line, the
  attempt's CARLA processes and CARLA's own output (in the same log) are watched: when no CARLA process is
  left, or CARLA printed a fatal line (carla.diagnose.FATAL), the evaluator gets DEATH_GRACE_S to write
  its record and is then stopped. The attempt is an infrastructure failure (retried) whose reason is
  CARLA's own line, with the fix `check` gives for it. An evaluator that ends with no record gives its
  traceback's last line as the reason. Upstream's crash clean-up (`ps -ef | grep '-graphicsadapter=N'
  ... | xargs kill -9`) kills nothing, so nothing is modelled for it (upstream-behaviour.md §2).
- Resume: `<out>/run.lock` (flock) is held for the run; a rerun first stops the processes of every
  attempt an earlier, killed simdoctor left unfinished (by its recorded identity, nothing else), then
  skips the routes already decided.
- Interrupt (Ctrl-C, SIGTERM, SIGHUP): every running attempt is stopped (verified), finished routes
  stay, interrupted attempts are recorded as such (no retry spent); exit 130.
- The Slurm backend runs this same Supervisor in each array task, on its node, with one slot and one
  attempt (`single`): a failed attempt is left for the login node's simdoctor to resubmit
  (simdoctor/run/slurm/node.py, simdoctor/run/slurm/backend.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import select
import shlex
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from simdoctor.carla import diagnose
from simdoctor.carla.errors import Refusal
from simdoctor.carla.lifecycle import terminate_as_interrupt
from simdoctor.config.agentenv import without_tokens
from simdoctor.config.settings import Settings
from simdoctor.doctor import distro, rootfix
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.ports import bindable, worker_ports
from simdoctor.run import profiling, report, results, runplan
from simdoctor.run.evaluator import EvaluatorRun
from simdoctor.run.outdir import Layout
from simdoctor.run.progress import Progress, slot_lane
from simdoctor.run.results import Attempt, Exit, Kind, TaskRecord
from simdoctor.run.runplan import Plan, Slot, Task
from simdoctor.run.sampling import PeakSampler
from simdoctor.run.slurm.jobs import refuse_if_in_flight
from simdoctor.run.viz import video
from simdoctor.system import filelock, procs, proctree, safefile, terminal
from simdoctor.system.procs import ProcessInfo
from simdoctor.system.proctree import StopResult

POLL_S = 0.05
TICK_S = 0.2
SAMPLE_S = 0.5
WATCH_S = 0.5  # how often an attempt's CARLA processes and new log lines are looked at
DEATH_GRACE_S = 2.0  # after CARLA died: time for the evaluator to write its own record (a crash mid-route)
OUTPUT_CAP = 4 << 20  # CARLA's words kept for the reason: a death at start says why in its first lines
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
RETRYING = "retrying with fresh ports"
ROOT_TEXT = (
    "Run `simdoctor run` as a normal user: the evaluator starts CARLA as the user running it, and CARLA refuses "
    "root. `setup` hands the stack (checkout, agent env, CARLA, weights) to one and continues as it."
)


class RunBusy(Refusal):
    pass


@dataclass
class Active:
    """An attempt running on a slot."""

    task: Task
    slot: Slot
    record: TaskRecord  # its last attempt is this one
    run: EvaluatorRun
    began: float  # monotonic
    carla_port: Optional[int] = None  # from its log's launch line, once seen
    carla_death: Optional[CarlaDeath] = None  # its CARLA died or printed a fatal line
    start_error: Optional[str] = None  # the evaluator could not be started

    @property
    def attempt(self) -> Attempt:
        return self.record.attempts[-1]

    def ports(self) -> set[int]:
        found = set(self.attempt.ports.values())
        if self.carla_port:
            found |= {self.carla_port, self.carla_port + 1, self.carla_port + 2}
        return found


@dataclass(frozen=True)
class CarlaDeath:
    """How an attempt's CARLA ended: seen at `at` (monotonic), `after_s` after its launch line."""

    at: float
    after_s: float
    diagnosis: Optional[diagnose.Diagnosis]  # CARLA's own words, when its output has a known line

    def reason(self) -> str:
        d = self.diagnosis
        said = f": {d.cause} (CARLA: `{d.lines[-1].strip()}`)" if d and d.lines else ""
        return f"CARLA died {self.after_s:.1f} s after the evaluator started it{said}; simdoctor stopped the evaluator"


class CarlaWatch:
    """Watches the CARLA an attempt's evaluator started: its processes, and its output in the route's log
    (CARLA writes to the evaluator's stdout), read on from where the last look stopped."""

    def __init__(self, run: EvaluatorRun, launched_at: float) -> None:
        self.run = run
        self.launched_at = launched_at
        self.offset = run.log_offset
        self.output = ""  # the attempt's log since the launch line's look, whole lines
        self.fatal: Optional[diagnose.Diagnosis] = None
        self.seen: list[ProcessInfo] = []  # CARLA's processes at the last full look

    def _alive(self) -> bool:
        """Whether CARLA still runs: the processes seen last still there (cheap: the shell and the launcher wait for
        the server, so they live as long as it does), else a full look at the attempt's processes."""
        self.seen = [p for p in self.seen if (now := procs.process(p.pid)) and now.start_ticks == p.start_ticks
                     and procs.is_alive(p.pid)]  # fmt: skip
        if not self.seen:
            self.seen = self.run.carla_processes()
        return bool(self.seen)

    def look(self, now: float) -> Optional[CarlaDeath]:
        """A CarlaDeath once no CARLA process is left or CARLA printed a fatal line; None while it lives."""
        text, self.offset = proctree.read_lines(self.run.log_file, self.offset)
        self.output += text[: max(0, OUTPUT_CAP - len(self.output))]
        if text and self.fatal is None:
            self.fatal = next((d for d in diagnose.diagnose(text, exited=False) if d.key in diagnose.FATAL), None)
        if self.fatal is None and self._alive():
            return None
        found = diagnose.first_cause(diagnose.diagnose(self.output)) or self.fatal
        return CarlaDeath(now, now - self.launched_at, found)


def charged(record: TaskRecord) -> int:
    """Retries the route has spent: its infrastructure failures."""
    return sum(1 for a in record.attempts if a.kind is Kind.RETRY)


def _line_base(path: Path, offset: int) -> int:
    """How many lines of the log come before `offset`."""
    try:
        with open(path, "rb") as handle:
            return handle.read(offset).count(b"\n")
    except OSError:
        return 0


class Supervisor:
    def __init__(
        self,
        plan: Plan,
        settings: Settings,
        progress: Progress,
        sampler: PeakSampler,
        fresh: bool,
        job: Optional[str] = None,
        single: bool = False,
        is_free: Callable[[int], bool] = bindable,
    ) -> None:
        """`job`: the Slurm array task this runs in (recorded in each attempt); `single`: one attempt per
        task, and a failed one is not decided here (the Slurm backend resubmits it); `is_free`: whether a
        port may be taken (the node's cross-task port claims)."""
        self.plan = plan
        self.settings = settings
        self.carla = settings.recipe.carla
        self.grace = settings.recipe.carla.stop_grace_s
        self.progress = progress
        self.sampler = sampler
        self.fresh = fresh
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pending: deque[Task] = deque(plan.pending)
        self.active: dict[int, Active] = {}  # by slot index
        self.reserved: dict[int, set[int]] = {}  # ports taken by each slot's attempt, before and while it runs
        self.errors: list[BaseException] = []
        self.unclean: list[str] = []  # attempts whose processes survived the cleanup
        self.attempts = 0
        self.job = job
        self.single = single
        self.is_free = is_free
        self.host = socket.gethostname()

    # ---- the run ----

    def run(self) -> bool:
        """Run every pending route; False when interrupted (everything running was stopped)."""
        proctree.become_subreaper()
        threads = [threading.Thread(target=self._worker, args=(s,), name=f"slot-{s.index}") for s in self.plan.slots]
        for thread in threads:
            thread.start()
        interrupted = False
        try:
            while any(t.is_alive() for t in threads):
                time.sleep(TICK_S)
        except KeyboardInterrupt:
            interrupted = True
            self.progress.note("interrupted: stopping the running routes")
        finally:
            self.stopping.set()
            with _shielded():
                for thread in threads:
                    thread.join()
        strays = self._escaped(None, set())
        swept = self._stop_strays(strays, lambda: self._escaped(None, set()))
        if strays:
            self.progress.note(f"stopped {len(strays)} process(es) that had left the routes' process trees: "
                               f"{_listed(strays)}")  # fmt: skip
        if swept.left:
            self.unclean.append(f"still running after the routes ended: {_listed(swept.left)}")
        if self.errors:
            raise self.errors[0]
        return not interrupted

    def _worker(self, slot: Slot) -> None:
        try:
            while not self.stopping.is_set():
                with self.lock:
                    if not self.pending:
                        break
                    task = self.pending.popleft()
                self._run_task(slot, task)
        except BaseException as exc:  # stop the whole run, cleanly, and let the main thread raise it
            self.errors.append(exc)
            self.stopping.set()
            with self.lock:
                active = self.active.pop(slot.index, None)
            if active is not None:
                active.run.stop(self.grace)
        finally:
            self.progress.idle(slot_lane(slot))

    def _run_task(self, slot: Slot, task: Task) -> None:
        record = self._initial_record(task)
        used: set[int] = set()
        while not self.stopping.is_set():
            active = self._launch(slot, task, record, self._take_ports(slot, used))
            outcome = self._wait(active)
            record, decided = self._finish(active, outcome)
            attempt = record.last
            if decided or (self.single and attempt.kind is Kind.RESULT):
                self.record_view(task)
            if outcome == "interrupted" or decided or self.single:
                return
            used |= set(attempt.ports.values())
            if attempt.carla_port:
                used |= {attempt.carla_port, attempt.carla_port + 1, attempt.carla_port + 2}

    def record_view(self, task: Task) -> None:
        """--viz: the route's video from the frames SimLingo drew on its final attempt."""
        if self.plan.viz_every:
            layout = Layout(Path(self.plan.out), self.settings.recipe.run)
            line = video.record_route(layout, task.route.id, self.settings.recipe.viz, self.plan.viz_every,
                                      self.plan.keep_frames)  # fmt: skip
            if line:
                self.progress.note(line)

    def _initial_record(self, task: Task) -> TaskRecord:
        """Resume the route's record (its attempts count), or start it afresh with --fresh."""
        if self.fresh:
            forget(task)
            return TaskRecord(task.route.id)
        earlier = results.read_task(Path(task.task_file))
        return dataclasses.replace(earlier, final=None) if earlier else TaskRecord(task.route.id)

    # ---- ports ----

    def _take_ports(self, slot: Slot, used: set[int]) -> dict[str, int]:
        """The slot's own ports when free and this is the route's first attempt here, else fresh ones."""
        with self.lock:
            taken = set(used)
            for other in self.plan.slots:
                if other.index != slot.index:
                    taken |= set(other.ports.values())
            for index, ports in self.reserved.items():
                if index != slot.index:
                    taken |= ports
            for active in self.active.values():
                taken |= active.ports()
            own = slot.ports
            if not used and all(p not in taken and self.is_free(p) for p in own.values()):
                ports = dict(own)
            else:
                try:
                    base = self.settings.recipe.run.port_base
                    ports = worker_ports(self.carla, 1, base, frozenset(taken), self.is_free)[0]
                except RuntimeError as exc:
                    raise runplan.RunError(str(exc)) from None
            self.reserved[slot.index] = set(ports.values())
            return ports

    # ---- processes that left an attempt's tree ----

    def _leaders(self) -> set[int]:
        with self.lock:
            return {a.run.tree.pid for a in self.active.values()}

    def _reap(self) -> None:
        proctree.reap_orphans(self._leaders())

    def _stop_strays(self, strays: list[procs.ProcessInfo], find: Callable[[], list[procs.ProcessInfo]]) -> StopResult:
        """Stop them (verified, `find` looks again), then reap the orphans that ended meanwhile."""
        stopped = proctree.stop_found(find, self.grace, reap=self._reap) if strays else StopResult()
        self._reap()
        return stopped

    def _escaped(self, active: Optional[Active], seen: set[tuple[int, int]]) -> list[procs.ProcessInfo]:
        """What is left of an attempt (`active`; None: of any attempt, at the end of the run) outside its cookie
        and its process group: processes the sampler saw in its tree (`seen`), and orphans reparented to this
        subreaper that no other running attempt was seen with; an orphan never seen is taken only when no other
        attempt runs. With their descendants."""
        table = procs.processes()
        with self.lock:
            others = [a for a in self.active.values() if a is not active]
        theirs = set().union(*(self.sampler.seen(a.run.tree.id) for a in others))
        roots = {p.pid for p in table if (p.pid, p.start_ticks) in seen}
        for p in proctree.orphans(table, self._leaders()):
            key = (p.pid, p.start_ticks)
            if key not in theirs and (key in seen or not others):
                roots.add(p.pid)
        found = proctree.descendants(roots, table)
        return [p for p in table if p.pid in found and procs.is_alive(p.pid)]

    # ---- one attempt ----

    def _launch(self, slot: Slot, task: Task, record: TaskRecord, ports: dict[str, int]) -> Active:
        number = len(record.attempts) + 1
        log = Path(task.log_file)
        log.parent.mkdir(parents=True, exist_ok=True)
        viz = [task.frames_file] if self.plan.viz_every else []
        for path in (task.results_file, task.steps_file, *viz):  # what is there now is an earlier attempt's
            Path(path).unlink(missing_ok=True)
            Path(path).parent.mkdir(parents=True, exist_ok=True)  # the evaluator and the agent only open them
        run = EvaluatorRun.prepare(log, str(self.settings.carla_root), self.carla)
        with safefile.open_append(log) as handle:
            roles = " ".join(f"{role}={port}" for role, port in ports.items())
            handle.write(f"===== simdoctor: route {task.route.id} attempt {number} on slot {slot.index} ({roles}) "
                         f"at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode())  # fmt: skip
        attempt = Attempt(number, slot.index, ports, time.time(), tree=run.tree, log_offset=run.log_offset,
                          host=self.host, job=self.job)  # fmt: skip
        record = dataclasses.replace(record, attempts=[*record.attempts, attempt], final=None)
        results.write_task(Path(task.task_file), record)  # the identity first: a rerun finds exactly these
        launch = runplan.launch(self.plan, task, dataclasses.replace(slot, ports=ports))
        active = Active(task, slot, record, run, time.monotonic())
        with self.lock:
            self.active[slot.index] = active
            self.attempts += 1
        self.progress.started(slot_lane(slot), task.route.id, task.route.town, number, ports)
        try:
            run.start(launch.argv, without_tokens({**os.environ, **launch.env}), launch.cwd)
        except OSError as exc:
            run.popen = None
            active.start_error = f"cannot start the evaluator: {exc.strerror or exc}"
            return active
        active.record = dataclasses.replace(
            record, attempts=[*record.attempts[:-1], dataclasses.replace(attempt, tree=run.tree)]
        )
        results.write_task(Path(task.task_file), active.record)
        self.sampler.watch(run.tree.id, run.tree.pid)
        return active

    def _wait(self, active: Active) -> str:
        """exited, timeout, carla_died, aborted or interrupted. The evaluator's exit is seen through a pidfd
        the moment it happens; its CARLA is looked at every WATCH_S once the log shows its launch line."""
        deadline = active.began + self.plan.route_timeout_s
        popen = active.run.popen
        watch: Optional[CarlaWatch] = None
        next_look = 0.0
        with _pidfd(popen.pid if popen is not None else None) as fd:
            while True:
                code = popen.poll() if popen is not None else None
                if code is not None:
                    return "exited"
                if active.start_error is not None:
                    return "aborted"
                if self.stopping.is_set():
                    return "interrupted"
                now = time.monotonic()
                if now >= deadline:
                    return "timeout"
                if active.carla_port is None:
                    active.carla_port = active.run.carla_port()
                    if active.carla_port is not None:
                        watch = CarlaWatch(active.run, now)
                if watch is not None and active.carla_death is None and now >= next_look:
                    next_look = now + WATCH_S
                    active.carla_death = watch.look(now)
                if active.carla_death is not None and now - active.carla_death.at >= DEATH_GRACE_S:
                    assert watch is not None
                    again = watch.look(now)  # still gone? (a process table read mid-change can miss it)
                    if again is None:
                        active.carla_death = None
                    else:  # the first sighting's time, the words CARLA has written by now
                        active.carla_death = dataclasses.replace(active.carla_death, diagnosis=again.diagnosis)
                        return "carla_died"
                if fd is not None:
                    select.select([fd], [], [], POLL_S)
                else:
                    time.sleep(POLL_S)

    def _finish(self, active: Active, outcome: str) -> tuple[TaskRecord, bool]:
        """Stop what is left of the attempt (verified), judge it, record it; True when the route is decided."""
        task, run = active.task, active.run
        seen = self.sampler.seen(run.tree.id)
        stopped = run.stop(self.grace)
        strays = self._escaped(active, seen)
        escaped = self._stop_strays(strays, lambda: self._escaped(active, seen))
        peaks = self.sampler.release(run.tree.id)
        code = run.popen.poll() if run.popen is not None else None
        base = _line_base(run.log_file, run.log_offset)
        findings = [dataclasses.replace(f, line_number=f.line_number + base) for f in results.scan_log(run.log_text())]
        done = dict(
            ended=time.time(), returncode=code, timed_out=outcome == "timeout", log=findings,
            peak_gpu_bytes=peaks.gpu_bytes, peak_ram_bytes=peaks.ram_bytes, carla_port=run.carla_port(),
            left=[p.pid for p in stopped.left + escaped.left], steps=profiling.summarize(Path(task.steps_file)),
        )  # fmt: skip
        found = results.read_results(Path(task.results_file))
        score = found.last.score_composed if found.last else None
        if outcome == "interrupted":
            what = f"stopped {len(stopped.terminated)} process(es)" if stopped.terminated else "nothing was running"
            attempt = dataclasses.replace(active.attempt, **done, reason=f"interrupted; {what}")
        else:
            verdict = results.judge(found, Exit(code, timed_out=outcome == "timeout"), run.log_text())
            reason, fix = verdict.reason, None
            if active.start_error is not None:
                reason = f"{active.start_error}; {reason}"
            elif outcome == "carla_died" and verdict.status is None:
                death = active.carla_death
                assert death is not None
                fix = distro.localize(death.diagnosis.fix, distro.Machine.here()) if death.diagnosis else None
                reason = death.reason()
            attempt = dataclasses.replace(active.attempt, **done, kind=verdict.kind, status=verdict.status,
                                          reason=reason, fix=fix)  # fmt: skip
        record = dataclasses.replace(active.record, attempts=[*active.record.attempts[:-1], attempt])
        used_up = not self.single and attempt.kind is Kind.RETRY and charged(record) > self.plan.retries
        decided = attempt.kind is Kind.RESULT or used_up
        if decided:
            record = dataclasses.replace(record, final="result" if attempt.kind is Kind.RESULT else "crashed")
        results.write_task(Path(task.task_file), record)
        with self.lock:
            self.active.pop(active.slot.index, None)
            self.reserved.pop(active.slot.index, None)
        if strays:
            self.progress.note(f"route {task.route.id} attempt {attempt.number}: stopped {len(strays)} process(es) "
                               f"that had left its process tree: {_listed(strays)}")  # fmt: skip
        if stopped.left or escaped.left:
            left = _listed(stopped.left + escaped.left)
            self.unclean.append(f"route {task.route.id} attempt {attempt.number}: still running: {left}")
            self.progress.note(f"route {task.route.id}: processes survived the cleanup: {left}")
        again = "the login node's simdoctor resubmits it while retries last" if self.single else RETRYING
        line = describe(record, self.plan.retries, again)
        self.progress.ended(slot_lane(active.slot), task.route.id, line, score, decided)
        return record, decided


def _listed(found: list[procs.ProcessInfo]) -> str:
    return ", ".join(f"pid {p.pid} ({p.command[:80]})" for p in found)


def describe(record: TaskRecord, retries: int, again: str = RETRYING) -> str:
    """One line on how the route's last attempt ended, for the progress lines; `again` says what happens
    to a route that will run once more."""
    attempt = record.attempts[-1]
    took = f"{attempt.ended - attempt.started:.1f} s" if attempt.ended else ""
    if attempt.kind is None:
        return f"attempt {attempt.number} interrupted ({attempt.reason}); a rerun resumes it"
    if attempt.kind is Kind.RESULT:
        return f"{attempt.status} in {took}"
    seen = f" [log: {'; '.join(f.meaning for f in attempt.log[:3])}]" if attempt.log else ""
    if record.final == "crashed":
        return f"crashed after {len(record.attempts)} attempt(s): {attempt.reason}{seen}"
    return f"{attempt.reason} ({took}){seen}; {again} (retries spent {charged(record)} of {retries})"


def forget(task: Task) -> None:
    """--fresh: the route's earlier results, record, log and steps are removed."""
    for path in (task.log_file, task.results_file, task.steps_file, task.task_file, task.frames_file):
        if path:
            Path(path).unlink(missing_ok=True)


@contextlib.contextmanager
def _pidfd(pid: Optional[int]) -> Iterator[Optional[int]]:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+); None where there is none."""
    fd = None
    if pid is not None and hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            fd = os.pidfd_open(pid)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """While the running routes are being stopped, further Ctrl-C/TERM/HUP do not cut that short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


# ---- the folder: lock, stale attempts ----


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """Hold <out>/run.lock for the run; the kernel drops it when simdoctor dies, however it dies."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(filelock.exclusive(layout.lock_file, "simdoctor run"))
        except filelock.Busy as exc:
            raise RunBusy(
                f"another `simdoctor run` ({exc.holder}) is using {layout.root}",
                Fix("Wait for it, stop it (Ctrl-C), or use another --out."),
            ) from None
        except OSError as exc:
            where = exc.filename or layout.lock_file
            raise Refusal(f"cannot use {layout.root} as the output folder: {exc.strerror or exc} ({where})",
                          Fix("Pass an --out this user can write to.")) from None  # fmt: skip
        yield


@contextlib.contextmanager
def writing(root: Path) -> Iterator[None]:
    """A file the run cannot write (a full disk, a folder made read-only) ends it with one line naming the
    file; what was written stays, and the same command resumes."""
    try:
        yield
    except OSError as exc:
        full = exc.errno == errno.ENOSPC
        what = "Free space on that disk" if full else "Make it writable for this user"
        fix = Fix(f"{what}, then rerun the same command: it resumes where this run stopped.",
                  [f"df -h {shlex.quote(str(root))}"] if full else [])  # fmt: skip
        raise Refusal(f"cannot write {exc.filename or root}: {exc.strerror or exc}", fix) from None


def attempt_run(layout: Layout, route_id: str, attempt: Attempt, settings: Settings) -> EvaluatorRun:
    """An earlier attempt's evaluator run, rebuilt from its record (to find and stop what is left of it)."""
    assert attempt.tree is not None
    return EvaluatorRun(attempt.tree, layout.log_file(route_id), attempt.log_offset, str(settings.carla_root),
                        settings.recipe.carla)  # fmt: skip


def clean_stale(layout: Layout, settings: Settings) -> list[str]:
    """Stop the processes of every attempt an earlier simdoctor left unfinished (killed with it still
    running): found by the attempt's recorded cookie, pid and ports only. Each such attempt is then
    judged on what it left (a result written before it was stopped stands) or recorded as interrupted.
    Attempts of Slurm array tasks are not this machine's: the Slurm backend settles them."""
    lines = []
    for path in sorted(layout.tasks_dir.glob("*.json")) if layout.tasks_dir.is_dir() else []:
        record = results.read_task(path)
        attempt = record.last if record else None
        if record is None or attempt is None or attempt.ended is not None or attempt.tree is None or attempt.job:
            continue
        route_id = record.route_id
        run = attempt_run(layout, route_id, attempt, settings)
        stopped = run.stop(settings.recipe.carla.stop_grace_s)
        verdict = results.judge(results.read_results(layout.results_file(route_id)), Exit(None))
        what = f"stopped {len(stopped.terminated)} process(es) it left running" if stopped.terminated else (
            "nothing of it was still running")  # fmt: skip
        fields = dict(ended=time.time(), carla_port=run.carla_port(), left=[p.pid for p in stopped.left],
                      steps=profiling.summarize(layout.steps_file(route_id)))  # fmt: skip
        if verdict.kind is Kind.RESULT:
            attempt = dataclasses.replace(attempt, **fields, kind=verdict.kind, status=verdict.status,
                                          reason=verdict.reason)  # fmt: skip
            record = dataclasses.replace(record, final="result")
        else:
            reason = f"interrupted: the simdoctor running it was killed; the next run {what}"
            attempt = dataclasses.replace(attempt, **fields, reason=reason)
        record = dataclasses.replace(record, attempts=[*record.attempts[:-1], attempt])
        results.write_task(path, record)
        line = f"route {route_id} attempt {attempt.number} of an earlier run: {what}"
        if stopped.left:
            line += "; STILL RUNNING: " + ", ".join(str(p.pid) for p in stopped.left)
        lines.append(line)
    return lines


# ---- the command ----


def refuse_root(settings: Optional[Settings] = None) -> None:
    """Before anything starts; with the settings, the fix is `check`'s root path (setup --user, then su -)."""
    if os.geteuid() == 0:
        raise Refusal(
            "refusing to run as root: the evaluator starts CARLA as this user, and CARLA refuses root "
            "(`Refusing to run with the root privileges.`); every route would fail",
            rootfix.root_fix(settings, ROOT_TEXT) if settings is not None else Fix(ROOT_TEXT),
        )


def finished_scores(plan: Plan) -> dict[str, float]:
    """score_composed of the routes a resumed run skips (0 for a route recorded as crashed with no record)."""
    scores = {}
    for task in plan.tasks:
        if task.finished:
            record = results.read_results(Path(task.results_file)).last
            scores[task.route.id] = record.score_composed if record else 0.0
    return scores


def run(settings: Settings, options: runplan.Options, json_out: bool = False) -> int:
    """`simdoctor run`: 0 when every route of the set has a result, 1 when some crashed or are missing
    (or the run could not start, or left processes behind), 130 when interrupted (all stopped)."""
    refuse_root(settings)
    plan, texts = runplan.make_or_explain(settings, options, json_out)
    if plan is None:
        return EXIT_FAILED
    layout = Layout(Path(plan.out), settings.recipe.run)
    with writing(layout.root):
        return _run(plan, texts, layout, settings, options, json_out)


def _run(plan: Plan, texts: list, layout: Layout, settings: Settings, options: runplan.Options, json_out: bool) -> int:
    mode = "quiet" if json_out else ("live" if is_terminal() else "lines")
    began = time.monotonic()
    with locked(layout):
        refuse_if_in_flight(layout)
        stale = clean_stale(layout, settings)
        if stale:  # a stale attempt may have left a result: plan again, so it is skipped
            plan, texts = runplan.build(settings, options, plan.slots, plan.notes)
        runplan.prepare(plan, texts, settings)
        progress = Progress(plan, finished_scores(plan), mode)
        for line in stale:
            progress.note(line)
        unrecorded = [t for t in plan.tasks if plan.viz_every and t.finished and video.unrecorded(layout, t.route.id)]
        skipped = len(plan.tasks) - len(plan.pending)
        progress.note(
            f"{len(plan.tasks)} routes, {skipped} already done, {len(plan.pending)} to run on {len(plan.slots)} "
            f"slot(s) · out {plan.out}"
        )
        with terminate_as_interrupt(), PeakSampler(SAMPLE_S) as sampler, progress:
            supervisor = Supervisor(plan, settings, progress, sampler, options.fresh)
            for task in unrecorded:  # finished before a kill cut its encoding short
                supervisor.record_view(task)
            try:
                completed = supervisor.run()
            except runplan.RunError as exc:  # no free ports for a retry: everything running was stopped
                sys.stderr.write(f"simdoctor: {exc}\n")
                return EXIT_FAILED
        if not completed:
            left = "; ".join(supervisor.unclean) or "nothing left running (process table checked)"
            sys.stderr.write(f"simdoctor: interrupted: {len(progress.scores)} of {len(plan.tasks)} routes done; "
                             f"{left}; rerun the same command to resume\n")  # fmt: skip
            return EXIT_INTERRUPTED
    return conclude(plan, settings, progress, supervisor.attempts, began, supervisor.unclean, json_out)


def conclude(plan: Plan, settings: Settings, progress: Progress, attempts: int, began: float, unclean: list[str],
             json_out: bool) -> int:  # fmt: skip
    """The end of a run, either backend: the totals, the report, what survived a cleanup; the exit code."""
    took = time.monotonic() - began
    progress.note(f"ran {attempts} attempt(s) of {len(plan.pending)} route(s) in {took:.1f} s")
    built = report.publish(Path(plan.out), settings.recipe.run, json_out, settings=settings)
    for line in unclean:
        sys.stderr.write(f"simdoctor: {line}\n")
    failed = built.crashed or built.missing or unclean
    return EXIT_FAILED if failed else EXIT_OK


def is_terminal() -> bool:

    return terminal.console().is_terminal
