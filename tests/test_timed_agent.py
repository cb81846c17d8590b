"""The timing wrapper agent in the agent's real interpreter (Python 3.8), loaded as the leaderboard loads an agent."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import builders
import pytest

from simdoctor.config.recipe import DEFAULT_RECIPE, find_recipe, load_recipe
from simdoctor.run import profiling
from simdoctor.scripts import path as script_path
from simdoctor.scripts.timed_agent import AGENT_FILE_ENV, STEPS_FILE_ENV, VIZ_EVERY_ENV, VIZ_FILE_ENV, VIZ_FLAG_ENV

B2D = builders.STANDINS / "bench2drive"
# What leaderboard_evaluator.py does with an --agent file, then 20 Hz ticks as its ScenarioManager drives them.
DRIVER = """
import importlib, json, os, sys
agent_path, ticks = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, os.path.dirname(agent_path))
module = importlib.import_module(os.path.basename(agent_path).split(".")[0])
name = getattr(module, "get_entry_point")()
cls = getattr(module, name)
assert getattr(module, getattr(module, "get_entry_point")()) is cls
ros = cls.get_ros_version()
agent = cls("localhost", 2000, 0)
agent.set_global_plan([], [])
agent.setup(os.environ["CHECKPOINT"] + "+RouteScenario_1711_rep0_Town12_x")
sensors = agent.sensors()
from srunner.scenariomanager.timer import GameTime
from leaderboard.autoagents.autonomous_agent import AutonomousAgent
user = sys.modules["agent_simlingo"].LingoAgent

class Tick(object):
    def __init__(self, frame):
        self.frame, self.elapsed_seconds = frame, frame / 20.0

error = None
control = None
try:
    for frame in range(1, ticks + 1):
        GameTime.on_carla_tick(Tick(frame))
        control = agent()
except Exception as exc:
    error = "%s: %s" % (type(exc).__name__, exc)
agent.destroy()
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2], "name": name, "ros": ros, "mro": [c.__name__ for c in cls.__mro__],
    "isinstance": [isinstance(agent, user), isinstance(agent, AutonomousAgent)],
    "save_path": agent.save_path, "config_path": agent.config_path, "track": agent.track.value,
    "sensors": [s["id"] for s in sensors], "throttle": control and control.throttle,
    "manual_gear_shift": control and control.manual_gear_shift, "error": error,
}))
"""


@pytest.fixture
def agent_file(tmp_path):
    path = tmp_path / "team_code" / "agent_simlingo.py"
    path.parent.mkdir()
    path.write_text((builders.STANDINS / "agent_simlingo.py").read_text())
    return path


def drive(agent_python, agent_file, tmp_path, ticks=20, steps_file=None, **env):
    """The driver in the agent's interpreter; the stand-in agent resolves its base model by hub name, so the
    checkpoint's Hydra config and the Hugging Face cache under HOME are made first (tests/builders.base_model)."""
    home = Path(env.get("HOME") or tmp_path)
    recipe = load_recipe(find_recipe(DEFAULT_RECIPE, []))
    builders.base_model(home, tmp_path / "w", recipe)
    variables = {
        **os.environ,
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "CHECKPOINT": f"{tmp_path}/w/outputs/simlingo/checkpoints/epoch=013.ckpt/pytorch_model.pt",
        "PYTHONPATH": os.pathsep.join([str(B2D / "scenario_runner"), str(B2D / "leaderboard")]),
        "SAVE_PATH": f"{tmp_path}/viz/1711/",
        AGENT_FILE_ENV: str(agent_file),
        STEPS_FILE_ENV: str(steps_file or tmp_path / "steps.jsonl"),
        **env,
    }
    done = subprocess.run(
        [agent_python, "-c", DRIVER, script_path("timed_agent.py"), str(ticks)],
        capture_output=True, text=True, env={k: v for k, v in variables.items() if v is not None}, timeout=60,
    )  # fmt: skip
    return done


def test_the_wrapper_is_the_users_agent_with_timed_steps(agent_python, agent_file, tmp_path):
    done = drive(agent_python, agent_file, tmp_path, STANDIN_AGENT_STEP_S="0.01")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["python"] == "3.8"  # the interpreter SimLingo pins
    assert out["name"] == "TimedLingoAgent" and out["mro"][:3] == ["TimedLingoAgent", "LingoAgent", "AutonomousAgent"]
    assert out["isinstance"] == [True, True] and out["ros"] == -1
    assert out["save_path"] == f"{tmp_path}/viz/1711/RouteScenario_1711_rep0_Town12_x"  # SAVE_PATH + save name
    assert out["config_path"].endswith("pytorch_model.pt") and out["track"] == "SENSORS"
    assert out["sensors"] == ["rgb_0", "imu", "gps", "speed"]
    assert (out["throttle"], out["manual_gear_shift"], out["error"]) == (0.5, False, None)
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "setup" and lines[0]["setup_s"] >= 0
    steps = lines[1:]
    assert [s["step"] for s in steps] == list(range(20))
    assert [s["sim_time"] for s in steps] == pytest.approx([0.05 * k for k in range(1, 21)])
    assert all(s["run_step_s"] >= 0.01 for s in steps)
    assert all(b["wall"] > a["wall"] for a, b in zip(steps, steps[1:]))
    profile = profiling.profile(profiling.summarize(tmp_path / "steps.jsonl"))
    assert profile.steps == 20 and profile.step_p50_s >= 0.01 and profile.step_max_s >= profile.step_p95_s
    assert 0 < profile.steps_per_wall_s < 100 and profile.sim_per_wall == pytest.approx(profile.steps_per_wall_s / 20)


