"""`simdoctor run` end to end, as a user runs it: the real command as the non-root test user, the stand-in
Bench2Drive evaluator (which starts the full stand-in CARLA with setsid, waits and retries for it as upstream
does, drives, writes the results JSON, and on a crash runs upstream's clean-up, which kills nothing), real processes
that crash, hang and die, and the process table checked after each scenario (the standin_stack fixture fails
a test that leaves any process of the test user behind)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import builders
import pytest

from simdoctor.run import results
from simdoctor.run.results import Kind
from simdoctor.system import procs
from tests.conftest import USER_AGENT_PYTHON, USER_PYTHON, Stack, free_port

USER_AGENT_VENV = os.path.dirname(os.path.dirname(USER_AGENT_PYTHON))

ROUTE_TIMEOUT = "8"
SUCCESS = ("Perfect", "Completed")


MODULE = f"{USER_PYTHON} -m simdoctor"  # how fixes name simdoctor when the test user runs it


def unwrapped(text: str) -> str:
    """Output as one line of words: its lines fit 80 columns (a command broken with ` \\`), which a phrase
    the test looks for may straddle."""
    return " ".join(text.replace(" \\\n", " ").split())


def route(route_id, mode="perfect", town="Town01", kind="Accident", **attrs):
    return builders.standin_route(route_id, mode, town, kind, **{"standin_sim_s": "0.5", **attrs})


def command(stack: Stack, specs, *extra: str) -> list[str]:
    source = builders.routes_xml(stack.home / "routes.xml", specs)
    os.chown(source, stack.rt.uid, stack.rt.gid)
    return stack.rt.simdoctor(
        "run", "--routes", str(source), "--out", str(stack.home / "out"), "--gpus", "none",
        "--route-timeout", ROUTE_TIMEOUT, *extra,
    )  # fmt: skip


def simdoctor_run(stack: Stack, specs, *extra: str, timeout: float = 180) -> subprocess.CompletedProcess:
    done = subprocess.run(command(stack, specs, *extra), env=stack.env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    return done


def tasks(stack: Stack) -> dict[str, results.TaskRecord]:
    found = {}
    for path in sorted((stack.home / "out" / "tasks").glob("*.json")):
        record = results.read_task(path)
        assert record is not None, path.read_text()
        found[record.route_id] = record
    return found


def hand_scores(stack: Stack, route_ids) -> tuple[float, float]:
    """DS and SR by merge_route_json.py's definitions over the route set, straight from the JSON files."""
    total, successes = 0.0, 0
    for route_id in route_ids:
        path = stack.home / "out" / "res" / f"{route_id}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())["_checkpoint"]["records"][-1]
        total += record["scores"]["score_composed"]
        clean = not any(v for k, v in record["infractions"].items() if k != "min_speed_infractions")
        successes += record["status"] in SUCCESS and clean
    return total / len(route_ids), 100 * successes / len(route_ids)


