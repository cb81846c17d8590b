"""The evaluator's results JSON read robustly, each outcome classified, the known log lines found."""

from __future__ import annotations

import json
import signal

import builders
import pytest

from simdoctor.run import results
from simdoctor.run.results import Exit, Kind


def test_reads_a_finished_results_file(tmp_path):
    path = builders.results_file(
        tmp_path / "1711.json", "1711", "Town12", "ParkingCutIn",
        infractions={"collisions_vehicle": ["Agent collided against object with type=vehicle.audi.tt and id=12 at "
                                            "(x=1, y=2, z=0)"]},
    )  # fmt: skip
    found = results.read_results(path)
    assert found.error is None and found.progress == [1, 1] and found.entry_status == "Finished"
    record = found.last
    assert (record.route_id, record.status, record.town, record.index) == (
        "RouteScenario_1711_rep0", "Completed", "Town12", 0,
    )  # fmt: skip
    assert (record.score_route, record.score_penalty, record.score_composed) == (100.0, 0.6, 60.0)
    assert record.kind is Kind.RESULT and not record.success  # a collision costs the success
    assert record.raw == json.loads(path.read_text())["_checkpoint"]["records"][0]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "no results file written"),
        ("", "empty results file"),
        ('{"_checkpoint": {"global_record": {}, "progress": [0, 1], "rec', "cut short"),
        ("[1, 2]", "no _checkpoint"),
        ('{"_checkpoint": {"progress": [0, 1], "records": []}, "entry_status": "Started"}', None),
        ('{"_checkpoint": {"records": [{"route_id": "RouteScenario_1_rep0"}]}}', "no route_id or status"),
        ('{"_checkpoint": {"records": [{"route_id": "R_1_rep0", "status": "Perfect", "scores": {"score_route": []}}]}}',
         "not a number"),
    ],
)  # fmt: skip
def test_unreadable_results_never_raise(tmp_path, content, error):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    found = results.read_results(path)
    assert found.records == [] and found.last is None
    assert (found.error is None) if error is None else (error in found.error)


@pytest.mark.parametrize(
    ("status", "kind", "success"),
    [
        ("Perfect", Kind.RESULT, True),
        ("Completed", Kind.RESULT, True),
        ("Failed - Agent deviated from the route", Kind.RESULT, False),
        ("Failed - Agent got blocked", Kind.RESULT, False),
        ("Failed - Agent timed out", Kind.RESULT, False),
        ("Failed - TickRuntime", Kind.RESULT, False),
        ("Failed - Agent's sensors were invalid", Kind.RESULT, False),
        ("Failed - Simulation crashed", Kind.RETRY, False),
        ("Failed - Agent couldn't be set up", Kind.RETRY, False),
        ("Failed - Agent crashed", Kind.RETRY, False),
        ("Failed", Kind.RETRY, False),
        ("Started", Kind.RETRY, False),
    ],
)
def test_every_status_is_classified(tmp_path, status, kind, success):
    assert results.status_kind(status) is kind
    record = {"route_id": "RouteScenario_1_rep0", "status": status, "scores": {}, "meta": {},
              "infractions": {"min_speed_infractions": ["Average speed is 40.1% of the surrounding traffic's one"],
                              "collisions_vehicle": []}}  # fmt: skip
    (tmp_path / "r.json").write_text(json.dumps({"_checkpoint": {"records": [record]}}))
    assert results.read_results(tmp_path / "r.json").last.success is success  # min speed never costs a success


def write(tmp_path, **kwargs):
    return results.read_results(builders.results_file(tmp_path / "r.json", "7", "Town01", "Accident", **kwargs))


def test_judge_a_driving_result_stands_even_after_a_bad_exit(tmp_path):
    blocked = write(tmp_path, completion=40.0, failure="Agent got blocked",
                    infractions={"vehicle_blocked": ["Agent got blocked at (x=1, y=2, z=0)"]})  # fmt: skip
    for exit in (Exit(0), Exit(-signal.SIGKILL), Exit(None, timed_out=True)):
        assert results.judge(blocked, exit) == results.Judgement(
            Kind.RESULT, "Failed - Agent got blocked", "Failed - Agent got blocked"
        )


def test_judge_infrastructure_failures_are_retried(tmp_path):
    crashed = write(tmp_path, completion=50.0, failure="Simulation crashed", crashed=True)
    verdict = results.judge(crashed, Exit(255))
    assert verdict.kind is Kind.RETRY and verdict.status == "Failed - Simulation crashed"
    assert "sys.exit(-1)" in verdict.reason
    setup = write(tmp_path, completion=0.0, failure="Agent couldn't be set up", crashed=True)
    assert results.judge(setup, Exit(255)).kind is Kind.RETRY


