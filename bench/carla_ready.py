"""How fast `simdoctor carla start` notices a ready server and `stop` leaves nothing, with the stand-in.

Prints, over several runs (median, min, max):
- ready latency: from the stand-in server's RPC port answering (it writes time.time() then) to
  simdoctor reporting ready (`ready.at` of `start --json`). Goal: under 0.5 s. Its peer, the
  upstream evaluators, sleep a fixed 60 s (SimLingo) or 30 s (Bench2Drive) after launching CARLA.
- stop: wall time of `simdoctor carla stop ID` until the process table has nothing of the tree
  (TERM, verified), side by side with its upstream peer `os.killpg(pgid, SIGKILL)` (the evaluator's
  atexit), timed the same way.

Run as root from the repo root after `bash tests/setup.sh` (simdoctor runs as the non-root test
user, as CARLA must): `.venv/bin/python bench/carla_ready.py [--runs 7] [--ready-after 1.0]`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/conftest.py imports builders as pytest does

from simdoctor.config.settings import load_settings  # noqa: E402
from simdoctor.system import proctree  # noqa: E402
from simdoctor.system.proctree import Tree  # noqa: E402
from tests import builders  # noqa: E402
from tests.conftest import free_port, new_user_runtime  # noqa: E402

UPSTREAM_SLEEPS = {"SimLingo leaderboard_evaluator.py": 60.0, "Bench2Drive leaderboard_evaluator.py": 30.0}


def wait_gone(tree: Tree, began: float) -> float:
    while proctree.members(tree):
        time.sleep(0.001)
    return time.monotonic() - began


def stats(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--ready-after", type=float, default=1.0, help="the stand-in's start-up time")
    args = parser.parse_args()
    try:
        rt = new_user_runtime("simdoctor-bench-")
    except RuntimeError as exc:
        sys.exit(str(exc))
    base = rt.base
    home = base / "home"
    root = home / "carla"
    recipe = load_settings(env={"HOME": str(home)}).recipe
    builders.carla_root(root, recipe)
    builders.standin_server(root, recipe, rt.python, rt.code)
    rt.chown_tree(base)
    env = rt.env(home, CARLA_ROOT=str(root))
    env.pop("PYTHONDONTWRITEBYTECODE")
    latency, start_wall, stop_wall, kill_wall = [], [], [], []
    try:
        for i in range(args.runs):
            marker = base / f"answering-{i}"
            builders.set_behaviour(root, {"ready_after": args.ready_after, "answering_file": str(marker)})
            port = free_port(4)
            began = time.monotonic()
            done = subprocess.run(rt.simdoctor("carla", "start", "--gpu", "none", "--port", str(port), "--json"),
                                  env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
            start_wall.append(time.monotonic() - began)
            out = json.loads(done.stdout)
            if out["status"] != "ready":
                sys.exit(f"start failed: {out['summary']}")
            latency.append(out["ready"]["at"] - float(marker.read_text()))
            tree = Tree(**out["record"]["tree"])
            if i % 2 == 0:
                began = time.monotonic()
                subprocess.run(rt.simdoctor("carla", "stop", str(port)), env=env, capture_output=True, timeout=60)
                stop_wall.append(wait_gone(tree, began))
            else:  # the upstream way, on the same kind of server
                began = time.monotonic()
                os.killpg(tree.pid, signal.SIGKILL)
                kill_wall.append(wait_gone(tree, began))
                subprocess.run(rt.simdoctor("carla", "stop", str(port)), env=env, capture_output=True, timeout=60)
    finally:
        proctree.stop_processes(rt.processes(), grace=1)
        shutil.rmtree(base, ignore_errors=True)
    print(f"stand-in start-up time {args.ready_after:g} s, {args.runs} runs")
    print(f"ready latency (server answers -> simdoctor reports ready): {stats(latency)}   goal < 0.5 s")
    for who, seconds in UPSTREAM_SLEEPS.items():
        print(f"  peer: {who} sleeps a fixed {seconds:g} s before its first connection attempt")
    print(f"whole `carla start` command (incl. interpreter start-up):  {stats(start_wall)}")
    print(f"`simdoctor carla stop` until no process of the tree is left: {stats(stop_wall)}")
    print(f"  peer: os.killpg(pgid, SIGKILL) (upstream atexit), same check: {stats(kill_wall)}")


if __name__ == "__main__":
    main()
