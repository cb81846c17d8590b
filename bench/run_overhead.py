"""What `simdoctor run` costs on top of the evaluators it runs, and how route throughput grows with slots.

With stand-ins that take a fixed time (the stand-in Bench2Drive evaluator starting the stand-in CARLA, then
driving each route for --drive-s wall seconds), it prints, side by side:
- the evaluator's own time per route: each task's exact command (runplan.launch) run directly, one after the
  other, as a bare loop would (the peer);
- `simdoctor run` with 1 slot over the same routes: its wall per route, and the orchestration overhead per
  route = (simdoctor's wall - the evaluators' own time) / routes, with and without its fixed start-up and
  final report (measured alone: a rerun on the finished folder). Goal: under 1 s per route.
- route throughput with 1, 2 and 4 slots (`--gpus none --workers-per-gpu N`) relative to 1 slot, over the
  span from the first attempt's start to the last one's end (and end to end). Goal: at least 0.9 x slots.

Run as root from the repo root after `bash tests/setup.sh` (simdoctor, the evaluators and CARLA run as the
non-root test user, as CARLA must): `.venv/bin/python bench/run_overhead.py [--routes 8] [--drive-s 3]`
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/conftest.py imports builders as pytest does

from simdoctor.config.settings import load_settings  # noqa: E402
from simdoctor.doctor.probes.ports import worker_ports  # noqa: E402
from simdoctor.run import results, runplan  # noqa: E402
from simdoctor.system import proctree  # noqa: E402
from tests import builders  # noqa: E402
from tests.conftest import Stack, UserRuntime, make_stack, new_user_runtime  # noqa: E402

SLOTS = (1, 2, 4)


def simdoctor_run(rt: UserRuntime, env: dict, source: Path, out: Path, slots: int) -> float:
    args = ["run", "--routes", str(source), "--out", str(out), "--gpus", "none", "--workers-per-gpu", str(slots),
            "--route-timeout", "120", "--json"]  # fmt: skip
    began = time.monotonic()
    done = subprocess.run(rt.simdoctor(*args), env=env, capture_output=True, text=True, timeout=1800)
    took = time.monotonic() - began
    if done.returncode != 0:
        sys.exit(f"simdoctor run failed ({done.returncode}): {done.stderr[-2000:]}")
    return took


def span(out: Path) -> float:
    """First attempt's start to the last attempt's end, from simdoctor's task records."""
    attempts = [a for p in (out / "tasks").glob("*.json") for a in results.read_task(p).attempts]
    return max(a.ended for a in attempts) - min(a.started for a in attempts)


def direct(rt: UserRuntime, env: dict, source: Path, out: Path) -> list[float]:
    """The peer: each task's exact evaluator command, one after the other, timed from start to exit."""
    settings = load_settings(env=env)
    slots, _ = runplan.plan_slots(settings, (), 1, None, [])
    plan, texts = runplan.build(settings, runplan.Options(routes=source, out=out), slots)
    runplan.prepare(plan, texts, settings)
    for name in ("res", "logs", "steps", "viz"):
        (out / name).mkdir(exist_ok=True)
    rt.chown_tree(out)
    times, used = [], set()
    for task in plan.tasks:
        # Fresh ports each time, as simdoctor gives them: the last route's ports may be in TIME_WAIT, and CARLA
        # dies on a port it cannot bind (the evaluator's find_free_port checks only the RPC port).
        ports = worker_ports(settings.recipe.carla, 1, settings.recipe.run.port_base, frozenset(used))[0]
        used |= set(ports.values())
        run = runplan.launch(plan, task, dataclasses.replace(slots[0], ports=ports))
        with open(task.log_file, "w") as log:
            began = time.monotonic()
            code = subprocess.run(rt.command(run.argv), env={**env, **run.env}, cwd=run.cwd, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True).returncode  # fmt: skip
            times.append(time.monotonic() - began)
        if code != 0:
            sys.exit(
                f"the evaluator failed on route {task.route.id} ({code}): {Path(task.log_file).read_text()[-1500:]}"
            )
    return times


def route_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--routes and --drive-s (also bench/slurm_overhead.py's)."""
    parser.add_argument("--routes", type=int, default=8)
    parser.add_argument("--drive-s", type=float, default=3.0, help="wall seconds each route drives")
    return parser


def fixed_time_routes(routes: int, drive_s: float) -> tuple[Stack, Path]:
    """A fresh stand-in stack the test user owns and a routes file in it whose routes each drive `drive_s` wall
    seconds (also bench/slurm_overhead.py's); exits with the reason when the stack cannot be made."""
    try:
        stack = make_stack(new_user_runtime("simdoctor-bench-"))
    except RuntimeError as exc:
        sys.exit(str(exc))
    specs = [builders.standin_route(str(i), standin_sim_s="1", standin_wall_s=f"{drive_s:g}") for i in range(routes)]
    source = builders.routes_xml(stack.home / "routes.xml", specs)
    stack.rt.chown_tree(stack.home)
    return stack, source


def stop_leftovers(stack: Stack) -> None:
    """Stop whatever the test user still runs and remove the session's files (also bench/slurm_overhead.py's)."""
    left = stack.user_processes()
    if left:
        proctree.stop_processes(left, grace=1)
    shutil.rmtree(stack.rt.base, ignore_errors=True)


def main() -> None:
    args = route_options(argparse.ArgumentParser()).parse_args()
    stack, source = fixed_time_routes(args.routes, args.drive_s)
    rt, home = stack.rt, stack.home
    env = stack.env()
    env.pop("PYTHONDONTWRITEBYTECODE")
    walls, spans = {}, {}
    try:
        own = direct(rt, env, source, home / "direct")
        for slots in SLOTS:
            out = home / f"out-{slots}"
            walls[slots] = simdoctor_run(rt, env, source, out, slots)
            spans[slots] = span(out)
        fixed = simdoctor_run(rt, env, source, home / "out-1", 1)  # nothing left to run: start-up and report
    finally:
        stop_leftovers(stack)
    n = args.routes
    print(f"{n} routes, each driving {args.drive_s:g} s (stand-in evaluator + stand-in CARLA), "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"peer: each evaluator command run directly, one after the other: {sum(own):.2f} s, "
          f"{sum(own) / n:.3f} s per route (min {min(own):.3f}, max {max(own):.3f})")  # fmt: skip
    w1 = walls[1]
    print(f"simdoctor run, 1 slot: {w1:.2f} s end to end, {w1 / n:.3f} s per route")
    print(f"  orchestration overhead per route: {(w1 - sum(own)) / n:.3f} s with simdoctor's start-up and report "
          f"amortized, {(w1 - fixed - sum(own)) / n:.3f} s without them ({fixed:.2f} s, measured alone)   "
          "goal < 1 s")  # fmt: skip
    for slots in SLOTS:
        ratio = spans[1] / spans[slots]
        print(f"  {slots} slot(s): routes span {spans[slots]:.2f} s ({n / spans[slots]:.3f} routes/s), "
              f"throughput x{ratio:.2f} of 1 slot (goal >= {0.9 * slots:.1f}); end to end {walls[slots]:.2f} s, "
              f"x{walls[1] / walls[slots]:.2f}")  # fmt: skip
    print(json.dumps({"routes": n, "drive_s": args.drive_s, "direct_s": own, "walls_s": walls, "spans_s": spans,
                      "fixed_s": fixed}))  # fmt: skip


if __name__ == "__main__":
    main()
