#!/usr/bin/env bash
# Several GPUs of one machine (issue 14): the lent nvidia-h200-x2/-x4/-x8 machines (device tool), run by the
# lead from the repo root, as root, with .gl/ carried (Debian's Vulkan/EGL loader .debs, as for
# tests/device/carla_gpu.sh) and .whl/ holding the carla client wheel for the machine's python3 and, in
# .whl/eval/, the wheels of what the stand-in evaluator and agent import as the real ones do and the device's
# python3 lacks (see agent_python in common.sh; without the client, proofs 3 and 4 are skipped, and said so).
# Made once here, for the device's python3.12:
#   pip download carla==0.9.16 --python-version 3.12 --only-binary=:all: --no-deps \
#     --platform manylinux_2_31_x86_64 -d .whl
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#     --platform any -d .whl/eval pexpect ptyprocess transforms3d ephem shapely xmlschema elementpath \
#     py_trees==0.8.3 pydot pyparsing tabulate
#   pip download --no-deps -d /tmp/sdist dictor==0.1.12 simple-watchdog-timer==0.1.1
#   pip wheel --no-deps -w .whl/eval /tmp/sdist/*.tar.gz
#   (about 39 MiB in all: carry [".gl", ".whl"])
#
#   bash tests/device/multi_gpu.sh          (writes what it saw to $OUT; about 2-4 minutes on 8 GPUs)
#
# What it proves, self-checking (prints NOT PROVEN with each failed proof and exits 1; else PROVEN EXCEPT N
# SKIPPED when this machine could not give some proofs, ALL PROVEN when it gave them all):
#   1. check: every GPU's NVML UUID is a Vulkan device's UUID; `simdoctor check --only gpu,vulkan --json`
#      shows each GPU's -graphicsadapter, the same with CUDA_DEVICE_ORDER=PCI_BUS_ID and without; and CUDA
#      under PCI_BUS_ID numbers the GPUs as NVML does (what `run`'s CUDA_VISIBLE_DEVICES=<NVML index> needs);
#   2. `simdoctor carla start --gpu N` for every N, as the non-root user, all running at once: the stand-in
#      server (real Vulkan enumeration, 1 GiB held with torch on the device -graphicsadapter names) is on
#      GPU N, by NVML (simdoctor's rendering proof and an independent NVML poll), on no other GPU, and
#      `carla status` shows it on GPU N;
#   3. `simdoctor run --gpus all --workers-per-gpu 2` with 2 stand-in routes per GPU: every slot's stand-in
#      CARLA holds memory on its slot's GPU and no other; each slot's CUDA_VISIBLE_DEVICES and --gpu-rank
#      name the same GPU (plan, and the running processes' environment and command line); each route's
#      peak GPU memory in the report is that CARLA's memory on that GPU; nothing is left running;
#   4. `simdoctor run --gpus 1,0`: slot 0 is GPU 1, slot 1 is GPU 0, each with its own Vulkan index, and
#      each route's CARLA runs there (skipped on one GPU);
#   5. Slurm: the GPU a node gives an array task (SLURM_JOB_GPUS/CUDA_VISIBLE_DEVICES as a global id,
#      SLURM_STEP_GPUS, or a UUID) maps through this machine's real NVML and Vulkan to that GPU's Vulkan
#      index, and the task's evaluator gets the matching CUDA_VISIBLE_DEVICES and --gpu-rank
#      (tests/device/slurm_map.py drives simdoctor/run/slurm/node.py's mapping with those variables; no slurmd).
# On a one-GPU machine, what needs several GPUs prints "skip one GPU: ..."; the rest is proven for GPU 0.
set -u
source tests/device/common.sh
device_prologue multi_gpu
NGPU=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
echo "GPUs: $NGPU"
AGENT_PY=$(agent_python)
echo "agent interpreter: ${AGENT_PY:-none}"