@pytest.mark.parametrize(
    ("exit", "words"),
    [
        (Exit(-signal.SIGKILL), "killed by SIGKILL"),
        (Exit(-signal.SIGTERM, timed_out=True), "stopped at the route timeout"),
        (Exit(1), "exited with code 1"),
    ],
)
def test_judge_no_record_is_retried_saying_why(tmp_path, exit, words):
    (tmp_path / "r.json").write_text('{"_checkpoint": {"global_record": {}, "progress": [0, 1], "records": []}}')
    verdict = results.judge(results.read_results(tmp_path / "r.json"), exit)
    assert verdict.kind is Kind.RETRY and verdict.status is None
    assert "no route record written" in verdict.reason and words in verdict.reason
    missing = results.judge(results.read_results(tmp_path / "none.json"), exit)
    assert missing.reason.startswith("no results file written")


# An evaluator log as SimLingo's jobs write it: colour codes, CARLA's crash handler, tracebacks.
LOG = """\
/home/u/carla/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port=20000 -graphicsadapter=0 None
load_world success , attempts=0
\x1b[1m========= Preparing RouteScenario_1711 (repetition 0) =========\x1b[0m
\x1b[1m> Running the route\x1b[0m
=== [Agent] -- Wallclock = 2025-05-02 04:08:01.123 -- System time = 1.000 -- Game time = 0.050 -- Ratio = 0.050x
Watchdog exception - Timeout of 600.0 seconds occured
Signal 11 caught.
CommonUnixCrashHandler: Signal=11
Engine crash handling finished; re-raising signal 11 for the default handler. Good bye.
Watchdog exception - Timeout of 600.0 seconds occured

\x1b[91mStopping the route, the agent has crashed:

Traceback (most recent call last):
  File "/w/Bench2Drive/leaderboard/leaderboard/autoagents/agent_wrapper.py", line 88, in __call__
    return self._agent()
  File "/w/team_code/agent_simlingo.py", line 801, in run_step
    pred = self.model(self.DrivingInput)
torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB

During handling of the above exception, another exception occurred:

leaderboard.autoagents.agent_wrapper.AgentError: CUDA out of memory.
\x1b[0m
"""


def test_scan_log_finds_the_known_lines_once_each():
    found = results.scan_log(LOG)
    assert [(f.name, f.line_number, f.count) for f in found] == [
        ("watchdog", 6, 2),
        ("carla_segfault", 9, 1),
        ("agent_crash", 12, 1),
    ]
    assert found[2].line == "Stopping the route, the agent has crashed:"  # colour codes gone
    assert found[2].detail == "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB"
    assert results.scan_log("load_world success\n") == []


def test_scan_log_knows_setup_failures_and_root():
    log = (
        "Refusing to run with the root privileges.\n"
        "\x1b[91mCould not set up the required agent:\n\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in setup\n    self.save_path = os.environ.get("SAVE_PATH") + self.save_path_root\n'
        "TypeError: unsupported operand type(s) for +: 'NoneType' and 'str'\n"
    )
    found = {f.name: f for f in results.scan_log(log)}
    assert set(found) == {"root_refused", "agent_setup"}
    assert found["agent_setup"].detail.startswith("TypeError: unsupported operand")


def test_task_records_round_trip_and_resume_decision(tmp_path):
    attempt = results.Attempt(
        number=1, slot=0, ports={"rpc": 20000, "streaming": 20001, "secondary": 20002, "traffic_manager": 20003},
        started=1.0, ended=2.0, returncode=255, kind=Kind.RETRY, status="Failed - Simulation crashed",
        reason="Failed - Simulation crashed", log=results.scan_log(LOG), peak_gpu_bytes=9 * 2**30,
    )  # fmt: skip
    record = results.TaskRecord("1711", [attempt], final="crashed")
    results.write_task(tmp_path / "tasks" / "1711.json", record)
    assert results.read_task(tmp_path / "tasks" / "1711.json") == record
    earlier = json.loads((tmp_path / "tasks" / "1711.json").read_text())  # as versions with `killed_by` wrote it
    earlier["attempts"][0]["killed_by"] = None
    (tmp_path / "old.json").write_text(json.dumps(earlier))
    assert results.read_task(tmp_path / "old.json") == record
    assert results.read_task(tmp_path / "tasks" / "none.json") is None
    (tmp_path / "bad.json").write_text('{"route_id": 3}')
    assert results.read_task(tmp_path / "bad.json") is None

    crashed = write(tmp_path, completion=50.0, failure="Simulation crashed", crashed=True)
    assert not results.finished(crashed, None)  # retried on resume
    assert results.finished(crashed, record)  # unless its retries are used up
    assert results.finished(write(tmp_path, completion=30.0, failure="Agent deviated from the route"), None)
    assert not results.finished(results.read_results(tmp_path / "none.json"), None)
