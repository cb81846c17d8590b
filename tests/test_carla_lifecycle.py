"""`simdoctor carla start|stop|status|logs` end to end, run as a non-root user against the stand-in
server (tests/standins/carla_server.py) in a CARLA_ROOT laid out like the release package."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simdoctor.config.settings import load_settings
from simdoctor.system import procs, proctree
from simdoctor.system.proctree import Tree
from tests import builders
from tests.conftest import UserRuntime, free_port

PROCESS_NAME = "CarlaUE4-Linux-Shipping"


@dataclass
class Carla:
    """One isolated user setup: HOME, state dir, a stand-in CARLA_ROOT, a free port range."""

    rt: UserRuntime
    home: Path
    root: Path
    port: int

    def env(self, **extra: str) -> dict[str, str]:
        return self.rt.env(self.home, CARLA_ROOT=str(self.root), SIMDOCTOR_CARLA_PORT=str(self.port), **extra)

    def behave(self, **behaviour: Any) -> None:
        builders.set_behaviour(self.root, behaviour)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.rt.simdoctor(*args), env=self.env(), capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.rt.simdoctor(*args), env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def start(self, *args: str, timeout: float = 60) -> tuple[int, dict]:
        done = self.run("carla", "start", "--gpu", "none", "--json", *args, timeout=timeout)
        assert done.stdout.strip(), done.stderr
        return done.returncode, json.loads(done.stdout)

    def state_dir(self) -> Path:
        return self.home / "state" / "carla"

    def records(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.state_dir().glob("*.json"))]

    def user_processes(self) -> list[procs.ProcessInfo]:
        return self.rt.processes()


def tree_of(record: dict) -> list[procs.ProcessInfo]:
    return proctree.members(Tree(**record["tree"]))


@pytest.fixture
def carla(user_runtime: UserRuntime) -> Any:
    home = user_runtime.mkdir("home")
    root = home / "carla"
    recipe = load_settings(env={"HOME": str(home)}).recipe
    builders.carla_root(root, recipe)
    builders.standin_server(root, recipe, user_runtime.python, user_runtime.code)
    user_runtime.chown_tree(home)
    setup = Carla(user_runtime, home, root, free_port(12))
    yield setup
    # Whatever a test left behind is a failure of that test; clean it up so the next one is not hit.
    left = setup.user_processes()
    if left:
        proctree.stop_processes(left, grace=1)
        pytest.fail(f"processes left running: {[p.command for p in left]}")


def test_start_reports_readiness_and_stop_leaves_nothing(carla: Carla) -> None:
    carla.behave(ready_after=0.8)
    code, out = carla.start()
    assert code == 0, out
    assert out["status"] == "ready"
    assert out["ready"]["version"] == "0.9.15"
    assert out["ready"]["seconds"] >= 0.8  # the stand-in took 0.8 s to bind
    assert out["ready"]["via"].startswith("carla client")  # the real client, importable here
    record = out["record"]
    assert record["port"] == carla.port and record["streaming_port"] == carla.port + 1
    cmd = record["command"]
    assert cmd[0] == str(carla.root / "CarlaUE4.sh")
    assert cmd[1:] == ["-RenderOffScreen", "-nosound", f"-carla-rpc-port={carla.port}", "-quality-level=Epic"]
    # The real shape: the launcher script, and the shipping binary as its child.
    tree = tree_of(carla.records()[0])
    names = sorted(p.comm for p in tree)
    assert names == ["CarlaUE4-Linux-", "CarlaUE4.sh"], names  # comm: the files, cut to 15
    shipping = next(p for p in tree if procs.matches_name(p, PROCESS_NAME))
    launcher = next(p for p in tree if p.comm == "CarlaUE4.sh")
    assert shipping.ppid == launcher.pid
    assert shipping.uid == carla.rt.uid  # run as the non-root user
    # Rendering: no GPU here, so it says it cannot verify on the GPU side, but read the log.
    assert out["rendering"]["verdict"] == "unverified"
    assert "cannot verify on the GPU side" in out["rendering"]["summary"]
    assert out["rendering"]["log_device"]["name"] == "NVIDIA H100 80GB HBM3"

    done = carla.run("carla", "stop", record["id"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing left running" in done.stdout
    assert not [p for p in procs.processes() if p.pid in {q.pid for q in tree} and procs.is_alive(p.pid)]
    assert tree_of(record) == []
    assert carla.records() == []
    assert carla.user_processes() == []


def test_human_output_and_logs(carla: Carla) -> None:
    done = carla.run("carla", "start", "--gpu", "none", "--quality", "low")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"CARLA 0.9.15 ready on port {carla.port} in" in done.stdout
    assert "cannot verify on the GPU side" in done.stdout
    assert f"simdoctor carla stop {carla.port}" in done.stdout
    logs = carla.run("carla", "logs", str(carla.port))
    assert "LogVulkanRHI: Display: Using Device 0" in logs.stdout
    assert "Disabling core dumps." in logs.stdout
    record = carla.records()[0]
    assert record["command"][-1] == "-quality-level=Low"
    assert carla.run("carla", "stop", "--all").returncode == 0


def test_no_wait_returns_with_the_record_written(carla: Carla) -> None:
    carla.behave(ready_after=3)
    began = time.monotonic()
    code, out = carla.start("--no-wait")
    assert code == 0 and out["status"] == "started"
    assert time.monotonic() - began < 3
    assert carla.records()[0]["tree"]["pid"] == out["record"]["tree"]["pid"]
    status = json.loads(carla.run("carla", "status", "--json").stdout)
    mine = [s for s in status["servers"] if s["started_by_simdoctor"]]
    assert mine and mine[0]["alive"] and mine[0]["version"] is None  # not answering yet
    assert carla.run("carla", "stop", str(carla.port)).returncode == 0
    assert carla.user_processes() == []


def test_root_is_refused_before_anything_runs(carla: Carla) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simdoctor", "carla", "start", "--gpu", "none"],
        env=carla.env(PYTHONPATH=str(carla.rt.code)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Refusing to run with the root privileges" in done.stderr
    assert "--backend docker" in done.stderr  # the fix
    assert not carla.state_dir().exists()  # no record, no log: nothing ran
    assert proctree.named(PROCESS_NAME) == []


@pytest.mark.parametrize(
    ("fail", "key", "words"),
    [
        ("address_in_use", "address_in_use", "already taken"),
        ("icd_missing", "icd_missing", "no NVIDIA Vulkan driver (ICD)"),
        ("no_device", "no_device", "no usable device"),
        ("out_of_memory", "out_of_memory", "ran out of memory"),
        ("x_error", "x_error", "an X error"),
        ("signal11", "signal11", "the line before it is the cause"),
        ("silent", "silent_exit", "Disabling core dumps."),
        ("root", "root", "refuses to run as root"),
    ],
)
def test_each_failure_is_diagnosed_and_nothing_is_left(carla: Carla, fail: str, key: str, words: str) -> None:
    carla.behave(fail=fail)
    code, out = carla.start()
    assert code == 1, out
    assert out["status"] == "failed"
    keys = [d["key"] for d in out["diagnoses"]]
    assert keys[0] == key, keys
    assert words in out["summary"]
    assert out["diagnoses"][0]["fix"]["commands"] or out["diagnoses"][0]["fix"]["text"]
    if key in ("address_in_use", "out_of_memory", "signal11"):
        assert "SIGSEGV" in out["summary"]  # it died by signal 11, as CARLA does
        trailer = next(d for d in out["diagnoses"] if d["key"] == "signal11")
        assert trailer["lines"][-1].startswith(("Signal 11", "CommonUnixCrashHandler", "Segmentation"))
        assert not trailer["lines"][0].startswith("Signal 11")  # the line before the crash comes first
    assert carla.records() == []
    assert carla.user_processes() == []


def test_human_diagnosis_shows_cause_fix_and_log_lines(carla: Carla) -> None:
    carla.behave(fail="signal11")
    done = carla.run("carla", "start", "--gpu", "none")
    assert done.returncode == 1
    assert "crash: CARLA crashed (signal 11)" in done.stdout
    assert "| LogVulkanRHI: Error: VulkanRHI::vkQueueSubmit" in done.stdout
    assert "cleanup: nothing was left running" in done.stdout or "cleanup: stopped" in done.stdout


@pytest.mark.parametrize("flag", ["--ready-timeout", "--timeout"])  # --timeout: the old spelling, for one release
def test_timeout_when_server_never_comes_up(carla: Carla, flag: str) -> None:
    carla.behave(hang=True)
    done = carla.run("carla", "start", "--gpu", "none", "--json", flag, "1.5")
    code, out = done.returncode, json.loads(done.stdout)
    assert code == 1 and out["status"] == "timeout" and "within 1.5 s" in out["summary"]
    old = "note: --timeout 1.5 is deprecated; use --ready-timeout 1.5 (the old spelling goes in the next release)"
    assert (old in done.stderr) == (flag == "--timeout"), done.stderr
    assert "did not answer" in out["summary"] and "stopped it" in out["summary"]
    assert out["cleanup"]["terminated"]
    assert carla.user_processes() == []


def test_listening_but_not_answering_times_out(carla: Carla) -> None:
    carla.behave(reply_delay=3600)
    code, out = carla.start("--ready-timeout", "2")
    assert code == 1 and out["status"] == "timeout"
    assert carla.user_processes() == []


def test_llvmpipe_rendering_is_reported_as_cpu(carla: Carla) -> None:
    carla.behave(vulkan="real")  # the real loader here lists only Mesa's llvmpipe
    code, out = carla.start()
    assert code == 3, out  # running, but not on a GPU
    assert out["rendering"]["verdict"] == "cpu"
    assert "llvmpipe" in out["rendering"]["summary"]
    assert out["rendering"]["log_device"]["type"] == "CPU"
    assert carla.run("carla", "stop", str(carla.port)).returncode == 0


def test_auto_ports_skip_a_port_the_test_holds(carla: Carla) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", carla.port + 1))  # the streaming port of the first candidate
        held.listen()
        code, out = carla.start()
        assert code == 0, out
        rpc = out["record"]["port"]
        assert rpc not in (carla.port, carla.port + 1) and carla.port + 1 not in (rpc + 1, rpc + 2)
        assert rpc == carla.port + 2
        # an explicit port that collides is refused before anything starts, naming the holder
        done = carla.run("carla", "start", "--gpu", "none", "--port", str(carla.port))
        assert done.returncode == 1
        assert f"streaming port {carla.port + 1} is taken" in done.stderr
        assert carla.run("carla", "stop", "--all").returncode == 0


def test_a_port_bound_but_not_listening_is_busy(carla: Carla) -> None:
    with socket.socket() as held:
        held.bind(("0.0.0.0", carla.port))  # bound, no listen: CARLA's bind would still fail
        code, out = carla.start()
        assert code == 0, out
        assert out["record"]["port"] == carla.port + 1
        assert carla.run("carla", "stop", "--all").returncode == 0


def test_sigint_during_start_leaves_nothing(carla: Carla) -> None:
    carla.behave(ready_after=30)
    proc = carla.popen("carla", "start", "--gpu", "none")
    deadline = time.monotonic() + 30
    while not carla.records():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.05)
    record = carla.records()[0]
    time.sleep(0.3)  # the server is up but not ready
    assert tree_of(record)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.endswith("simdoctor: interrupted\n"), err  # said, not swallowed by Typer
    assert tree_of(record) == []
    assert carla.records() == []
    assert carla.user_processes() == []


def test_sigterm_during_start_leaves_nothing(carla: Carla) -> None:
    carla.behave(ready_after=30)
    proc = carla.popen("carla", "start", "--gpu", "none")
    deadline = time.monotonic() + 30
    while not carla.records():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert carla.user_processes() == []


def test_stop_kills_what_ignores_term_and_escaped_children(carla: Carla) -> None:
    carla.behave(ignore_term=True, escape_child=True)
    code, out = carla.start()
    assert code == 0, out
    record = carla.records()[0]
    tree = tree_of(record)
    escaped = [p for p in tree if p.sid != record["tree"]["pid"]]
    assert escaped, [(p.pid, p.sid, p.command) for p in tree]  # left the session, still found (cookie)
    done = json.loads(carla.run("carla", "stop", str(carla.port), "--grace", "0.5", "--json").stdout)
    result = done["stopped"][0]
    assert result["clean"]
    assert result["result"]["killed"]  # TERM was ignored: KILL after the grace period
    assert carla.user_processes() == []


def test_stop_after_the_starting_simdoctor_was_killed(carla: Carla) -> None:
    carla.behave(ready_after=30)
    proc = carla.popen("carla", "start", "--gpu", "none")
    while not carla.records():
        time.sleep(0.05)
    proc.kill()  # no cleanup can run: the record must be enough to stop the server later
    proc.communicate()
    record = carla.records()[0]
    assert tree_of(record)
    status = json.loads(carla.run("carla", "status", "--json").stdout)
    assert [s["id"] for s in status["servers"] if s["started_by_simdoctor"]] == [record["id"]]
    assert carla.run("carla", "stop", record["id"]).returncode == 0
    assert carla.user_processes() == []


def test_status_marks_a_carla_not_started_by_simdoctor(carla: Carla) -> None:
    code, _ = carla.start()
    assert code == 0
    other = free_port(3)
    foreign = subprocess.Popen(
        carla.rt.command([str(carla.root / "CarlaUE4.sh"), "-RenderOffScreen", f"-carla-rpc-port={other}"]),
        env=carla.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not proctree.listeners(other):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status = json.loads(carla.run("carla", "status", "--json").stdout)
        servers = status["servers"]
        ours = [s for s in servers if s["started_by_simdoctor"]]
        theirs = [s for s in servers if not s["started_by_simdoctor"]]
        assert [s["port"] for s in ours] == [carla.port] and ours[0]["version"] == "0.9.15"
        assert [s["port"] for s in theirs] == [other] and theirs[0]["id"] is None
        text = carla.run("carla", "status").stdout
        assert "NOT simdoctor" in text and "simdoctor carla stop --orphans" in text
        # stop --all leaves the foreign server alone; --orphans stops it (and its launcher)
        assert carla.run("carla", "stop", "--all").returncode == 0
        assert proctree.listeners(other)
        done = carla.run("carla", "stop", "--orphans")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "not started by simdoctor" in done.stdout
        foreign.wait(timeout=10)
    finally:
        if foreign.poll() is None:
            os.killpg(foreign.pid, signal.SIGKILL)
            foreign.wait()
    assert carla.user_processes() == []


def test_crash_after_ready_shows_as_dead_and_stop_drops_the_record(carla: Carla) -> None:
    carla.behave(crash_after=0.5)
    code, _ = carla.start()
    assert code == 0
    time.sleep(1.5)
    status = json.loads(carla.run("carla", "status", "--json").stdout)
    mine = [s for s in status["servers"] if s["started_by_simdoctor"]]
    assert mine and not mine[0]["alive"]
    assert "dead" in carla.run("carla", "status").stdout
    assert carla.run("carla", "stop", str(carla.port)).returncode == 0
    assert carla.records() == []
    assert "Signal 11 caught." in carla.run("carla", "logs", str(carla.port)).stdout


def test_window_refused_when_vulkan_cannot_present_the_gpu(carla: Carla, xvfb: str) -> None:
    done = subprocess.run(
        carla.rt.simdoctor("carla", "start", "--gpu", "none", "--window"),
        env=carla.env(DISPLAY=xvfb),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "--window: no NVIDIA GPU among the Vulkan devices ([0] llvmpipe" in done.stderr
    assert "simdoctor run --viz" in done.stderr  # the way out: off-screen, watched in a browser
    assert not carla.state_dir().exists()  # refused before CARLA started


def test_usage_errors(carla: Carla) -> None:
    assert carla.run("carla", "start", "--gpu", "x").returncode == 2
    assert carla.run("carla", "start", "--port", "99999").returncode == 2
    low = carla.run("carla", "start", "--gpu", "none", "--port", "1")  # a normal user: not "taken"
    assert low.returncode == 1 and "rpc port 1 is privileged: only root may bind ports below 1024" in low.stderr
    assert "taken" not in low.stderr
    assert carla.run("carla", "start", "--gpu", "none", "--quality", "Ultra").returncode == 2
    done = carla.run("carla", "stop", "1")
    assert done.returncode == 1 and "no server 1" in done.stderr
    assert carla.run("carla", "logs", "1").returncode == 1


@pytest.mark.parametrize("extra", [(), ("--window",)])
def test_a_privileged_port_is_refused_before_the_machine_is_looked_at(user_runtime: UserRuntime, extra) -> None:
    """--port 80 as a normal user is an argument CARLA can never use: said first, not after "CARLA not found"
    (or the display's verdict with --window) about a CARLA_ROOT that is missing too."""
    home = user_runtime.mkdir("home")
    done = subprocess.run(
        user_runtime.simdoctor("carla", "start", "--port", "80", *extra),
        env=user_runtime.env(home, CARLA_ROOT=str(home / "no-carla")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("simdoctor: rpc port 80 is privileged: only root may bind ports below"), done.stderr
    assert "not found" not in done.stderr and "--window" not in done.stderr
    assert "carla start --port auto" in done.stderr  # the fix


def test_no_gpu_visible_is_said_clearly(carla: Carla) -> None:
    done = carla.run("carla", "start", "--gpu", "0")
    assert done.returncode == 1
    assert "no NVIDIA GPU is visible" in done.stderr
    assert "--gpu none" in done.stderr


def test_logs_follow_ends_when_the_server_is_gone(carla: Carla) -> None:
    carla.behave(crash_after=1.0)
    code, _ = carla.start()
    assert code == 0
    done = carla.run("carla", "logs", str(carla.port), "-f", timeout=30)
    assert done.returncode == 0
    assert done.stdout.rstrip().endswith("CommonUnixCrashHandler: Signal=11") or "Signal 11 caught." in done.stdout
    assert carla.run("carla", "stop", str(carla.port)).returncode == 0