echo "== a stand-in stack"
PYTHONPATH="$WORK/code" python3 - "$HOME_DIR" "$PYTHON" "$WORK/code" "$NGPU" <<'EOF'
import sys
from pathlib import Path
from simdoctor.config.settings import load_settings
from tests import builders
home, python, code, ngpu = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
recipe = load_settings(env={"HOME": str(home)}).recipe
builders.carla_root(home / "carla", recipe)
builders.standin_server(home / "carla", recipe, python, code, {"vulkan": "real", "gpu_memory_mib": 1024})
work = builders.bench2drive_standin(home / "simlingo")
builders.base_model(home, work, recipe)  # the stand-in agent loads it by hub name, from the user's HF cache
for name, first, count in (("all", 100, 2 * ngpu), ("subset", 200, 2)):
    builders.routes_xml(home / f"routes-{name}.xml", [
        builders.standin_route(str(first + i), standin_sim_s="1", standin_wall_s="4") for i in range(count)])
(home / "state").mkdir()
EOF
chown -R "$USER_NAME:$USER_NAME" "$HOME_DIR"
chmod -R a+rX "$WORK/code"
POLL=""
poll_start() { python3 "$WORK/code/tests/device/gpu_poll.py" "$OUT/$1" & POLL=$!; sleep 0.5; }
poll_stop() { kill -TERM "$POLL"; wait "$POLL"; POLL=""; }

echo "== 1. NVML UUID -> Vulkan index, as the user sees it; check with and without CUDA_DEVICE_ORDER"
as_user "$PYTHON" "$WORK/code/tests/device/mapping.py" >"$OUT/mapping.json"
cat "$OUT/mapping.json"
for order in default PCI_BUS_ID FASTEST_FIRST; do
  set -- ; [ "$order" = default ] || set -- CUDA_DEVICE_ORDER="$order"
  as_user env "$@" "$PYTHON" -c 'import json, torch
print(json.dumps([str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]))' \
    >"$OUT/cuda-$order.json"
  echo "CUDA ($order): $(cat "$OUT/cuda-$order.json")"
done
for order in default PCI_BUS_ID; do
  set -- ; [ "$order" = default ] || set -- CUDA_DEVICE_ORDER="$order"
  as_user env "$@" "$PYTHON" -m simdoctor check --only gpu,vulkan --json >"$OUT/check-$order.json"
done
as_user "$PYTHON" -m simdoctor check --only gpu,vulkan -v | tail -n 30

echo "== 2. carla start --gpu N for each of the $NGPU GPU(s), as $USER_NAME"
poll_start carla-poll.json
for n in $(seq 0 $((NGPU - 1))); do
  as_user "$PYTHON" -m simdoctor carla start --gpu "$n" --port $((2000 + 10 * n)) --json >"$OUT/start-$n.json"
  echo "GPU $n: exit $? $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("summary"))' "$OUT/start-$n.json")"
done
as_user "$PYTHON" -m simdoctor carla status --json >"$OUT/status.json"
as_user "$PYTHON" -m simdoctor carla status
nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv | tee "$OUT/nvidia-smi-carla.txt"
poll_stop
as_user "$PYTHON" -m simdoctor carla stop --all --json >"$OUT/stop.json"
sleep 1
LEFT=$(live_carla)
[ -z "$LEFT" ] || fail "carla: processes left after stop --all: $LEFT"

run_routes() {  # NAME ROUTES-FILE OPTIONS...: a dry run, then the run, with NVML polled meanwhile
  local name=$1 routes=$2; shift 2
  as_user "$PYTHON" -m simdoctor run --dry-run --json "$@" --routes "$routes" --out "$HOME_DIR/out-$name" \
    >"$OUT/plan-$name.json"
  echo "dry run: exit $?"
  poll_start "run-poll-$name.json"
  as_user "$PYTHON" -m simdoctor run --json "$@" --route-timeout 300 --routes "$routes" --out "$HOME_DIR/out-$name" \
    >"$OUT/report-$name.json"
  echo "exit $?" | tee "$OUT/run-$name.exit"
  poll_stop
  mkdir -p "$OUT/run-$name"
  cp -r "$HOME_DIR/out-$name/tasks" "$HOME_DIR/out-$name/logs" "$OUT/run-$name/" 2>/dev/null
  LEFT=$(live_carla)
  [ -z "$LEFT" ] || fail "run $name: CARLA processes left after the run: $LEFT"
}

