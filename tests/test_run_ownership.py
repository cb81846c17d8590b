"""CARLA servers started by a running `simdoctor run` are simdoctor's: status says so, `stop --orphans`
and gpu.stale_carla leave them alone; once that simdoctor is gone they are leftovers like any other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from healthy import breaking, context, healthy_facts
from test_verdicts import verdict

from simdoctor.carla import lifecycle
from simdoctor.doctor.findings import Status
from simdoctor.doctor.probes.gpu import GpuProcess
from simdoctor.system import procs, proctree

NAME = "CarlaUE4-Linux-Shipping"


def fake_carla(tmp_path: Path) -> Path:
    """A long-running process whose comm is the shipping binary's, as the real one's is."""
    binary = tmp_path / NAME
    binary.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    binary.chmod(0o755)
    return binary


def wait_named(pid_hint: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p.pid for p in proctree.named(NAME) if p.pid == pid_hint or p.ppid == pid_hint]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("the fake CARLA did not start")


def test_a_running_simdoctor_owns_the_carla_it_started(make_settings, tmp_path):
    settings = make_settings()
    proc, tree = proctree.start([str(fake_carla(tmp_path)), "-carla-rpc-port=20100"], tmp_path / "log")
    try:
        pid = wait_named(proc.pid)
        assert proctree.live_owner(pid) == os.getpid()
        report = lifecycle.status(settings)
        mine = [s for s in report.servers if pid in s.pids]
        assert len(mine) == 1 and mine[0].started_by_simdoctor and mine[0].backend == f"run, pid {os.getpid()}"
        assert mine[0].port == 20100
        assert lifecycle.stop_orphans(settings, set(), grace=1.0) == []  # not an orphan: left running
        assert procs.is_alive(pid)
    finally:
        proctree.stop(tree, grace=1.0)


def test_once_its_simdoctor_is_gone_it_is_a_leftover(make_settings, tmp_path):
    """A simdoctor process starts the tree and exits (as a SIGKILLed `simdoctor run` would be gone)."""
    settings = make_settings()
    binary = fake_carla(tmp_path)
    code = (
        "import sys; from pathlib import Path; from simdoctor.system import proctree\n"
        f"proc, tree = proctree.start([{str(binary)!r}], Path({str(tmp_path / 'log')!r}))\n"
        "print(proc.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    pid = wait_named(int(out.stdout.split()[0]))
    try:
        assert proctree.live_owner(pid) is None
        report = lifecycle.status(settings)
        assert [s.started_by_simdoctor for s in report.servers if pid in s.pids] == [False]
        stopped = lifecycle.stop_orphans(settings, set(), grace=1.0)
        assert [s.label for s in stopped] == [f"pid {pid} (not started by simdoctor)"] and stopped[0].clean
    finally:
        if procs.is_alive(pid):
            os.kill(pid, 9)


def test_stale_carla_check_counts_a_running_runs_server_as_ours(make_settings):
    settings = make_settings()
    facts = healthy_facts(settings)
    g = facts.get("gpu")
    server = GpuProcess(31337, "graphics", 3 * 2**30, f"/opt/carla/.../{NAME} CarlaUE4 -carla-rpc-port=20000", NAME)
    held = breaking(facts, "gpu", gpus=[type(g.gpus[0])(**{**g.gpus[0].__dict__, "processes": [server]})])
    assert verdict("gpu.stale_carla", held, context(settings)).status is Status.WARN
    owned = breaking(held, "carla_servers", run_pids=[31337])
    f = verdict("gpu.stale_carla", owned, context(settings))
    assert f.status is Status.OK and "a running simdoctor run's" in f.summary
