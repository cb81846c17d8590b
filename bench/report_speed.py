"""Time (wall and CPU) and peak memory of `simdoctor report` on a run folder of 2,200 routes with their step
files, before and after the step summaries (issue 13, item 16), measured in the same run on the same folder.

    python bench/report_speed.py [--routes 2200] [--steps 1800] [--runs 3] [--peer-rev REV] [--keep DIR]

Three timings, each `python -m simdoctor report OUT --json` in a fresh process, its CPU time and peak RSS from
wait4 (CPU time is what it takes on a core of its own; the wall time also counts waiting for one):
- peer: the code at --peer-rev (git archive of this repository; default: main before this change) on the folder
  as that code writes it (task records without step summaries: it reads every step file);
- this code on that same folder (an older folder: it reads the step files, one route at a time);
- this code on the folder as this code's run leaves it (each task record holds its attempt's step summary).
Goal: under 1 s with flat memory for 2,200 routes. The peer's percentiles are exact; this code's over all routes
come from merged histograms: the script prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_REV = "ecf1f31"  # main just before the step summaries landed
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def build_folder(out: Path, count: int, steps: int) -> None:
    """A finished run's folder: route files, results, task records (no summaries yet), step files."""
    import builders

    from simdoctor.config.settings import load_settings
    from simdoctor.run import results, routes
    from simdoctor.run.outdir import Layout

    layout = Layout(out, load_settings(env={"HOME": str(out.parent)}).recipe.run)
    towns = builders.BENCH2DRIVE_TOWNS
    specs = [{"id": str(1000 + i), "town": towns[i % len(towns)], "type": "Accident"} for i in range(count)]
    source = builders.routes_xml(out.parent / "routes.xml", specs)
    routes.write_route_files(routes.read_routes(source), layout.routes_dir)
    template = builders.results_file(out.parent / "template.json", "0", "Town01", "Accident").read_text()
    layout.steps_file("x").parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(13)
    for spec in specs:
        path = layout.results_file(spec["id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.replace("RouteScenario_0_rep0", f"RouteScenario_{spec['id']}_rep0"))
        attempt = results.Attempt(1, 0, {"rpc": 20000}, 1.0, 2.0, 0, kind=results.Kind.RESULT, status="Perfect",
                                  reason="Perfect", peak_gpu_bytes=12 << 30, peak_ram_bytes=20 << 30)  # fmt: skip
        results.write_task(layout.task_file(spec["id"]), results.TaskRecord(spec["id"], [attempt], final="result"))
        lines = [json.dumps({"kind": "setup", "setup_s": 30.0})]
        for k in range(steps):
            latency = rng.lognormvariate(-2.5, 0.4)
            lines.append(json.dumps({"kind": "step", "step": k, "run_step_s": latency, "sim_time": 0.05 * (k + 1),
                                     "wall": 1000.0 + 0.5 * k}))  # fmt: skip
        layout.steps_file(spec["id"]).write_text("\n".join(lines) + "\n")


def summarise_folder(src: Path, dest: Path) -> None:
    """The same folder as this code's run leaves it: each task record with its attempt's step summary."""
    import dataclasses

    from simdoctor.config.settings import load_settings
    from simdoctor.run import profiling, results
    from simdoctor.run.outdir import Layout

    shutil.copytree(src, dest)
    layout = Layout(dest, load_settings(env={"HOME": str(dest.parent)}).recipe.run)
    for path in layout.tasks_dir.glob("*.json"):
        record = results.read_task(path)
        steps = profiling.summarize(layout.steps_file(record.route_id))
        record = dataclasses.replace(record, attempts=[dataclasses.replace(record.attempts[-1], steps=steps)])
        results.write_task(path, record)


def timed(code: Path, out: Path) -> tuple[float, float, int, dict]:
    """Wall seconds, CPU seconds, peak RSS bytes and the JSON of one `report --json` by the code under `code`.
    CPU seconds (user + system, from wait4) are what the run takes on a core of its own: the wall time
    also counts waiting for a core on a machine that runs other work."""
    env = {**os.environ, "PYTHONPATH": str(code), "HOME": str(out.parent), "NO_COLOR": "1"}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "simdoctor", "report", str(out), "--json"], env=env,
                                stdout=stdout, stderr=subprocess.PIPE, cwd=code)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        text = stdout.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"report by {code} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, json.loads(text)


def measure(label: str, code: Path, out: Path, runs: int) -> dict:
    samples = [timed(code, out) for _ in range(runs)]
    seconds = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    peak = max(s[2] for s in samples)
    print(f"{label:<46} wall median {seconds:6.3f} s ({', '.join(f'{s[0]:.2f}' for s in samples)}), CPU median "
          f"{cpu:6.3f} s ({', '.join(f'{s[1]:.2f}' for s in samples)}); peak RSS {peak / 2**20:6.1f} MiB")  # fmt: skip
    return {"seconds": seconds, "cpu": cpu, "peak": peak, "speed": samples[0][3]["speed"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=2200)
    parser.add_argument("--steps", type=int, default=1800, help="steps per route")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-rev", default=PEER_REV, help="git revision to compare with ('' for none)")
    parser.add_argument("--keep", type=Path, help="build the folders here and keep them (reused when there)")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="report-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        began = time.perf_counter()
        old, new = base / "older" / "out", base / "summarised" / "out"
        if new.is_dir():
            print(f"reusing the folders under {base} (--keep)")
        else:
            old.parent.mkdir(exist_ok=True)
            build_folder(old, args.routes, args.steps)
            summarise_folder(old, new)
            print(
                f"built {args.routes} routes x {args.steps} steps in {time.perf_counter() - began:.1f} s under {base}"
            )
        found = {}
        if args.peer_rev:
            peer = base / "peer"
            peer.mkdir(exist_ok=True)
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.peer_rev, "simdoctor", "recipes"],
                                     capture_output=True, check=True).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(peer)], input=archive, check=True)
            found["peer"] = measure(f"peer ({args.peer_rev}), step files", peer, old, args.runs)
        found["older"] = measure("this code, an older folder (step files)", REPO, old, args.runs)
        found["new"] = measure("this code, step summaries in the task records", REPO, new, args.runs)
        if "peer" in found:  # the peer's percentiles are exact, over every step
            exact, merged = found["peer"]["speed"], found["new"]["speed"]
            for key in ("step_p50_s", "step_p95_s"):
                print(f"{key}: {merged[key]:.5f} from merged histograms, {exact[key]:.5f} exact "
                      f"(differ by {abs(merged[key] - exact[key]) / exact[key] * 100:.2f} %)")  # fmt: skip
        goal = found["new"]["cpu"] < 1.0
        print(f"goal: report on {args.routes} routes with steps under 1 s of CPU -> {'met' if goal else 'NOT met'}")
        return 0 if goal else 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