echo "== 3. run --gpus all --workers-per-gpu 2 ($((2 * NGPU)) stand-in routes)"
if [ -n "$AGENT_PY" ]; then
  run_routes all "$HOME_DIR/routes-all.xml" --gpus all --workers-per-gpu 2
else
  echo "skip: no agent interpreter with the carla client (the stand-in evaluator needs it; counted in the verdict)"
fi

echo "== 4. run --gpus 1,0"
if [ "$NGPU" -lt 2 ]; then
  echo "skip: one GPU (counted in the verdict)"
elif [ -n "$AGENT_PY" ]; then
  run_routes subset "$HOME_DIR/routes-subset.xml" --gpus 1,0 --workers-per-gpu 1
else
  echo "skip: no agent interpreter with the carla client (counted in the verdict)"
fi

echo "== 5. the GPU Slurm gives a task, through this machine's NVML and Vulkan"
as_user "$PYTHON" "$WORK/code/tests/device/slurm_map.py" "$HOME_DIR/routes-subset.xml" "$HOME_DIR/out-slurm" \
  >"$OUT/slurm-map.json"
python3 -c 'import json,sys
for c in json.load(open(sys.argv[1]))["cases"]: print(c["case"], c["env"], "->", c.get("how") or c.get("error"))' \
  "$OUT/slurm-map.json"

echo "== verdict"
PYTHONPATH=tests/device python3 - "$OUT" "$NGPU" <<'EOF' || FAIL=1
import os, re, sys
from verdict import finish, load, need, skip
out, ngpu = sys.argv[1], int(sys.argv[2])
GIB = 2**30


def bare(uuid):
    uuid = str(uuid or "").lower()
    return uuid[4:] if uuid.startswith("gpu-") else uuid


def skipped(what):
    skip(f"one GPU: {what}")


mapping = load(f"{out}/mapping.json")
gpus = {g["index"]: g for g in mapping["gpus"]}
amap = {int(k): v for k, v in mapping["adapter_map"].items()}
vk = {d["index"]: d for d in mapping["vulkan"]}
uuid_of = {i: g["uuid"] for i, g in gpus.items()}
need(len(gpus) == ngpu, f"NVML lists {len(gpus)} GPU(s), nvidia-smi {ngpu}")

print("-- 1. check")
for i, g in gpus.items():
    a = amap.get(i)
    need(a is not None and bare(vk[a]["uuid"]) == bare(g["uuid"]),
         f"GPU {i} {g['uuid']} is Vulkan device {a} ({vk.get(a, {}).get('uuid')})")
details = {}
for order in ("default", "PCI_BUS_ID"):
    result = next(r for r in load(f"{out}/check-{order}.json")["results"] if r["id"] == "vulkan.adapter_map")
    details[order] = result["details"]
    need(result["status"] == "ok", f"check ({order} CUDA order): vulkan.adapter_map {result['status']}: {result['summary']}")
    for i, g in gpus.items():
        need(f"GPU {i} ({g['uuid']}) -> -graphicsadapter={amap.get(i)}" in result["details"],
             f"check ({order}) shows GPU {i} -> -graphicsadapter={amap.get(i)}")
need(details["default"] == details["PCI_BUS_ID"], "check's mapping is the same with CUDA_DEVICE_ORDER=PCI_BUS_ID")
cuda_pci = [bare(u) for u in load(f"{out}/cuda-PCI_BUS_ID.json")]
need(cuda_pci == [bare(uuid_of[i]) for i in sorted(gpus)],
     "CUDA with CUDA_DEVICE_ORDER=PCI_BUS_ID numbers the GPUs as NVML does (run's CUDA_VISIBLE_DEVICES=<NVML index>)")
cuda_default = [bare(u) for u in load(f"{out}/cuda-default.json")]
print(f"note: CUDA's default order {'equals' if cuda_default == cuda_pci else 'differs from'} NVML's here")


