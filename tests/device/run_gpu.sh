#!/usr/bin/env bash
# `simdoctor run`'s GPU side on a real GPU: the lent H100 machine (device tool), run by the lead from the repo
# root, as root, with .gl/ carried (Debian's Vulkan/EGL loader .debs, as for tests/device/carla_gpu.sh) and .whl/
# (the carla client and the evaluator's imports for the device's python3, as multi_gpu.sh's header makes them):
#
#   bash tests/device/run_gpu.sh            (writes what it saw to $OUT; about 1-2 minutes)
#
# What it proves, self-checking (exit 1 when any proof fails):
#   1. the peak sampler (simdoctor/run/sampling.py) attributes to a process tree the GPU memory NVML gives its
#      processes, a grandchild in its own session included (as the evaluator's CARLA is), run as the user;
#   2. `simdoctor run --dry-run --gpus 0` plans slots whose --gpu-rank is the Vulkan index of GPU 0's UUID;
#   3. when python3 can import the carla client (the stand-in evaluator needs it): `simdoctor run --gpus 0
#      --workers-per-gpu 2` as the user drives two stand-in routes whose stand-in CARLA (real Vulkan
#      enumeration, 1 GiB held on the GPU with torch) runs with that -graphicsadapter, the report shows each
#      route's peak GPU memory >= 1 GiB, and no CARLA process is left. Without the client, 3 is skipped (said).
set -u
source tests/device/common.sh
device_prologue run_gpu

echo "== a stand-in stack"
PYTHONPATH="$WORK/code" python3 - "$HOME_DIR" "$PYTHON" "$WORK/code" <<'EOF'
import sys
from pathlib import Path
from simdoctor.config.settings import load_settings
from tests import builders
home, python, code = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
recipe = load_settings(env={"HOME": str(home)}).recipe
builders.carla_root(home / "carla", recipe)
builders.standin_server(home / "carla", recipe, python, code, {"vulkan": "real", "gpu_memory_mib": 1024})
work = builders.bench2drive_standin(home / "simlingo")
builders.base_model(home, work, recipe)  # the stand-in agent loads it by hub name, from the user's HF cache
builders.routes_xml(home / "routes.xml", [
    {"id": str(i), "town": "Town01", "type": "Accident", "attrs": {"standin_sim_s": "1", "standin_wall_s": "4"}}
    for i in (1, 2)])
(home / "state").mkdir()
EOF
chown -R "$USER_NAME:$USER_NAME" "$HOME_DIR"
chmod -R a+rX "$WORK/code"

echo "== 1. the peak sampler on a tree holding GPU memory"
as_user "$PYTHON" - >"$OUT/sampler.json" <<'EOF'
import json, subprocess, sys, time
from simdoctor.run.sampling import PeakSampler
child = ("import os, time, torch\n"
         "if os.fork() == 0:\n"
         "    os.setsid(); x = torch.empty(1024 * 2**20, dtype=torch.uint8, device='cuda:0'); time.sleep(4); os._exit(0)\n"
         "time.sleep(0.5)\n")
with PeakSampler(0.5) as sampler:
    parent = subprocess.Popen([sys.executable, "-c", child])
    sampler.watch("t", parent.pid)
    parent.wait()
    time.sleep(4)
    peaks = sampler.release("t")
print(json.dumps({"gpu_bytes": peaks.gpu_bytes, "ram_bytes": peaks.ram_bytes}))
EOF
cat "$OUT/sampler.json"

echo "== 2. the plan on GPU 0"
as_user "$PYTHON" -m simdoctor run --dry-run --json --gpus 0 --workers-per-gpu 2 --routes "$HOME_DIR/routes.xml" \
  --out "$HOME_DIR/out" >"$OUT/plan.json"
echo "exit $?"
as_user "$PYTHON" "$WORK/code/tests/device/mapping.py" >"$OUT/mapping.json"
cat "$OUT/mapping.json"

echo "== 3. simdoctor run on GPU 0, two workers"
AGENT_PY=$(agent_python)
echo "agent interpreter: ${AGENT_PY:-none}"
if [ -n "$AGENT_PY" ]; then
  as_user "$PYTHON" -m simdoctor run --json --gpus 0 --workers-per-gpu 2 --route-timeout 300 \
    --routes "$HOME_DIR/routes.xml" --out "$HOME_DIR/out" >"$OUT/report.json"
  echo "exit $?" | tee "$OUT/run.exit"
  cp -r "$HOME_DIR/out/tasks" "$HOME_DIR/out/logs" "$OUT/" 2>/dev/null
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv | tee "$OUT/nvidia-smi.txt"
  LEFT=$(live_carla)
  [ -z "$LEFT" ] || fail "CARLA processes left after the run: $LEFT"
else
  skipped "3: no agent interpreter with the carla client and the evaluator's imports (see agent_python)"
fi

echo "== verdict"
PYTHONPATH=tests/device python3 - "$OUT" <<'EOF' || FAIL=1
import os, sys
from verdict import finish, load, need
out = sys.argv[1]
sampler = load(f"{out}/sampler.json")
need((sampler["gpu_bytes"] or 0) >= 2**30, f"sampler: peak GPU {sampler['gpu_bytes']} bytes >= 1 GiB")
adapter = load(f"{out}/mapping.json")["adapter_map"].get("0")
plan = load(f"{out}/plan.json")
ranks = {s["graphics_adapter"] for s in plan["plan"]["slots"]}
need(ranks == {adapter}, f"plan: --gpu-rank {ranks} is GPU 0's Vulkan index {adapter}")
argv = plan["launches"][0]["argv"]
need(f"--gpu-rank={adapter}" in argv and plan["launches"][0]["env"]["CUDA_VISIBLE_DEVICES"] == "0",
     "each launch carries --gpu-rank and CUDA_VISIBLE_DEVICES=0")
if os.path.exists(f"{out}/report.json"):
    need(open(f"{out}/run.exit").read().strip() == "exit 0", "run: exit 0")
    report = load(f"{out}/report.json")
    peaks = {r["route_id"]: (r["profile"] or {}).get("peak_gpu_bytes") for r in report["rows"]}
    need(all((p or 0) >= 2**30 for p in peaks.values()), f"run: each route's peak GPU memory >= 1 GiB: {peaks}")
    need(report["statuses"] == {"Perfect": 2}, f"run: statuses {report['statuses']}")
    logs = "".join(open(f"{out}/logs/{n}").read() for n in os.listdir(f"{out}/logs"))
    need(f"-graphicsadapter={adapter}" in logs, "run: CARLA was launched with that -graphicsadapter")
finish()
EOF
proven
rm -rf "$WORK"
exit "$FAIL"