def test_results_retries_a_timeout_and_the_report(standin_stack: Stack) -> None:
    specs = [
        route("1"),
        route("2", "completed", town="Town02"),
        route("3", "sim_crash", standin_failing_attempts="1"),  # crashes the simulator once, then passes
        route("4", "sim_crash"),  # always crashes: crashed after its retry
        route("5", "hang", standin_failing_attempts="1"),  # hangs once: stopped at the route timeout
        route("6", "die", standin_failing_attempts="1"),  # SIGKILLs itself once: no record, its CARLA left running
        route("7", "blocked", kind="HardBreakRoute"),  # an agent failure: a result, not retried
    ]
    done = simdoctor_run(standin_stack, specs, "--json")
    assert done.returncode == 1, done.stdout + done.stderr  # route 4 crashed
    report = json.loads(done.stdout)  # --json: only the final result on stdout
    records = tasks(standin_stack)
    assert {k: r.final for k, r in records.items()} == {
        "1": "result", "2": "result", "3": "result", "4": "crashed", "5": "result", "6": "result", "7": "result",
    }  # fmt: skip
    attempts = {k: [(a.kind, a.status) for a in r.attempts] for k, r in records.items()}
    crashed = (Kind.RETRY, "Failed - Simulation crashed")
    assert attempts["3"] == [crashed, (Kind.RESULT, "Perfect")]
    assert attempts["4"] == [crashed, crashed]  # --retries 1 (the recipe's default): two attempts
    assert attempts["5"] == [(Kind.RETRY, None), (Kind.RESULT, "Perfect")]
    assert attempts["6"] == [(Kind.RETRY, None), (Kind.RESULT, "Perfect")]
    assert attempts["7"] == [(Kind.RESULT, "Failed - Agent got blocked")]
    # A retry gets fresh ports: none of the failed attempt's, nor the port its CARLA actually used.
    for route_id in ("3", "4", "5", "6"):
        first, second = records[route_id].attempts
        assert not set(first.ports.values()) & set(second.ports.values()), (first.ports, second.ports)
        assert first.carla_port == first.ports["rpc"] and second.carla_port == second.ports["rpc"]
    # The hang was stopped at the route timeout, whole: the evaluator and the CARLA it started with setsid.
    hang = records["5"].attempts[0]
    assert hang.timed_out and hang.ended - hang.started >= float(ROUTE_TIMEOUT)
    assert "stopped at the route timeout" in hang.reason
    assert "no route record written; the evaluator killed by SIGKILL" in records["6"].attempts[0].reason
    assert "simulation_error" in [f.name for f in records["4"].attempts[0].log]  # surfaced per route
    # Nothing of any attempt survived its cleanup (simdoctor checked the process table each time).
    assert all(a.left == [] for r in records.values() for a in r.attempts)
    assert all(a.tree and a.tree.pid > 0 and a.peak_ram_bytes for r in records.values() for a in r.attempts)
    # The report printed at the end matches a hand computation on the same JSON files.
    ds, sr = hand_scores(standin_stack, [s["id"] for s in specs])
    assert report["driving_score"] == pytest.approx(ds) and report["success_rate"] == pytest.approx(sr)
    assert report["statuses"] == {"Perfect": 4, "Completed": 1, "Failed - Agent got blocked": 1,
                                  "Failed - Simulation crashed": 1}  # fmt: skip
    assert report["crashed"] == ["4"] and report["missing"] == []
    rows = {r["route_id"]: r for r in report["rows"]}
    assert rows["4"]["attempts"] == 2 and rows["4"]["reason"].startswith("Failed - Simulation crashed")
    profile = rows["1"]["profile"]
    assert profile["steps"] == 10 and profile["step_p50_s"] is not None and profile["peak_ram_bytes"] > 0
    assert profile["peak_gpu_bytes"] is None  # no NVML here: absent, not zero


def overlap(a: results.Attempt, b: results.Attempt) -> bool:
    return a.started < b.ended and b.started < a.ended


def test_two_slots_at_once_and_a_crash_clean_up_that_kills_nothing(standin_stack: Stack) -> None:
    """Route A's simulator crashes; its evaluator then runs upstream's clean-up, `ps -ef | grep
    '-graphicsadapter=0' | ... | xargs kill -9`, which kills nothing (grep takes the pattern for options, and
    the evaluator's atexit SIGKILLs the pipeline's group as it exits), so
    route B on the other slot of the same adapter drives on and finishes on its first attempt, while A, whose
    own crash it was, is recorded as crashed (--retries 0)."""
    specs = [
        route("A", "sim_crash", standin_sim_s="2", standin_wall_s="2"),
        route("B", "perfect", standin_sim_s="2", standin_wall_s="5"),
    ]
    done = simdoctor_run(standin_stack, specs, "--workers-per-gpu", "2", "--retries", "0", "--route-timeout", "30")
    assert done.returncode == 1, done.stdout + done.stderr
    records = tasks(standin_stack)
    a, b = records["A"], records["B"]
    assert [(x.kind, x.status) for x in a.attempts] == [(Kind.RETRY, "Failed - Simulation crashed")]
    assert a.final == "crashed" and a.attempts[0].returncode == 255
    assert [(x.kind, x.status) for x in b.attempts] == [(Kind.RESULT, "Perfect")] and b.final == "result"
    # Both ran at once, on distinct slots and ports; A's crash came while B drove.
    assert overlap(a.attempts[0], b.attempts[0]) and a.attempts[0].slot != b.attempts[0].slot
    assert a.attempts[0].ended < b.attempts[0].ended
    assert not set(a.attempts[0].ports.values()) & set(b.attempts[0].ports.values())
    assert "slot 0: route A" in done.stdout and "slot 1: route B" in done.stdout  # plain lines: not a TTY
    assert "Driving Score" in done.stdout  # the report, printed at the end


