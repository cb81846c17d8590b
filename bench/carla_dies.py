"""How long a CARLA that dies at start keeps an evaluation attempt busy: simdoctor against upstream's evaluator.

One route, and a stand-in CARLA that dies at once as CARLA does without a usable Vulkan device (`Cannot find a
compatible Vulkan device or driver.`), writing the moment it died. In the same run it prints:
- simdoctor: `simdoctor run --retries 0` with the stand-in evaluator at its real pace (60 s sleep, 20 client
  attempts of --timeout 600 s, 40 traffic-manager attempts; STANDIN_EVALUATOR_TIME_SCALE=1): the time from
  CARLA's death to the end of the attempt (its task record). simdoctor does not wait for the evaluator's
  waits, so this is the real figure. Goal: under 10 s (5 s).
- upstream (the peer): the same evaluator command run alone, its waits scaled by --scale: the time from CARLA's
  death to the evaluator's exit (with its UnboundLocalError), and that time / scale, extrapolated to the real
  waits; beside it upstream's own sum, 60 + 20 x (600 + 5) + 40 x 5 s (a lower bound: how long a real
  get_trafficmanager blocks on a dead server was not measured, the stand-in fails it at once).

Run as root from the repo root after `bash tests/setup.sh` (simdoctor, the evaluator and CARLA run as the
non-root test user, as CARLA must): `.venv/bin/python bench/carla_dies.py [--scale 0.001]`
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/conftest.py imports builders as pytest does

from bench.run_overhead import stop_leftovers  # noqa: E402
from simdoctor.config.settings import load_settings  # noqa: E402
from simdoctor.doctor.probes.ports import worker_ports  # noqa: E402
from simdoctor.run import results, runplan  # noqa: E402
from tests import builders  # noqa: E402
from tests.conftest import make_stack, new_user_runtime  # noqa: E402

UPSTREAM_S = 60 + 20 * (600 + 5) + 40 * 5  # leaderboard_evaluator.py _setup_simulation, --timeout 600


def died_at(path: Path) -> float:
    return float(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.001, help="the peer's waits, times this")
    args = parser.parse_args()
    try:
        stack = make_stack(new_user_runtime("simdoctor-bench-"))
    except RuntimeError as exc:
        sys.exit(str(exc))
    death = stack.home / "died"
    builders.set_behaviour(stack.carla_root, {"fail": "no_device", "death_file": str(death)})
    source = builders.routes_xml(stack.home / "routes.xml", [builders.standin_route("1")])
    stack.rt.chown_tree(stack.home)
    try:
        env = stack.env(STANDIN_EVALUATOR_TIME_SCALE="1")
        out = stack.home / "out"
        done = subprocess.run(stack.rt.simdoctor("run", "--routes", str(source), "--out", str(out), "--gpus", "none",
                                                 "--retries", "0", "--json"),
                              env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        attempt = results.read_task(out / "tasks" / "1.json").last
        ours = attempt.ended - died_at(death)
        death.unlink()

        env = stack.env(STANDIN_EVALUATOR_TIME_SCALE=f"{args.scale:g}")
        settings = load_settings(env=env)
        slots, _ = runplan.plan_slots(settings, (), 1, None, [])
        plan, texts = runplan.build(settings, runplan.Options(routes=source, out=stack.home / "peer"), slots)
        runplan.prepare(plan, texts, settings)
        for name in ("res", "logs", "steps", "viz"):
            (stack.home / "peer" / name).mkdir(exist_ok=True)
        stack.rt.chown_tree(stack.home / "peer")
        task = plan.tasks[0]
        # Ports away from the 20000s other stand-in stacks of this machine use: a live server there would answer.
        ports = worker_ports(settings.recipe.carla, 1, 40000 + os.getpid() % 20000, frozenset())[0]
        run = runplan.launch(plan, task, dataclasses.replace(slots[0], ports=ports))
        with open(task.log_file, "w") as log:
            code = subprocess.run(stack.rt.command(run.argv), env={**env, **run.env}, cwd=run.cwd, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True, timeout=600).returncode  # fmt: skip
        theirs = time.time() - died_at(death)
        peer_error = results.last_exception(Path(task.log_file).read_text())
    finally:
        stop_leftovers(stack)
    print("CARLA dies at start (no Vulkan device); time from its death to the end of the attempt:")
    print(f"  simdoctor run: {ours:.2f} s (evaluator at its real pace; exit {done.returncode}; goal < 10 s, 5 s)")
    print(f"    reason: {attempt.reason}")
    print(f"  upstream evaluator alone, waits x{args.scale:g}: {theirs:.2f} s -> {theirs / args.scale:.0f} s "
          f"({theirs / args.scale / 3600:.2f} h) at the real waits; upstream's sum {UPSTREAM_S} s "
          f"({UPSTREAM_S / 3600:.2f} h); exit {code}: {peer_error}")  # fmt: skip
    print(f"  simdoctor ends it {theirs / args.scale / ours:.0f}x sooner")
    print(json.dumps({"simdoctor_s": ours, "upstream_scaled_s": theirs, "scale": args.scale,
                      "upstream_extrapolated_s": theirs / args.scale, "upstream_sum_s": UPSTREAM_S}))  # fmt: skip


if __name__ == "__main__":
    main()