def carla_pids(poll):
    """pid -> its GPUs (UUID -> peak bytes) and environment, for the stand-in servers NVML listed."""
    return {int(pid): rec for pid, rec in poll.items() if any("CarlaUE4" in a for a in rec.get("argv", [])[:2])}


print("-- 2. carla start --gpu N")
poll = carla_pids(load(f"{out}/carla-poll.json"))
status = load(f"{out}/status.json")
for n in sorted(gpus):
    start = load(f"{out}/start-{n}.json")
    rec = start.get("record") or {}
    need(start.get("status") == "ready", f"GPU {n}: start ready: {start.get('summary')}")
    need(rec.get("adapter") == amap.get(n) and f"-graphicsadapter={amap.get(n)}" in rec.get("command", []),
         f"GPU {n}: -graphicsadapter={rec.get('adapter')} is GPU {n}'s Vulkan index {amap.get(n)}")
    r = start.get("rendering") or {}
    uses = r.get("nvml", [])
    need(r.get("verdict") == "gpu" and uses and all(u["gpu_index"] == n and (u["used_bytes"] or 0) >= GIB for u in uses),
         f"GPU {n}: simdoctor's rendering proof: {r.get('summary')}; NVML uses {[(u['gpu_index'], u['used_bytes']) for u in uses]}")
    pids = {u["pid"] for u in uses}
    seen = {uuid for pid in pids for uuid in poll.get(pid, {}).get("gpus", {})}
    need(seen == {uuid_of[n]}, f"GPU {n}: the NVML poll sees its server's memory on {sorted(seen)} only ({uuid_of[n]})")
    mine = [s for s in status["servers"] if s["started_by_simdoctor"] and s["gpu_index"] == n]
    need(len(mine) == 1 and mine[0]["alive"] and mine[0]["gpu"] and all(u["gpu_index"] == n for u in mine[0]["gpu"]),
         f"GPU {n}: carla status shows it alive with its memory on GPU {n}: {[(s['port'], s['gpu']) for s in mine]}")
if ngpu < 2:
    skipped("carla start --gpu N for N > 0")
stop = load(f"{out}/stop.json")
need(bool(stop["stopped"]) and all(s["clean"] for s in stop["stopped"]), "carla stop --all: every server stopped clean")

cuda_by_index = {str(i): u for i, u in enumerate(cuda_pci)}


