"""What running the routes through Slurm costs against running them locally, on the same stand-ins.

Starts the single-node Slurm cluster of the tests (tests/slurmcluster.py, on this machine) and a stand-in stack
(the stand-in Bench2Drive evaluator starting the stand-in CARLA, each route driving --drive-s wall seconds),
then runs the same routes, --slots at a time, both ways and prints side by side:
- `simdoctor run --gpus none --workers-per-gpu K` (local) and `simdoctor run --executor slurm --gpus-per-task 0
  --max-concurrent K` (one array), end to end;
- the evaluator's own time per attempt (the same stand-in in both: the tasks themselves are not slower);
- the gap between one route's end and the next one's start on a slot (local: a slot takes the next route;
  Slurm: the scheduler starts the next array task, which starts simdoctor's interpreter on the node);
- the time from submission (just before sbatch) to the first route's evaluator starting on the node;
- the per-task overhead against local = (Slurm's end to end - local's) / routes x slots.

Run as root from the repo root after `bash tests/setup.sh` (simdoctor, the evaluators and CARLA run as the
non-root test user): `.venv/bin/python bench/slurm_overhead.py [--routes 8] [--drive-s 3] [--slots 1]`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/conftest.py imports builders and slurmcluster as pytest does

from run_overhead import fixed_time_routes, route_options, stop_leftovers  # noqa: E402  (bench/, beside this file)

from simdoctor.run import results  # noqa: E402
from tests import slurmcluster  # noqa: E402


def timed(command: list[str], env: dict, cwd: Path) -> float:
    began = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600, cwd=cwd)
    took = time.monotonic() - began
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[-12:])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return took


def attempts(out: Path) -> list[results.Attempt]:
    found = [a for p in (out / "tasks").glob("*.json") for a in results.read_task(p).attempts]
    if any(a.kind is not results.Kind.RESULT for a in found):
        sys.exit(f"an attempt in {out} did not end with a result: the figures would not compare like with like")
    return sorted(found, key=lambda a: a.started)


def gaps(found: list[results.Attempt], slots: int) -> list[float]:
    """Each route's start less the end of the route before it on the same slot (the k-th end before it)."""
    ends = sorted(a.ended for a in found)
    return [a.started - ends[i] for i, a in enumerate(found[slots:])]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    parser = route_options(argparse.ArgumentParser())
    parser.add_argument("--slots", type=int, default=1, help="routes at a time, both ways")
    args = parser.parse_args()
    stack, source = fixed_time_routes(args.routes, args.drive_s)
    rt, home = stack.rt, stack.home
    root = Path(tempfile.mkdtemp(prefix="sdslurm-", dir="/tmp"))
    root.chmod(0o755)
    cluster = None
    try:
        cluster = slurmcluster.start(root, gpus=2)
        version = subprocess.run(["sinfo", "--version"], env=cluster.env, capture_output=True, text=True).stdout
        env = {**stack.env(), "SLURM_CONF": cluster.env["SLURM_CONF"]}
        env.pop("PYTHONDONTWRITEBYTECODE")
        common = ["run", "--routes", str(source), "--route-timeout", "120", "--json"]
        k = str(args.slots)
        local_wall = timed(rt.simdoctor(*common, "--out", str(home / "local"), "--gpus", "none",
                                        "--workers-per-gpu", k), env, home)  # fmt: skip
        slurm_wall = timed(rt.simdoctor(*common, "--out", str(home / "slurm"), "--executor", "slurm",
                                        "--gpus-per-task", "0", "--cpus-per-task", "1", "--mem", "200M",
                                        "--max-concurrent", k), env, home)  # fmt: skip
        local, slurm = attempts(home / "local"), attempts(home / "slurm")
        ledger = json.loads((home / "slurm" / "slurm" / "jobs.json").read_text())["submissions"]
        if len(ledger) != 1:
            sys.exit(f"Slurm needed {len(ledger)} submissions (a resubmission): the figures would not compare")
        first_start = slurm[0].started - ledger[0]["submitted"]
    finally:
        stop_leftovers(stack)
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    n, width = args.routes, 14
    print(f"{n} routes, each driving {args.drive_s:g} s (stand-in evaluator + stand-in CARLA), {args.slots} at a time; "
          f"{os.cpu_count()} CPUs; {version.strip()}, one node: this machine")  # fmt: skip
    rows = [
        ("end to end (s)", f"{local_wall:.2f}", f"{slurm_wall:.2f}"),
        ("per route (s)", f"{local_wall / n:.3f}", f"{slurm_wall / n:.3f}"),
        ("evaluator per attempt, mean (s)", f"{mean([a.ended - a.started for a in local]):.3f}",
         f"{mean([a.ended - a.started for a in slurm]):.3f}"),
        ("gap to the next route on a slot, mean (s)", f"{mean(gaps(local, args.slots)):.3f}",
         f"{mean(gaps(slurm, args.slots)):.3f}"),
        ("submission to the first route's evaluator (s)", "-", f"{first_start:.3f}"),
    ]  # fmt: skip
    print(f"{'':46}{'local':>{width}}{'slurm':>{width}}")
    for name, a, b in rows:
        print(f"{name:46}{a:>{width}}{b:>{width}}")
    overhead = (slurm_wall - local_wall) / n * args.slots
    print(f"per-task overhead of Slurm against local: {overhead:.3f} s per route and slot")
    print(json.dumps({"routes": n, "drive_s": args.drive_s, "slots": args.slots, "local_wall_s": local_wall,
                      "slurm_wall_s": slurm_wall, "first_start_s": first_start,
                      "local_gaps_s": gaps(local, args.slots), "slurm_gaps_s": gaps(slurm, args.slots)}))  # fmt: skip


if __name__ == "__main__":
    main()
