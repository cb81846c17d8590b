"""`simdoctor run --executor slurm` end to end against the real single-node Slurm cluster (tests/slurmcluster.py):
the real command as the non-root test user, who submits the arrays (Slurm runs each task as the submitter);
each task runs `simdoctor run-task` on the node, which starts the stand-in Bench2Drive evaluator and the full
stand-in CARLA. Tasks ask for no GPU (`--gpus-per-task 0`, like a local `--gpus none`): this machine has no
NVML, so the GPU mapping is tested from facts (test_slurm_units.py), and one test shows a GPU task failing
clearly on a node without NVML. Every test ends with none of its jobs in the queue (a fixture cancels what a
failed test left) and no process of the test user (the standin_stack fixture)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import builders
import pytest
from test_run import route, wait_for

from simdoctor.run import results
from simdoctor.run.results import Kind
from simdoctor.system import procs, proctree
from tests.conftest import Stack

SLURM = ("--executor", "slurm", "--gpus-per-task", "0", "--cpus-per-task", "1", "--mem", "200M")


class Run:
    """One stack and one cluster: the commands, the files, the queue."""

    def __init__(self, stack: Stack, cluster) -> None:
        self.stack, self.cluster = stack, cluster
        self.out = stack.home / "out"

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.stack.env(SLURM_CONF=self.cluster.env["SLURM_CONF"]), **extra}

    def command(self, specs, *extra: str, out=None) -> list[str]:
        source = builders.routes_xml(self.stack.home / "routes.xml", specs)
        os.chown(source, self.stack.rt.uid, self.stack.rt.gid)
        return self.stack.rt.simdoctor("run", "--routes", str(source), "--out", str(out or self.out), *extra)

    def run(self, specs, *extra: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(specs, *extra), env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout, cwd=self.stack.home)  # fmt: skip

    def background(self, specs, *extra: str) -> subprocess.Popen:
        out = open(self.stack.home / "run.out", "w")  # noqa: SIM115 (the process holds it)
        err = open(self.stack.home / "run.err", "w")  # noqa: SIM115
        return subprocess.Popen(self.command(specs, *extra), env=self.env(), stdout=out, stderr=err,
                                cwd=self.stack.home, start_new_session=True)  # fmt: skip

    def output(self, name: str = "run.out") -> str:
        return (self.stack.home / name).read_text(errors="replace")

    def records(self) -> dict[str, results.TaskRecord]:
        found = {}
        for path in sorted((self.out / "tasks").glob("*.json")):
            record = results.read_task(path)
            assert record is not None, path.read_text()
            found[record.route_id] = record
        return found

    def last(self, route_id: str):
        record = results.read_task(self.out / "tasks" / f"{route_id}.json")
        return record.last if record else None

    def hanging(self, route_id: str) -> bool:
        log = self.out / "logs" / f"{route_id}.log"
        return log.exists() and "hanging on purpose" in log.read_text(errors="replace")

    def submissions(self) -> list[dict]:
        path = self.out / "slurm" / "jobs.json"
        return json.loads(path.read_text())["submissions"] if path.exists() else []

    def queued(self) -> list[str]:
        """The test user's array tasks in the queue."""
        done = subprocess.run(["squeue", "-h", "-r", "-u", self.stack.rt.user, "-o", "%i"], env=self.cluster.env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.split()

    def scancel(self, job: str) -> None:
        """As the cluster's admin: behind simdoctor's back."""
        subprocess.run(["scancel", job], env=self.cluster.env, check=True)


@pytest.fixture
def slurm(standin_stack: Stack, slurm_cluster) -> Iterator[Run]:
    run = Run(standin_stack, slurm_cluster)
    yield run
    left = run.queued()
    if left:  # a failed test's jobs: cancel exactly those this stack submitted, so the next test starts clean
        ours = [s["job_id"] for s in run.submissions() if s["job_id"]]
        if ours:
            subprocess.run(["scancel", *ours], env=slurm_cluster.env, check=False)
        wait_for(lambda: not run.queued(), "the leftover jobs to leave the queue", timeout=90)
        pytest.fail(f"jobs left in the queue: {left}")


def read(fd: int, timeout: float = 60) -> bytes:
    """What the terminal shows next; b"" once its other side is closed (or nothing came for `timeout` s)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side closed
        return b""


def compare(report: dict) -> tuple:
    rows = {r["route_id"]: (r["status"], r["score_composed"], r["success"], r["attempts"]) for r in report["rows"]}
    return report["driving_score"], report["success_rate"], report["statuses"], report["crashed"], rows


def test_an_array_resubmits_failures_and_a_scancel_and_reports_as_local(slurm: Run) -> None:
    """Seven routes as one array, two tasks at a time. Route 3's evaluator SIGKILLs itself once (no record, its
    CARLA left running on the node); the test scancels route 5's task while it hangs; it SIGKILLs route 7's
    task (the node's simdoctor: a task killed outright, as by a node failure), whose evaluator and CARLA live
    on. simdoctor resubmits each as a new array of just those routes (the task that runs route 7 again stops
    what the killed one left on the node), and the report equals a local run's on the same routes."""
    specs = [
        route("1"),
        route("2", "completed", town="Town02"),
        route("3", "die", standin_failing_attempts="1"),
        route("4", "blocked", kind="HardBreakRoute"),
        route("5", "hang", standin_failing_attempts="1"),
        route("6", standin_wall_s="1"),
        route("7", "hang", standin_failing_attempts="1"),
    ]
    run = slurm.background(specs, *SLURM, "--max-concurrent", "2", "--route-timeout", "60", "--json")
    try:
        wait_for(lambda: slurm.hanging("5"), "route 5 hanging in its array task", timeout=120)
        cancelled = slurm.last("5").job
        slurm.scancel(cancelled)
        wait_for(lambda: slurm.hanging("7"), "route 7 hanging in its array task", timeout=120)
        killed = slurm.last("7")
        left = proctree.members(killed.tree)  # the evaluator and the CARLA it started
        os.kill(procs.process(killed.tree.pid).ppid, signal.SIGKILL)  # the task's `simdoctor run-task`
        assert run.wait(timeout=180) == 0, slurm.output() + slurm.output("run.err")
    finally:
        if run.poll() is None:
            run.kill()
    report = json.loads(slurm.output())  # --json: only the report on stdout
    records = slurm.records()
    first, *resubmitted = slurm.submissions()
    array = first["job_id"]
    assert first["routes"] == ["1", "2", "3", "4", "5", "6", "7"] and first["throttle"] == 2
    # Only the two failed routes were submitted again, each as a new array of just those routes.
    assert sorted(r for s in resubmitted for r in s["routes"]) == ["3", "5", "7"]
    assert all(s["job_id"] != array and s["done"] and not s["cancelled"] for s in resubmitted)
    jobs = {k: [a.job for a in r.attempts] for k, r in records.items()}
    for route_id in ("1", "2", "4", "6"):
        assert jobs[route_id] == [f"{array}_{first['routes'].index(route_id)}"] and records[route_id].final == "result"
    died, again = records["3"].attempts
    assert (died.kind, died.status, again.kind, again.status) == (Kind.RETRY, None, Kind.RESULT, "Perfect")
    assert died.reason.startswith("no route record written; the evaluator killed by SIGKILL")
    assert died.job == f"{array}_2" and again.job.split("_")[0] != array
    stopped, again = records["5"].attempts
    assert stopped.job == cancelled and (stopped.kind, again.kind, again.status) == (Kind.RETRY, Kind.RESULT, "Perfect")
    assert f"array task {cancelled} was stopped by Slurm: CANCELLED" in stopped.reason  # from slurmstepd's line
    lost, again = records["7"].attempts
    assert (lost.job, lost.kind, again.kind, again.status) == (killed.job, Kind.RETRY, Kind.RESULT, "Perfect")
    assert lost.ended and lost.reason.endswith("no route record written; the evaluator ended in an unknown way")
    assert any(procs.matches_name(p, "CarlaUE4-Linux-Shipping") for p in left)
    rerun = again.job.split("_")
    log = (
        slurm.out
        / "slurm"
        / str(next(s["number"] for s in resubmitted if s["job_id"] == rerun[0]))
        / (f"{again.job}.log")
    )
    assert "left running here" in log.read_text()  # stopped by the task that ran route 7 again
    # Each attempt ran on the node as the array task, on ports claimed there, and left nothing running.
    attempts = [a for r in records.values() for a in r.attempts]
    assert all(a.host == slurm.cluster.host and a.tree.pid > 0 and a.left == [] for a in attempts)
    for a in attempts:
        for b in attempts:
            if a is not b and a.started < b.ended and b.started < a.ended:
                assert not set(a.ports.values()) & set(b.ports.values()), (a.job, a.ports, b.job, b.ports)
    assert slurm.queued() == []
    # The same routes with the local executor (the stand-ins' failing first attempts counted afresh). Routes 5 and
    # 7 hang until the route timeout; it leaves room for an evaluator that starts slowly on a loaded machine: the
    # stand-in counts an attempt only once its route loads, so a start killed by the timeout would fail again.
    state = slurm.stack.home / "local-state"
    state.mkdir()
    shutil.chown(state, slurm.stack.rt.uid, slurm.stack.rt.gid)
    local = subprocess.run(
        slurm.command(specs, "--gpus", "none", "--workers-per-gpu", "2", "--route-timeout", "20", "--json",
                      out=slurm.stack.home / "out-local"),
        env=slurm.env(STANDIN_STATE_DIR=str(state)), capture_output=True, text=True, timeout=240, cwd=slurm.stack.home,
    )  # fmt: skip
    assert local.returncode == 0, local.stdout + local.stderr
    assert compare(report) == compare(json.loads(local.stdout))
    assert report["statuses"] == {"Perfect": 5, "Completed": 1, "Failed - Agent got blocked": 1}


def test_reattach_after_simdoctor_is_killed(slurm: Run) -> None:
    """SIGKILL leaves the array queued and running; the rerun follows the same job (nothing resubmitted that is
    still queued), resubmits only the route whose simulator crashed, and finishes."""
    specs = [route("1", standin_wall_s="3"), route("2", "sim_crash", standin_failing_attempts="1"), route("3")]
    args = (*SLURM, "--max-concurrent", "1", "--route-timeout", "60")
    first = slurm.background(specs, *args)
    try:
        wait_for(lambda: slurm.last("1") is not None and slurm.last("1").job, "route 1 running in its task", 120)
    finally:
        first.kill()
        first.wait()
    (submission,) = slurm.submissions()
    array = submission["job_id"]
    assert f"{array}_0" in slurm.queued()  # simdoctor died; its array did not
    done = slurm.run(specs, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"following Slurm job(s) {array} of an earlier run (3 route(s))" in done.stdout
    assert "3 in Slurm's queue, 0 to submit" in done.stdout
    subs = slurm.submissions()
    assert [(s["job_id"] == array, s["routes"]) for s in subs] == [(True, ["1", "2", "3"]), (False, ["2"])]
    records = slurm.records()
    assert [a.job for a in records["1"].attempts] == [f"{array}_0"]
    assert [a.job for a in records["3"].attempts] == [f"{array}_2"]
    crashed, again = records["2"].attempts
    assert (crashed.job, crashed.kind, crashed.status) == (f"{array}_1", Kind.RETRY, "Failed - Simulation crashed")
    assert crashed.returncode == 255 and (again.job, again.status) == (f"{subs[1]['job_id']}_0", "Perfect")
    assert slurm.queued() == []


def test_ctrl_c_asks_on_a_terminal_leaves_and_then_cancels(slurm: Run) -> None:
    """On a terminal, Ctrl-C asks; 'n' leaves the array running and says how to reattach and cancel; a local run
    then refuses the folder; a rerun without a terminal reattaches, and SIGINT with --on-interrupt cancel
    cancels the array: no job and no process is left, and the interrupted attempts cost no retry."""
    import pty

    specs = [route("1", "hang", standin_failing_attempts="1"), route("2", "hang", standin_failing_attempts="1")]
    args = (*SLURM, "--max-concurrent", "2", "--route-timeout", "120", "--retries", "0")
    cmd = slurm.command(specs, *args)
    env = {k: v for k, v in slurm.env(TERM="xterm", COLUMNS="160").items() if k != "NO_COLOR"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else
        os.chdir(slurm.stack.home)
        os.execvpe(cmd[0], cmd, env)
    screen = b""
    try:
        deadline = time.monotonic() + 120
        while not (b"on %s: route 2 (Town01) attempt 1, port" % slurm.cluster.host.encode() in screen
                   and slurm.hanging("1") and slurm.hanging("2")):  # fmt: skip
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            screen += read(fd, timeout=0.2)  # read as it comes: a full terminal would block simdoctor
        os.write(fd, b"\x03")  # Ctrl-C at the terminal: SIGINT to its foreground process group
        while b"Cancel them? [y/N]" not in screen:
            chunk = read(fd)
            assert chunk, screen.decode(errors="replace")
            screen += chunk
        os.write(fd, b"n\n")
        while chunk := read(fd):
            screen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = screen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 130, text
    (submission,) = slurm.submissions()
    array = submission["job_id"]
    assert f"task {array}_0 on {slurm.cluster.host}: route 1 (Town01) attempt 1, port " in text  # the live view
    assert "Slurm: 2 running, 0 queued" in text
    assert f"left running in Slurm: job(s) {array} (2 route(s))" in text
    assert "reattach: simdoctor run --routes" in text and f"cancel:   scancel {array}" in text
    assert sorted(slurm.queued()) == [f"{array}_0", f"{array}_1"]
    local = slurm.run(specs, "--gpus", "none")
    assert local.returncode == 1 and f"has Slurm job(s) {array} not followed to their end" in local.stderr
    again = slurm.background(specs, *args, "--on-interrupt", "cancel")
    try:
        wait_for(lambda: f"following Slurm job(s) {array}" in slurm.output(), "the rerun following the array")
        time.sleep(1)
        os.killpg(again.pid, signal.SIGINT)
        assert again.wait(timeout=120) == 130, slurm.output() + slurm.output("run.err")
    finally:
        if again.poll() is None:
            again.kill()
    out = slurm.output("run.err")
    assert f"cancelling Slurm job(s) {array}" in out and "none of their tasks is left" in out, out
    assert slurm.queued() == [] and slurm.stack.user_processes() == []
    (submission,) = slurm.submissions()
    assert submission["cancelled"] and submission["done"]
    for record in slurm.records().values():
        (attempt,) = record.attempts
        assert attempt.kind is None and attempt.reason.startswith("simdoctor cancelled its job"), attempt.reason
        assert record.final is None and attempt.left == []


def test_a_gpu_task_on_a_node_without_nvml_says_why(slurm: Run) -> None:
    """--gpus-per-task 1: Slurm gives the task one of the node's two modelled GPUs; with no NVML on the node
    the task cannot choose CARLA's -graphicsadapter, records that as an infrastructure failure, and with
    --retries 0 the route is reported as crashed with that reason."""
    done = slurm.run([route("1")], "--executor", "slurm", "--cpus-per-task", "1", "--mem", "200M", "--retries", "0",
                     "--json")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["crashed"] == ["1"]
    (attempt,) = slurm.records()["1"].attempts
    assert attempt.kind is Kind.RETRY and attempt.tree is None
    assert "Slurm gave this task a GPU (SLURM_JOB_GPUS=" in attempt.reason and "NVML cannot be read" in attempt.reason
    script = (slurm.out / "slurm" / "1" / "job.sh").read_text()
    assert "#SBATCH --gres=gpu:1\n" in script
