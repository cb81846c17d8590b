"""Median wall time of `simdoctor check` against `python -m torch.utils.collect_env`, same machine, same run.

Goals: under 0.5 s and never more than a quarter of collect_env's time (issue 2); at most 0.2 s and 0.12 of
collect_env's time (issue 15's start-up goal).

    python bench/check_speed.py [--runs 7] [--agent-python PATH] [--torch-python PATH]

simdoctor is timed as an installed package runs: bytecode compiled (pip does that at install time), so
PYTHONDONTWRITEBYTECODE is dropped from its environment. --torch-python names an interpreter with torch
(default: this one); without torch there, collect_env cannot be timed and the script says how to fix that.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO, check=False)
    return time.perf_counter() - start


def median_of(args: list[str], env: dict[str, str], runs: int) -> tuple[float, list[float]]:
    times = [timed(args, env) for _ in range(runs)]
    return statistics.median(times), times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    default_agent = REPO / ".venv-agent" / "bin" / "python"
    parser.add_argument("--agent-python", default=str(default_agent) if default_agent.exists() else None)
    parser.add_argument("--torch-python", default=sys.executable)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if args.agent_python:
        env["SIMDOCTOR_AGENT_PYTHON"] = args.agent_python
    compileall.compile_dir(REPO / "simdoctor", quiet=1)
    check = [sys.executable, "-m", "simdoctor", "check"]
    timed(check, env)  # warm the page cache like a second invocation would
    ours, our_times = median_of(check, env, args.runs)
    print(f"simdoctor check      median {ours:.3f} s over {args.runs} runs: {', '.join(f'{t:.3f}' for t in our_times)}")

    probe = subprocess.run([args.torch_python, "-c", "import torch"], capture_output=True, check=False)
    if probe.returncode != 0:
        print(f"collect_env          not timed: no torch in {args.torch_python} "
              "(pip install torch, or pass --torch-python)")  # fmt: skip
        print(f"goal: < 0.500 s -> {'met' if ours < 0.5 else 'NOT met'}")
        print(f"goal: <= 0.200 s (issue 15) -> {'met' if ours <= 0.2 else 'NOT met'}")
        return 1
    collect = [args.torch_python, "-m", "torch.utils.collect_env"]
    timed(collect, env)
    theirs, their_times = median_of(collect, env, max(3, args.runs // 2))
    print(f"torch collect_env    median {theirs:.3f} s over {len(their_times)} runs: "
          f"{', '.join(f'{t:.3f}' for t in their_times)}")  # fmt: skip
    ratio = ours / theirs
    print(f"ratio                {ratio:.2f} of collect_env (goal <= 0.25)")
    met = ours < 0.5 and ratio <= 0.25
    print(f"goals (< 0.5 s and <= 1/4 of collect_env): {'met' if met else 'NOT met'}")
    fast = ours <= 0.2 and ratio <= 0.12
    print(f"goals of issue 15 (<= 0.2 s and <= 0.12 of collect_env): {'met' if fast else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