def test_a_carla_that_dies_at_start_ends_the_attempt_within_seconds(standin_stack: Stack) -> None:
    """CARLA dies at once (no Vulkan device). The evaluator, at its real pace here (60 s sleep, then 20 client
    attempts of 600 s), would go on for hours; simdoctor sees the CARLA it started gone and stops the attempt
    within seconds, with CARLA's own line and `check`'s fix as the reason, and retries it."""
    builders.set_behaviour(standin_stack.carla_root, {"fail": "no_device"})
    done = subprocess.run(command(standin_stack, [route("1")], "--route-timeout", "300"),
                          env=standin_stack.env(STANDIN_EVALUATOR_TIME_SCALE="1"), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    record = tasks(standin_stack)["1"]
    assert record.final == "crashed" and len(record.attempts) == 2  # the recipe's one retry
    for attempt in record.attempts:
        assert (attempt.kind, attempt.status, attempt.timed_out) == (Kind.RETRY, None, False)
        assert attempt.ended - attempt.started < 10
        assert attempt.reason.startswith("CARLA died ")
        assert "(CARLA: `Cannot find a compatible Vulkan device or driver." in attempt.reason
        # check's command, with simdoctor named as it runs here (python -m simdoctor: it is not on PATH)
        assert attempt.fix is not None and f"{MODULE} check --only gpu,vulkan -v" in attempt.fix.commands
    assert "crashed: route 1 (Town01): CARLA died" in unwrapped(done.stdout)
    assert f"$ {MODULE} check --only gpu,vulkan -v" in unwrapped(done.stdout)


def test_an_evaluator_that_fails_an_import_says_which(standin_stack: Stack) -> None:
    """The evaluator's interpreter lacks `requests` (checkpoint_tools.py imports it): it exits 1 at once with no
    results JSON; the route's reason is its traceback's last line."""
    python = builders.venv_without(standin_stack.home / "venv", USER_AGENT_VENV, "requests")
    standin_stack.rt.chown_tree(standin_stack.home / "venv")
    done = simdoctor_run(standin_stack, [route("1")], "--agent-python", python, "--retries", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    (attempt,) = tasks(standin_stack)["1"].attempts
    assert attempt.reason == (
        "ModuleNotFoundError: No module named 'requests' (no results file written; the evaluator exited with code 1)"
    )
    assert "crashed: route 1 (Town01): ModuleNotFoundError: No module named 'requests'" in done.stdout


def wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def log_has(stack: Stack, route_id: str, text: str) -> bool:
    path = stack.home / "out" / "logs" / f"{route_id}.log"
    return path.exists() and text in path.read_text(errors="replace")


def final(stack: Stack, route_id: str) -> str | None:
    record = results.read_task(stack.home / "out" / "tasks" / f"{route_id}.json")
    return record.final if record else None


def background(stack: Stack, specs, *extra: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """`simdoctor run` in its own session, as from a terminal; its output goes to files under HOME."""
    out = open(stack.home / "run.out", "w")  # noqa: SIM115 (the process holds it)
    err = open(stack.home / "run.err", "w")  # noqa: SIM115
    return subprocess.Popen([*prefix, *command(stack, specs, *extra)], env=stack.env(), stdout=out, stderr=err,
                            start_new_session=True)  # fmt: skip


def alive(infos) -> list:
    """Those of `infos` still running (the same pid and start time)."""
    now = {(p.pid, p.start_ticks) for p in procs.processes() if procs.is_alive(p.pid)}
    return [p for p in infos if (p.pid, p.start_ticks) in now]


def test_resume_after_simdoctor_is_killed(standin_stack: Stack) -> None:
    """SIGKILL leaves the running route's evaluator and its CARLA (own sessions) running; the rerun stops exactly
    those, by the identity recorded before they started, then runs only what is not decided."""
    from simdoctor.system import proctree

    specs = [route("1"), route("2", "hang", standin_failing_attempts="1"), route("3")]
    first = background(standin_stack, specs, "--route-timeout", "60")
    try:
        wait_for(lambda: final(standin_stack, "1") == "result" and log_has(standin_stack, "2", "hanging on purpose"),
                 "route 1 done and route 2 hanging")  # fmt: skip
        attempt = results.read_task(standin_stack.home / "out" / "tasks" / "2.json").last
        assert attempt.ended is None and attempt.tree.pid > 0
        stale = proctree.members(attempt.tree)
        assert any(procs.matches_name(p, "CarlaUE4-Linux-Shipping") for p in stale)
    finally:
        first.kill()
        first.wait()
    assert alive(stale) == stale  # simdoctor died; its evaluator and the CARLA it started did not
    # Decoys of the same user that the rerun must not touch: another CARLA under the same CARLA_ROOT, a sleeper.
    port = free_port(3)
    decoys = [
        subprocess.Popen(standin_stack.rt.command([str(standin_stack.carla_root / "CarlaUE4.sh"), "-RenderOffScreen",
                                                   f"-carla-rpc-port={port}"]),
                         env=standin_stack.env(), start_new_session=True, stdout=subprocess.DEVNULL),
        subprocess.Popen(standin_stack.rt.command(["sleep", "300"]), start_new_session=True),
    ]  # fmt: skip
    try:
        wait_for(lambda: procs.listening_inodes(port), "the decoy CARLA")
        decoy_procs = [p for p in procs.processes() if p.sid in {d.pid for d in decoys}]
        res1 = standin_stack.home / "out" / "res" / "1.json"
        stamp = res1.stat().st_mtime_ns
        done = simdoctor_run(standin_stack, specs, "--route-timeout", "60")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "route 2 attempt 1 of an earlier run: stopped" in done.stdout
        assert alive(stale) == []
        assert alive(decoy_procs) == decoy_procs and len(decoy_procs) == 3  # launcher, server; sleep
    finally:
        proctree.stop_processes([p for d in decoys if (p := procs.process(d.pid))], grace=2)
        for d in decoys:
            d.wait()
    records = tasks(standin_stack)
    assert len(records["1"].attempts) == 1 and res1.stat().st_mtime_ns == stamp  # finished: not run again
    assert "slot 0: route 1 " not in done.stdout and "1 already done" in done.stdout
    assert len(records["2"].attempts) == 2, [(a.reason, a.log) for a in records["2"].attempts]
    interrupted, rerun = records["2"].attempts
    assert interrupted.kind is None and interrupted.reason.startswith("interrupted: the simdoctor running it was")
    assert (rerun.kind, rerun.status) == (Kind.RESULT, "Perfect") and records["3"].final == "result"


def test_ctrl_c_stops_everything_and_a_rerun_resumes(standin_stack: Stack) -> None:
    specs = [route("1"), route("2", "hang", standin_failing_attempts="1"),
             route("3", "hang", standin_failing_attempts="1")]  # fmt: skip
    run = background(standin_stack, specs, "--workers-per-gpu", "2", "--route-timeout", "60", prefix=("nohup",))
    try:
        wait_for(lambda: final(standin_stack, "1") == "result" and log_has(standin_stack, "2", "hanging on purpose")
                 and log_has(standin_stack, "3", "hanging on purpose"), "routes 2 and 3 hanging")  # fmt: skip
        os.killpg(run.pid, signal.SIGHUP)  # a logout: under nohup, the run goes on
        time.sleep(1)
        assert run.poll() is None and final(standin_stack, "2") is None
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert run.wait(timeout=60) == 130
    finally:
        if run.poll() is None:
            run.kill()
    assert standin_stack.user_processes() == []  # both evaluators and both CARLAs stopped, verified
    out, err = (standin_stack.home / "run.out").read_text(), (standin_stack.home / "run.err").read_text()
    assert "interrupted: stopping the running routes" in out
    assert err.startswith("simdoctor: interrupted: 1 of 3 routes done; nothing left running (process table checked)")
    records = tasks(standin_stack)
    for route_id in ("2", "3"):
        assert len(records[route_id].attempts) == 1, [a.reason for a in records[route_id].attempts]
        (attempt,) = records[route_id].attempts
        assert attempt.kind is None and attempt.reason.startswith("interrupted; stopped") and attempt.left == []
    done = simdoctor_run(standin_stack, specs, "--workers-per-gpu", "2", "--route-timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    records = tasks(standin_stack)
    assert [len(records[r].attempts) for r in ("1", "2", "3")] == [1, 2, 2], {
        r: [(a.reason, a.log) for a in records[r].attempts] for r in ("1", "2", "3")
    }
    assert all(records[r].final == "result" for r in ("1", "2", "3"))


def test_a_folder_in_use_is_refused(standin_stack: Stack) -> None:
    import fcntl

    out = standin_stack.home / "out"
    out.mkdir()
    os.chown(out, standin_stack.rt.uid, standin_stack.rt.gid)
    with open(out / "run.lock", "w") as lock:
        lock.write("pid 4242, simdoctor run, since 10:00:00\n")
        lock.flush()
        os.chown(out / "run.lock", standin_stack.rt.uid, standin_stack.rt.gid)
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = simdoctor_run(standin_stack, [route("1")])
    assert done.returncode == 1
    assert "another `simdoctor run` (pid 4242, simdoctor run, since 10:00:00) is using" in done.stderr
    assert not (out / "tasks").exists()


def test_the_live_view_on_a_terminal(standin_stack: Stack) -> None:
    """On a TTY (a real pseudo-terminal here) the progress is rich's live view: one line per slot with its
    route, port and elapsed time under a header with the routes done and the DS so far."""
    import pty

    cmd = command(standin_stack, [route("1", standin_wall_s="2")])
    env = {k: v for k, v in standin_stack.env(TERM="xterm", COLUMNS="160").items() if k != "NO_COLOR"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else
        os.execvpe(cmd[0], cmd, env)
    screen = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        screen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = screen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "slot 0 (no GPU): route 1 (Town01) attempt 1, port " in text  # the live view's slot line
    assert "1/1 routes done · DS so far 100.00" in text and "\x1b[" in text  # styled: a terminal
    assert "Driving Score 100.00" in text


def test_seeds_run_the_routes_once_per_seed_and_report_mean_and_std(standin_stack: Stack) -> None:
    """SimLingo's protocol (start_eval_simlingo.py: seeds 1, 2, 3 as full runs): `--seeds 1,2` runs the set into
    OUT/seed-1/ and OUT/seed-2/, each with its --traffic-manager-seed; route 2 is blocked only on its first run, so
    the seeds differ. The report gives each seed's DS/SR and their mean ± std; a rerun resumes (runs nothing)."""
    specs = [route("1"), route("2", "blocked", standin_failing_attempts="1")]
    done = simdoctor_run(standin_stack, specs, "--seeds", "1,2")
    assert done.returncode == 0, done.stdout + done.stderr
    out = standin_stack.home / "out"
    for seed in (1, 2):
        plan = json.loads((out / f"seed-{seed}" / "run.json").read_text())
        assert plan["seed"] == seed, plan
        records = [results.read_task(p) for p in (out / f"seed-{seed}" / "tasks").glob("*.json")]
        assert {r.route_id: r.final for r in records} == {"1": "result", "2": "result"}
    report = subprocess.run(standin_stack.rt.simdoctor("report", str(out), "--json"), env=standin_stack.env(),
                            capture_output=True, text=True)  # fmt: skip
    assert report.returncode == 0, report.stderr
    seeds = json.loads(report.stdout)
    one, two = seeds["seeds"]
    assert (one["seed"], two["seed"]) == ("seed 1", "seed 2")
    assert one["success_rate"] == 50.0 and two["success_rate"] == 100.0
    assert seeds["success_rate_mean"] == 75.0 and seeds["success_rate_std"] == pytest.approx(35.355, abs=1e-3)
    assert seeds["driving_score_mean"] == pytest.approx((one["driving_score"] + two["driving_score"]) / 2)
    text = unwrapped(done.stdout)
    assert "2 seeds (SimLingo's protocol)" in text and "mean ± std (sample, n-1) over seeds" in text
    again = simdoctor_run(standin_stack, specs, "--seeds", "1,2")
    assert again.returncode == 0 and again.stdout.count("2 routes, 2 already done, 0 to run") == 2, again.stdout


def test_bench2drive_tools_find_their_inputs_in_the_output_folder(standin_stack: Stack) -> None:
    """Bench2Drive's tools run unmodified on OUT (reference §6): merged.json in merge_route_json.py's format, and
    for efficiency_smoothness_benchmark.py each record's `<metric_dir>/<save_name>/metric_info.json` (its line 243),
    linked to the file the agent wrote under viz/<id>/<save_name>/debug_viz/.../metric/. The report prints each
    tool's exact command. (The tools themselves are not in the project; this reads the inputs as they do.)"""
    done = simdoctor_run(standin_stack, [route("1"), route("2", "completed")])
    assert done.returncode == 0, done.stdout + done.stderr
    out = standin_stack.home / "out"
    merged = json.loads((out / "merged.json").read_text())
    assert len(merged["_checkpoint"]["records"]) == merged["eval num"] == 2
    for record in merged["_checkpoint"]["records"]:  # efficiency_smoothness_benchmark.py read_from_json
        path = os.path.join(str(out / "metric"), record["save_name"], "metric_info.json")
        steps = json.loads(Path(path).read_text())
        assert os.path.islink(path) and "/debug_viz/" in os.path.realpath(path)
        assert {"acceleration", "angular_velocity", "forward_vector", "right_vector", "location", "rotation"} <= set(
            steps["0"]
        )
    work = standin_stack.work_dir / "Bench2Drive"
    text = unwrapped(done.stdout)
    assert f"cd {work} && " in text
    assert f"tools/efficiency_smoothness_benchmark.py -f {out}/merged.json -m {out}/metric" in text
    assert f"tools/merge_route_json.py -f {out}/res" in text and "tools/ability_benchmark.py -r" in text
    assert "2 of 2 records have their metric_info.json" in text


def test_seeds_json_prints_one_document(standin_stack: Stack) -> None:
    """`run --seeds 1,2 --json` prints one JSON document on stdout (it printed one object per seed, then the
    seeds' object, which json.loads refused): each seed's own `run --json` result under `runs`, and under `report`
    what `report OUT --json` prints for the folder. The dry run too, without a report."""
    specs = [route("1"), route("2", "blocked", standin_failing_attempts="1")]
    done = simdoctor_run(standin_stack, specs, "--seeds", "1,2", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    out = standin_stack.home / "out"
    assert data["exit_code"] == 0 and data["out"] == str(out)
    assert [(r["seed"], r["exit_code"], r["out"]) for r in data["runs"]] == [
        (1, 0, str(out / "seed-1")), (2, 0, str(out / "seed-2"))
    ]  # fmt: skip
    assert [r["result"]["success_rate"] for r in data["runs"]] == [50.0, 100.0]  # each seed's report JSON
    report = subprocess.run(standin_stack.rt.simdoctor("report", str(out), "--json"), env=standin_stack.env(),
                            capture_output=True, text=True)  # fmt: skip
    assert report.returncode == 0 and data["report"] == json.loads(report.stdout), report.stderr
    plan = simdoctor_run(standin_stack, specs, "--seeds", "1,2", "--json", "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    plans = json.loads(plan.stdout)
    assert plans["report"] is None and [r["result"]["plan"]["seed"] for r in plans["runs"]] == [1, 2]


def test_seeds_that_cannot_start_print_one_document_without_a_report(standin_stack: Stack) -> None:
    """`--seeds 1,2 --json` where no seed can start (GPU 0 asked for on a machine without one): each seed's
    findings under `runs`, no report (there is no seed folder to report on; it was an error after the findings)."""
    argv = command(standin_stack, [route("1")], "--seeds", "1,2", "--json")
    argv[argv.index("--gpus") + 1] = "0"
    done = subprocess.run(argv, env=standin_stack.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["exit_code"] == 1 and data["report"] is None
    assert [(r["seed"], r["exit_code"], r["result"]["summary"]["exit_code"]) for r in data["runs"]] == [
        (1, 1, 1),
        (2, 1, 1),
    ]
    assert all(r["result"]["results"] for r in data["runs"])  # the checks' findings that kept each seed from starting
