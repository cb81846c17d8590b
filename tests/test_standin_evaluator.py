"""Each planned task run for real: the exact command of runplan.launch starts the stand-in Bench2Drive evaluator
(tests/standins/bench2drive) as the non-root test user, which starts the full stand-in CARLA server
(tests/standins/carla_server.py) in a new session, loads the timing wrapper around the stand-in SimLingo agent,
drives, and writes the results JSON that results.judge and report read.

The test plays the supervisor's part in the simplest way (one process at a time, a timeout of what the
evaluator leaves behind by pid), to pin the evaluator's contract; tests/test_run.py runs `simdoctor run` itself."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import builders
import pytest

from simdoctor.doctor.probes.ports import worker_ports
from simdoctor.run import report, results, runplan
from simdoctor.run.outdir import Layout
from simdoctor.run.results import Exit, Kind
from simdoctor.system import procs
from tests.conftest import USER_AGENT_PYTHON

RECORD_KEYS = ["index", "route_id", "scenario_name", "weather_id", "save_name", "status", "num_infractions",
               "infractions", "scores", "meta", "town_name"]  # fmt: skip
INFRACTION_KEYS = ["collisions_layout", "collisions_pedestrian", "collisions_vehicle", "red_light", "stop_infraction",
                   "outside_route_lanes", "min_speed_infractions", "yield_emergency_vehicle_infractions",
                   "scenario_timeouts", "route_dev", "vehicle_blocked", "route_timeout"]  # fmt: skip


def plan_for(stack, specs, slots=1, agent_python=None):
    settings = stack.settings()
    if agent_python:
        settings = dataclasses.replace(settings, agent_python=agent_python)
    source = builders.routes_xml(stack.home / "routes.xml", specs)
    slot_list, _ = runplan.plan_slots(settings, (), slots, None, [])
    plan, texts = runplan.build(settings, runplan.Options(routes=source, out=stack.home / "out"), slot_list)
    runplan.prepare(plan, texts, settings)
    for name in ("res", "logs", "steps", "viz"):
        (stack.home / "out" / name).mkdir(exist_ok=True)
    stack.rt.chown_tree(stack.home / "out")
    return plan


def session_of_listener(port):
    """The pids of the session holding `port` (a CARLA the evaluator started with setsid)."""
    owners = {pid for pids in procs.socket_owners(procs.listening_inodes(port)).values() for pid in pids}
    sids = {p.sid for p in map(procs.process, owners) if p is not None}
    return [p.pid for p in procs.processes() if p.sid in sids]


def stop(pids):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(procs.is_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def fresh(stack, plan, *earlier):
    """Slot 0 with ports none of the `earlier` runs used, as simdoctor gives each attempt: a port the last CARLA
    held may linger in TIME_WAIT, and CARLA dies on a port it cannot bind."""
    taken = frozenset(p for run in earlier for p in run.ports.values())
    carla, base = stack.settings().recipe.carla, stack.settings().recipe.run.port_base
    return dataclasses.replace(plan.slots[0], ports=worker_ports(carla, 1, base, taken)[0])


def execute(stack, plan, task, timeout=30.0, stop_when=None, slot=None, **env):
    """Run one task as the test user, on slot 0 unless told; returns (Exit, log text). A run past `timeout`, or
    whose log shows `stop_when`, loses its whole process group as at a route timeout; the CARLA it started lives
    on in its own session (the standin_stack fixture fails a test that leaves it running)."""
    run = runplan.launch(plan, task, slot or plan.slots[0])
    deadline = time.monotonic() + timeout
    with open(task.log_file, "w") as log:
        proc = subprocess.Popen(stack.rt.command(run.argv), env={**stack.env(**env), **run.env}, cwd=run.cwd,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        while proc.poll() is None:
            if time.monotonic() > deadline or (stop_when and stop_when in Path(task.log_file).read_text()):
                os.killpg(proc.pid, signal.SIGKILL)
                return Exit(proc.wait(), timed_out=True), Path(task.log_file).read_text()
            time.sleep(0.02)
    return Exit(proc.returncode), Path(task.log_file).read_text()


def test_a_perfect_route_through_the_exact_planned_command(standin_stack):
    plan = plan_for(standin_stack, [builders.standin_route("1711")])
    rpc, tm = plan.slots[0].ports["rpc"], plan.slots[0].ports["traffic_manager"]
    exit, log = execute(standin_stack, plan, plan.tasks[0])
    assert exit == Exit(0), log
    data = json.loads(Path(plan.tasks[0].results_file).read_text())
    assert list(data) == ["_checkpoint", "entry_status", "eligible", "sensors", "values", "labels"]
    assert list(data["_checkpoint"]) == ["global_record", "progress", "records"]
    (record,) = data["_checkpoint"]["records"]
    assert list(record) == RECORD_KEYS and list(record["infractions"]) == INFRACTION_KEYS
    assert (record["route_id"], record["status"]) == ("RouteScenario_1711_rep0", "Perfect")
    assert record["town_name"] == "Town01" and record["scores"]["score_composed"] == 100.0
    assert (data["entry_status"], data["eligible"], data["_checkpoint"]["progress"]) == ("Finished", True, [1, 1])
    assert data["sensors"] == ["carla_camera", "carla_imu", "carla_gnss", "carla_speedometer"]
    assert len(data["values"]) == len(data["labels"]) == 15
    assert f"-carla-rpc-port={rpc} -graphicsadapter=0" in log and "load_world success" in log
    assert results.judge(results.read_results(plan.tasks[0].results_file), exit).kind is Kind.RESULT
    # The timing wrapper ran inside the evaluator around the user's agent: 2 s at 20 Hz.
    steps = Path(plan.tasks[0].steps_file).read_text().splitlines()
    assert len(steps) == 1 + 40 and json.loads(steps[-1])["sim_time"] == pytest.approx(2.0)
    (save_dir,) = Path(plan.tasks[0].viz_dir).iterdir()  # the agent's SAVE_PATH + save name
    assert save_dir.name.startswith("RouteScenario_1711_rep0_Town01_Accident_1")
    # The evaluator's atexit killed its CARLA; nothing holds the slot's ports any more.
    assert session_of_listener(rpc) == [] and session_of_listener(tm) == []


@pytest.mark.parametrize(
    ("mode", "status", "score"),
    [
        ("completed", "Completed", 60.0),
        ("blocked", "Failed - Agent got blocked", 37.5),
        ("deviated", "Failed - Agent deviated from the route", 22.0),
        ("timed_out", "Failed - Agent timed out", 81.0),
        ("tick_runtime", "Failed - TickRuntime", 50.0),
    ],
)
def test_driving_results(standin_stack, mode, status, score):
    plan = plan_for(standin_stack, [builders.standin_route("7", mode, standin_sim_s="0.5")])
    exit, log = execute(standin_stack, plan, plan.tasks[0])
    found = results.read_results(plan.tasks[0].results_file)
    assert exit == Exit(0), log
    assert (found.last.status, found.last.score_composed, found.entry_status) == (status, score, "Finished")
    assert results.judge(found, exit) == results.Judgement(Kind.RESULT, status, status)


@pytest.mark.parametrize(
    ("variable", "value", "code", "status", "entry", "log", "detail"),
    [
        # run_step raises: the leaderboard's AgentError path; the evaluator goes on and exits 0
        ("STANDIN_AGENT_FAIL_AT_STEP", "3", 0, "Failed - Agent crashed", "Finished", "agent_crash",
         "RuntimeError: stand-in agent: step 3 failed on purpose"),
        # setup raises: the evaluator stops with sys.exit(-1) before any global statistics
        ("STANDIN_AGENT_SETUP_FAIL", "1", 255, "Failed - Agent couldn't be set up", "Started", "agent_setup",
         "RuntimeError: stand-in agent: setup failed on purpose"),
    ],
)  # fmt: skip
def test_agent_errors(standin_stack, variable, value, code, status, entry, log, detail):
    plan = plan_for(standin_stack, [builders.standin_route("7")])
    exit, text = execute(standin_stack, plan, plan.tasks[0], **{variable: value})
    found = results.read_results(plan.tasks[0].results_file)
    assert exit == Exit(code) and (found.last.status, found.entry_status) == (status, entry)
    assert results.judge(found, exit).kind is Kind.RETRY
    assert [(f.name, f.detail) for f in results.scan_log(text)] == [(log, detail)]


def test_a_simulator_crash(standin_stack):
    plan = plan_for(standin_stack, [builders.standin_route("7", "sim_crash")])
    rpc = plan.slots[0].ports["rpc"]
    exit, log = execute(standin_stack, plan, plan.tasks[0])
    data = json.loads(Path(plan.tasks[0].results_file).read_text())
    assert exit == Exit(255), log
    assert data["_checkpoint"]["records"][0]["status"] == "Failed - Simulation crashed"
    assert (data["entry_status"], data["_checkpoint"]["global_record"], data["values"]) == ("Crashed", {}, [])
    verdict = results.judge(results.read_results(plan.tasks[0].results_file), exit)
    assert verdict.kind is Kind.RETRY and "sys.exit(-1)" in verdict.reason
    assert "Error during the simulation" in log and session_of_listener(rpc) == []


@pytest.mark.parametrize(("mode", "stop_when"), [("hang", "hanging on purpose"), ("die", None)])
def test_a_hang_or_a_death_leaves_no_record_and_a_running_carla(standin_stack, mode, stop_when):
    plan = plan_for(standin_stack, [builders.standin_route("7", mode)])
    rpc = plan.slots[0].ports["rpc"]
    exit, _ = execute(standin_stack, plan, plan.tasks[0], stop_when=stop_when)
    assert exit == Exit(-signal.SIGKILL, timed_out=mode == "hang")
    found = results.read_results(plan.tasks[0].results_file)
    assert found.records == [] and found.progress == [0, 1]
    verdict = results.judge(found, exit)
    assert verdict.kind is Kind.RETRY and verdict.status is None and "no route record written" in verdict.reason
    leftover = session_of_listener(rpc)  # setsid: the evaluator's death does not take its CARLA along
    assert leftover, "the stand-in CARLA should outlive its evaluator"
    stop(leftover)
    assert session_of_listener(rpc) == []


def test_a_route_that_crashes_once_then_passes(standin_stack):
    plan = plan_for(standin_stack, [builders.standin_route("7", "sim_crash", standin_failing_attempts="1")])
    first, _ = execute(standin_stack, plan, plan.tasks[0])
    assert results.judge(results.read_results(plan.tasks[0].results_file), first).kind is Kind.RETRY
    second, _ = execute(standin_stack, plan, plan.tasks[0], slot=fresh(standin_stack, plan, plan.slots[0]))
    found = results.read_results(plan.tasks[0].results_file)
    assert second == Exit(0) and found.last.status == "Perfect"
    assert results.finished(found, None)


def test_the_report_over_routes_run_by_the_stand_in(standin_stack):
    plan = plan_for(
        standin_stack,
        [builders.standin_route("1"), builders.standin_route("2", "completed"), builders.standin_route("3", "blocked")],
    )
    used = []
    for task in plan.tasks:
        used.append(fresh(standin_stack, plan, *used))
        assert execute(standin_stack, plan, task, slot=used[-1])[0] == Exit(0)
    names = standin_stack.settings().recipe.run
    built, records = report.build(Path(plan.out), names)
    assert built.driving_score == pytest.approx((100 + 60 + 37.5) / 3)
    assert built.success_rate == pytest.approx(100 / 3) and built.missing == [] and len(records) == 3
    assert built.speed.routes == 3 and built.speed.steps == 3 * 40
    layout = Layout(Path(plan.out), names)
    options = runplan.Options(routes=standin_stack.home / "routes.xml", out=standin_stack.home / "out")
    resumed, _ = runplan.build(standin_stack.settings(), options, plan.slots)
    assert resumed.pending == [] and layout.results_file("3").is_file()


def test_a_carla_that_dies_at_start_keeps_the_evaluator_trying_for_hours(standin_stack):
    """Upstream's _setup_simulation against a CARLA that died at once (no Vulkan device): the 60 s sleep, 20
    client attempts of the whole --timeout each, 40 traffic-manager attempts, then an UnboundLocalError with no
    results JSON. The waits run 5000 times faster here (STANDIN_EVALUATOR_TIME_SCALE); the real ones would be
    60 + 20 x (600 + 5) + 40 x 5 s, about 3.4 hours."""
    builders.set_behaviour(standin_stack.carla_root, {"fail": "no_device"})
    plan = plan_for(standin_stack, [builders.standin_route("7")])
    # Ports away from the 20000s other stand-in stacks on this machine may hold: a live server there would answer.
    carla = standin_stack.settings().recipe.carla
    slot = dataclasses.replace(plan.slots[0], ports=worker_ports(carla, 1, 40000 + os.getpid() % 20000)[0])
    began = time.monotonic()
    exit, log = execute(standin_stack, plan, plan.tasks[0], slot=slot, STANDIN_EVALUATOR_TIME_SCALE="0.0002")
    took = time.monotonic() - began
    assert exit == Exit(1), log
    assert "Cannot find a compatible Vulkan device or driver" in log
    assert "load_world failed , attempts=19" in log and "load_world failed , attempts=20" not in log
    assert "traffic_manager init fail, try_time=39" in log and "traffic_manager init fail, try_time=40" not in log
    assert took >= 20 * 600 * 0.0002  # each client attempt waited out its (scaled) timeout
    unbound = "UnboundLocalError: local variable 'traffic_manager' referenced before assignment"
    assert results.last_exception(log) == unbound
    verdict = results.judge(results.read_results(plan.tasks[0].results_file), exit, log)
    assert (verdict.kind, verdict.status) == (Kind.RETRY, None)
    assert verdict.reason == f"{unbound} (no results file written; the evaluator exited with code 1)"
    names = [f.name for f in results.scan_log(log)]
    assert names == ["load_world_failed", "client_timeout", "traffic_manager_failed", "no_traffic_manager"]


@pytest.mark.parametrize(
    ("missing", "module"),
    [(("requests",), "requests"), (("pexpect", "transforms3d"), "pexpect"), (("six", "ephem"), "six")],
)
def test_a_missing_distribution_ends_the_evaluator_at_once(standin_stack, missing, module):
    """The evaluator's own imports (reference §3): the first one missing, in upstream's import order, ends it
    with exit 1 and no results JSON; its traceback's last line is the reason."""
    python = builders.venv_without(standin_stack.home / "venv", str(Path(USER_AGENT_PYTHON).parents[1]), *missing)
    standin_stack.rt.chown_tree(standin_stack.home / "venv")
    plan = plan_for(standin_stack, [builders.standin_route("7")], agent_python=python)
    exit, log = execute(standin_stack, plan, plan.tasks[0])
    assert exit == Exit(1), log
    verdict = results.judge(results.read_results(plan.tasks[0].results_file), exit, log)
    error = f"ModuleNotFoundError: No module named '{module}'"
    assert verdict.reason == f"{error} (no results file written; the evaluator exited with code 1)"
    assert "-carla-rpc-port" not in log  # it never got as far as starting CARLA
