"""The pieces `simdoctor run` supervises with, on real processes: an evaluator's CARLA found by its cookie and
nothing else, the peak sampler, what a retry costs, a tree recorded before its
start."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from simdoctor.run.evaluator import launch_port
from simdoctor.run.results import Attempt, Kind, TaskRecord
from simdoctor.run.sampling import PeakSampler
from simdoctor.run.supervisor import charged
from simdoctor.system import procs, proctree
from simdoctor.system.proctree import Tree
from tests.conftest import Stack, free_port

FIND_AND_STOP = """
import json, sys
from pathlib import Path
from simdoctor.system import procs
from simdoctor.run.evaluator import EvaluatorRun
from simdoctor.system.proctree import Tree
from simdoctor.config.recipe import DEFAULT_RECIPE, find_recipe, load_recipe
carla = load_recipe(find_recipe(DEFAULT_RECIPE, [])).carla
run = EvaluatorRun(Tree(sys.argv[2], 0, 0, procs.boot_id()), Path(sys.argv[1]), 0, sys.argv[3], carla)
found = [p.pid for p in run.processes()]
stopped = run.stop(2.0)
print(json.dumps({"port": run.carla_port(), "found": found, "left": [p.pid for p in stopped.left]}))
"""


def test_the_launch_line_gives_the_port_carla_really_got() -> None:
    log = ("=== simdoctor: route 7 attempt 1 (rpc=20000 ...) ===\n"
           "/home/u/carla/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port=20001 -graphicsadapter=0 None\n"
           "LogCarla: Display: Listening on port 20001\n")  # fmt: skip
    assert launch_port(log, "CarlaUE4.sh") == 20001  # find_free_port moved it up from the 20000 it was given
    assert launch_port("load_world success\n", "CarlaUE4.sh") is None


def test_only_the_carla_with_the_cookie_is_the_attempts(standin_stack: Stack) -> None:
    """Two CARLAs of the same user under the same CARLA_ROOT, started as the evaluator starts one (a shell in a
    new session): the one carrying the attempt's cookie is found whole and stopped; the one on the port of the
    log's launch line without it (a server the user started there by hand) is left alone."""
    rt, root = standin_stack.rt, standin_stack.carla_root
    ours, decoy = free_port(3), free_port(3)
    cookie = proctree.new_id()
    servers = {}
    for port, extra in ((ours, {proctree.COOKIE: cookie}), (decoy, {})):
        line = f"{root}/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port={port} -graphicsadapter=0"
        servers[port] = subprocess.Popen(rt.command(["/bin/sh", "-c", line]), env=standin_stack.env(**extra),
                                         start_new_session=True, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (procs.listening_inodes(ours) and procs.listening_inodes(decoy)):
            assert time.monotonic() < deadline, "the stand-in servers did not come up"
            time.sleep(0.05)
        session = sorted(p.pid for p in procs.processes() if p.sid == servers[ours].pid)
        assert len(session) >= 2  # the launcher script and the server under it (and the shell, if it stayed)
        log = standin_stack.home / "evaluator.log"
        log.write_text(
            f"{root}/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port={decoy} -graphicsadapter=0 None\n"
        )
        done = subprocess.run(rt.command([rt.python, "-c", FIND_AND_STOP, str(log), cookie, str(root)]),
                              env=standin_stack.env(), capture_output=True, text=True, timeout=60)  # fmt: skip
        result = json.loads(done.stdout)
        assert (result["port"], sorted(result["found"]), result["left"]) == (decoy, session, [])
        assert not procs.listening_inodes(ours) and procs.listening_inodes(decoy)
    finally:
        for server in servers.values():
            proctree.stop_processes([p for p in procs.processes() if p.sid == server.pid], grace=2)
            server.wait()


def test_a_tree_recorded_before_its_start_matches_nothing_else() -> None:
    """pid 0 (not started yet) must not make every session-0 kernel thread look like the tree's."""
    assert proctree.members(Tree("no-process-has-this-cookie", 0, 0, procs.boot_id())) == []


def test_the_sampler_follows_a_tree_and_its_reparented_grandchild() -> None:
    code = ("import os, subprocess, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid(); block = bytearray(96 * 2**20); time.sleep(3); os._exit(0)\n"
            "time.sleep(0.3); os._exit(0)\n")  # fmt: skip
    with PeakSampler(0.1) as sampler:
        parent = subprocess.Popen([sys.executable, "-c", code])
        sampler.watch("t", parent.pid)
        parent.wait()
        time.sleep(1.0)  # the child lives on, reparented, in its own session: still sampled
        peaks = sampler.release("t")
    assert peaks.ram_bytes > 96 * 2**20
    assert peaks.gpu_bytes is None  # no NVML on this machine: absent, not zero
    assert sampler.release("t") == type(peaks)(None, None)


def attempt(kind):
    return Attempt(1, 0, {}, 0.0, 1.0, kind=kind)


@pytest.mark.parametrize(
    ("attempts", "spent"),
    [
        ([attempt(Kind.RETRY)], 1),
        ([attempt(Kind.RETRY), attempt(Kind.RETRY)], 2),
        ([attempt(None), attempt(Kind.RETRY)], 1),  # interrupted: free
        ([attempt(Kind.RESULT)], 0),
    ],
)
def test_what_an_attempt_costs(attempts, spent) -> None:
    assert charged(TaskRecord("1", attempts)) == spent