def test_an_agent_error_passes_through_and_earlier_steps_stay(agent_python, agent_file, tmp_path):
    done = drive(agent_python, agent_file, tmp_path, STANDIN_AGENT_FAIL_AT_STEP="3")
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["error"] == "RuntimeError: stand-in agent: step 3 failed on purpose"
    steps = (tmp_path / "steps.jsonl").read_text().splitlines()[1:]
    assert [json.loads(s)["step"] for s in steps] == [0, 1, 2]


def test_an_unwritable_step_file_costs_the_timing_not_the_route(agent_python, agent_file, tmp_path):
    done = drive(agent_python, agent_file, tmp_path, steps_file=tmp_path / "no" / "such" / "dir" / "steps.jsonl")
    assert done.returncode == 0 and json.loads(done.stdout.splitlines()[-1])["error"] is None
    assert "simdoctor timed_agent: step timing off, cannot write" in done.stderr
    assert profiling.profile(profiling.summarize(tmp_path / "no" / "such" / "dir" / "steps.jsonl")) is None


def test_no_step_file_variable_means_no_timing(agent_python, agent_file, tmp_path):
    done = drive(agent_python, agent_file, tmp_path, **{STEPS_FILE_ENV: None})
    assert done.returncode == 0, done.stderr
    assert not Path(tmp_path / "steps.jsonl").exists()


def test_without_the_agent_file_variable_it_says_so(agent_python, agent_file, tmp_path):
    done = drive(agent_python, agent_file, tmp_path, **{AGENT_FILE_ENV: None})
    assert done.returncode == 1 and f"{AGENT_FILE_ENV} is not set" in done.stderr


def font_share(tmp_path: Path) -> Path:
    """An XDG data folder whose fonts/ holds Liberation Sans under the name SimLingo asks PIL for."""
    share = tmp_path / "share"
    (share / "fonts").mkdir(parents=True)
    (share / "fonts" / "arial.ttf").write_bytes(Path(LIBERATION).read_bytes())
    return share


LIBERATION = "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"  # tests/setup.sh: fonts-liberation


def test_viz_switches_the_agents_own_drawing_on_every_nth_step(agent_python, agent_file, tmp_path):
    frames = tmp_path / "frames.jsonl"
    share = str(font_share(tmp_path))
    done = drive(agent_python, agent_file, tmp_path, ticks=31, HOME=str(tmp_path), XDG_DATA_DIRS=share,
                 **{VIZ_EVERY_ENV: "10", VIZ_FILE_ENV: str(frames), VIZ_FLAG_ENV: "DEBUG"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["error"] is None
    lines = [json.loads(line) for line in frames.read_text().splitlines()]
    assert [e["step"] for e in lines] == [0, 10, 20, 30]
    assert lines[0]["frame"] is None and lines[0]["answer"] is None  # step 0 only initializes (upstream too)
    images = sorted(Path(e["frame"]).name for e in lines[1:])
    assert images == ["10.png", "20.png", "30.png"]
    assert sorted(p.name for p in Path(lines[1]["frame"]).parent.iterdir()) == images  # steps 5, 15, 25: off
    assert lines[1]["frame"].startswith(f"{tmp_path}/viz/1711/RouteScenario_1711_rep0_Town12_x/debug_viz/")
    assert [e["sim_time"] for e in lines] == pytest.approx([0.05, 0.55, 1.05, 1.55])
    assert lines[1]["answer"] == "Accelerate to reach the target speed." and lines[3]["answer"].startswith("Maintain")
    assert lines[1]["prompt"].startswith("Current speed: ")
    from PIL import Image

    with Image.open(lines[1]["frame"]) as image:
        assert image.size == (1024, 512 + 400)  # the camera and the answer band
    data = Path(lines[1]["frame"]).read_bytes()
    zlib_flags = data[data.index(b"IDAT") + 5]  # the zlib stream's FLG byte: FLEVEL 0 = fastest, 2 = default
    assert zlib_flags >> 6 == 0  # written at zlib level 1: the wrapper's, since upstream's save names none


def test_without_a_font_named_arial_the_agent_crashes_as_upstream(agent_python, agent_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = drive(agent_python, agent_file, tmp_path, ticks=6, HOME=str(tmp_path), XDG_DATA_DIRS=str(empty),
                 **{VIZ_EVERY_ENV: "5", VIZ_FILE_ENV: str(tmp_path / "frames.jsonl")})  # fmt: skip
    assert json.loads(done.stdout.splitlines()[-1])["error"] == "OSError: cannot open resource"