def check_run(name, want_gpus):
    """The plan's slots and launches, then each route's CARLA as it ran (its log line, NVML, /proc)."""
    plan = load(f"{out}/plan-{name}.json")
    slots = plan["plan"]["slots"]
    need([s["gpu"] for s in slots] == want_gpus, f"{name}: slots on GPUs {[s['gpu'] for s in slots]}, want {want_gpus}")
    for s in slots:
        need(s["graphics_adapter"] == amap.get(s["gpu"]) and s["gpu_uuid"] == uuid_of.get(s["gpu"]),
             f"{name}: slot {s['index']} GPU {s['gpu']} -> --gpu-rank {s['graphics_adapter']} (map {amap.get(s['gpu'])})")
    for launch in plan["launches"]:
        slot = slots[launch["slot"]]
        env = launch["env"]
        rank = next((a.split("=", 1)[1] for a in launch["argv"] if a.startswith("--gpu-rank=")), None)
        cvd = env.get("CUDA_VISIBLE_DEVICES")
        need(env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID" and cvd == str(slot["gpu"]) and rank == str(slot["graphics_adapter"])
             and cuda_by_index.get(cvd) == bare(vk[int(rank)]["uuid"]),
             f"{name}: route {launch['route_id']} on slot {slot['index']}: CUDA_VISIBLE_DEVICES={cvd} and --gpu-rank={rank} are one GPU")
    need(open(f"{out}/run-{name}.exit").read().strip() == "exit 0", f"{name}: run exit 0")
    report = load(f"{out}/report-{name}.json")
    need(report["statuses"] == {"Perfect": len(plan["plan"]["tasks"])}, f"{name}: statuses {report['statuses']}")
    poll = carla_pids(load(f"{out}/run-poll-{name}.json"))
    per_gpu = {}
    for row in report["rows"]:
        rid = row["route_id"]
        task = load(f"{out}/run-{name}/tasks/{rid}.json")
        slot = slots[task["attempts"][-1]["slot"]]
        log = open(f"{out}/run-{name}/logs/{rid}.log").read()
        held = re.findall(r"holding \d+ MiB on (GPU-[0-9a-f-]+) \(pid (\d+)\)", log)
        if not held:
            need(False, f"{name}: route {rid}: its log has no stand-in CARLA holding GPU memory")
            continue
        uuid, pid = held[-1][0], int(held[-1][1])
        seen = poll.get(pid, {})
        on = seen.get("gpus", {})
        argv = seen.get("argv", [])
        need(bare(uuid) == bare(slot["gpu_uuid"]) and set(on) == {slot["gpu_uuid"]},
             f"{name}: route {rid} (slot {slot['index']}, GPU {slot['gpu']}): its CARLA (pid {pid}) holds memory on {sorted(on)} only")
        need(seen.get("CUDA_VISIBLE_DEVICES") == str(slot["gpu"]) and f"-graphicsadapter={slot['graphics_adapter']}" in argv,
             f"{name}: route {rid}: that CARLA ran with CUDA_VISIBLE_DEVICES={seen.get('CUDA_VISIBLE_DEVICES')} and "
             f"{[a for a in argv if a.startswith('-graphicsadapter')]}")
        peak = (row.get("profile") or {}).get("peak_gpu_bytes") or 0
        there = on.get(slot["gpu_uuid"], 0)
        need(GIB <= peak <= there * 1.05 + 64 * 2**20,
             f"{name}: route {rid}: peak GPU memory {peak / GIB:.2f} GiB is its CARLA's {there / GIB:.2f} GiB on GPU {slot['gpu']}")
        per_gpu.setdefault(slot["gpu"], set()).add(pid)
    return per_gpu


print("-- 3. run --gpus all --workers-per-gpu 2")
if os.path.exists(f"{out}/report-all.json"):
    per_gpu = check_run("all", sorted(gpus) * 2)
    need(all(len(per_gpu.get(i, ())) == 2 for i in gpus), f"all: two CARLAs on each GPU: { {i: sorted(p) for i, p in per_gpu.items()} }")
    if ngpu < 2:
        skipped("slots on different GPUs")
else:
    skip("no run (no agent interpreter with the carla client)")

print("-- 4. run --gpus 1,0")
if ngpu < 2:
    skipped("run --gpus 1,0")
elif os.path.exists(f"{out}/report-subset.json"):
    check_run("subset", [1, 0])
else:
    skip("no run (no agent interpreter with the carla client)")

print("-- 5. Slurm's GPU id on this node")
cases = load(f"{out}/slurm-map.json")["cases"]
need(len(cases) == 3 * ngpu, f"{len(cases)} Slurm cases for {ngpu} GPU(s)")
for c in cases:
    argv = (c.get("launch") or {}).get("argv", [])
    env = (c.get("launch") or {}).get("env", {})
    i = c["expected_index"]
    need(c.get("index") == i and c.get("adapter") == amap.get(i) and f"--gpu-rank={amap.get(i)}" in argv
         and env.get("CUDA_VISIBLE_DEVICES") == str(i) and cuda_by_index.get(str(i)) == bare(c["expected_uuid"]),
         f"slurm {c['case']} {c['env']}: {c.get('how') or c.get('error')}; launch CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')}")
if ngpu < 2:
    skipped("Slurm ids of GPUs other than 0 (NVML then lists the task's GPU alone, as in a constrained job)")
finish()
EOF
as_user "$PYTHON" -m simdoctor carla stop --all --orphans >/dev/null 2>&1  # if a step above failed midway
[ -z "$POLL" ] || kill -TERM "$POLL"
proven
rm -rf "$WORK"
exit "$FAIL"
