"""Median wall time of `simdoctor check` against `python -m torch.utils.collect_env`, same machine, same run, and
beside the same `check` of an earlier revision (--peer-rev), their runs taken in turn.

Goals: under 0.5 s and never more than a quarter of collect_env's time (issue 2); at most 0.2 s and 0.12 of
collect_env's time (issue 15's start-up goal).

    python bench/check_speed.py [--runs 7] [--agent-python PATH] [--torch-python PATH] [--peer-rev REV]

simdoctor is timed as an installed package runs: bytecode compiled (pip does that at install time), so
PYTHONDONTWRITEBYTECODE is dropped from its environment. --torch-python names an interpreter with torch
(default: this one); without torch there, collect_env cannot be timed and the script says how to fix that.
--peer-rev (default: main before issue 15's start-up work; '' for none) is a git revision of this repository,
extracted to a temporary folder and run as `python -m simdoctor check` from there, one peer run before each of
this code's: a machine shared with other work changes both alike. Each line also gives the median CPU time
(user + system, the process and its children, from wait4): what the command costs whatever else runs.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_REV = "60efe59"  # main after the package move, before issue 15's start-up work on it


def timed(args: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait for it again
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def line(label: str, times: list[tuple[float, float]]) -> str:
    wall = statistics.median(t for t, _ in times)
    cpu = statistics.median(c for _, c in times)
    runs = ", ".join(f"{t:.3f}" for t, _ in times)
    return f"{label:22} median {wall:.3f} s (CPU {cpu:.3f} s) over {len(times)} runs: {runs}"


def peer_tree(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "simdoctor", "recipes"],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    compileall.compile_dir(into / "simdoctor", quiet=1)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    default_agent = REPO / ".venv-agent" / "bin" / "python"
    parser.add_argument("--agent-python", default=str(default_agent) if default_agent.exists() else None)
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--peer-rev", default=PEER_REV, help="git revision to compare with ('' for none)")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if args.agent_python:
        env["SIMDOCTOR_AGENT_PYTHON"] = args.agent_python
    compileall.compile_dir(REPO / "simdoctor", quiet=1)
    check = [sys.executable, "-m", "simdoctor", "check"]
    with tempfile.TemporaryDirectory() as tmp:
        peer = peer_tree(args.peer_rev, Path(tmp)) if args.peer_rev else None
        ours, theirs_before = [], []
        timed(check, env)  # warm the page cache like a second invocation would
        if peer:
            timed(check, env, peer)
        for _ in range(args.runs):
            if peer:
                theirs_before.append(timed(check, env, peer))
            ours.append(timed(check, env))
    if theirs_before:
        print(line(f"check at {args.peer_rev}", theirs_before))
    print(line("simdoctor check", ours))
    median = statistics.median(t for t, _ in ours)

    probe = subprocess.run([args.torch_python, "-c", "import torch"], capture_output=True, check=False)
    if probe.returncode != 0:
        print(f"collect_env          not timed: no torch in {args.torch_python} "
              "(pip install torch, or pass --torch-python)")  # fmt: skip
        print(f"goal: < 0.500 s -> {'met' if median < 0.5 else 'NOT met'}")
        print(f"goal: <= 0.200 s (issue 15) -> {'met' if median <= 0.2 else 'NOT met'}")
        return 1
    collect = [args.torch_python, "-m", "torch.utils.collect_env"]
    timed(collect, env)
    collected = [timed(collect, env) for _ in range(max(3, args.runs // 2))]
    print(line("torch collect_env", collected))
    ratio = median / statistics.median(t for t, _ in collected)
    if theirs_before:
        print(f"ratio                  {statistics.median(t for t, _ in theirs_before) / median:.2f}x faster "
              f"than at {args.peer_rev}")  # fmt: skip
    print(f"ratio                  {ratio:.2f} of collect_env (goal <= 0.25)")
    met = median < 0.5 and ratio <= 0.25
    print(f"goals (< 0.5 s and <= 1/4 of collect_env): {'met' if met else 'NOT met'}")
    fast = median <= 0.2 and ratio <= 0.12
    print(f"goals of issue 15 (<= 0.2 s and <= 0.12 of collect_env): {'met' if fast else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
