#!/usr/bin/env bash
# `simdoctor carla` on a real GPU: the lent H100 machine (device tool), run by the lead from the repo root,
# as root, with .gl/ carried (Debian's Vulkan/EGL loader .debs, as for tests/data/h100/collect.sh):
#
#   bash tests/device/carla_gpu.sh            (writes what it saw to $OUT; about 1-2 minutes)
#
# What it proves, self-checking (exit 1 when any proof fails):
#   1. the Vulkan index simdoctor passes as -graphicsadapter is the one Vulkan gives the GPU's real
#      NVML UUID (mapping.json, and `simdoctor check --only gpu,vulkan`);
#   2. `simdoctor carla start --gpu 0 --json`, run as a non-root user, starts a stand-in server (the
#      real launcher script; a shipping binary that enumerates Vulkan for real, picks the device
#      -graphicsadapter names, and allocates GPU memory with torch on that very device, as CARLA's
#      renderer would) and attributes it to GPU 0 through NVML with memory in use (start.json);
#   3. `status` shows it with its GPU memory; gpu.stale_carla calls it simdoctor's own server;
#   4. `stop` leaves no process (process table) and NVML no longer lists it;
#   5. a server started behind simdoctor's back is flagged by gpu.stale_carla as not started by
#      simdoctor, and `simdoctor carla stop --orphans` stops it.
set -u
source tests/device/common.sh
device_prologue carla_gpu
standin_carla 2048
PORT=${PORT:-2000}
as_user() {  # run a command as the user, with a clean environment plus what the driver needs
  setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups -- env -i \
    HOME="$HOME_DIR" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 NO_COLOR=1 PYTHONPATH="$WORK/code" \
    CARLA_ROOT="$HOME_DIR/carla" SIMDOCTOR_STATE_DIR="$HOME_DIR/state" SIMDOCTOR_CONFIG="$HOME_DIR/config.toml" \
    SIMDOCTOR_CARLA_PORT="$PORT" LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}" ${VK_DRIVER_FILES:+VK_DRIVER_FILES=$VK_DRIVER_FILES} \
    "$@"
}
as_user "$PYTHON" -c 'import torch; print("user sees", torch.cuda.device_count(), "CUDA device(s)")' \
  || fail "the user cannot use torch/CUDA"

echo "== 1. NVML UUID -> Vulkan index, as the user sees it"
as_user "$PYTHON" "$WORK/code/tests/device/mapping.py" >"$OUT/mapping.json"
cat "$OUT/mapping.json"
as_user "$PYTHON" -m simdoctor check --only gpu,vulkan -v | tee -a "$OUT/carla_gpu.log" | tail -n 25

echo "== 2. start on GPU 0 as $USER_NAME"
as_user "$PYTHON" -m simdoctor carla start --gpu 0 --port "$PORT" --json >"$OUT/start.json"
echo "exit $?"
cat "$OUT/start.json"
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv | tee "$OUT/nvidia-smi.txt"
echo "-- the same, as a person reads it:"
as_user "$PYTHON" -m simdoctor carla logs "$PORT" | tail -n 12

echo "== 3. status and the stale-server check while it runs"
as_user "$PYTHON" -m simdoctor carla status --json >"$OUT/status.json"
as_user "$PYTHON" -m simdoctor carla status
as_user "$PYTHON" -m simdoctor check --only gpu.stale_carla --json >"$OUT/stale.json"
as_user "$PYTHON" -m simdoctor check --only gpu.stale_carla -v

echo "== 4. stop"
as_user "$PYTHON" -m simdoctor carla stop "$PORT" --json >"$OUT/stop.json"
echo "exit $?"
cat "$OUT/stop.json"
sleep 1
LEFT=$(live_carla)
[ -z "$LEFT" ] || fail "processes left after stop: $LEFT"
nvidia-smi --query-compute-apps=pid --format=csv,noheader | grep -q . && fail "NVML still lists a process after stop"

echo "== 5. a server simdoctor did not start"
FOREIGN_PORT=$((PORT + 10))
setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups -- env -i HOME="$HOME_DIR" PATH=/usr/bin:/bin \
  LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}" ${VK_DRIVER_FILES:+VK_DRIVER_FILES=$VK_DRIVER_FILES} \
  setsid "$HOME_DIR/carla/CarlaUE4.sh" -RenderOffScreen -nosound -carla-rpc-port=$FOREIGN_PORT -graphicsadapter=0 \
  >"$WORK/foreign.log" 2>&1 &
for _ in $(seq 1 240); do  # the stand-in says so once its GPU memory is held and its ports are bound
  grep -q "Listening on port" "$WORK/foreign.log" && break
  sleep 0.5
done
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv | tee -a "$OUT/nvidia-smi.txt"
as_user "$PYTHON" -m simdoctor check --only gpu.stale_carla -v | tee "$OUT/orphan-check.txt"
as_user "$PYTHON" -m simdoctor carla stop --orphans
sleep 1
LEFT=$(live_carla)
[ -z "$LEFT" ] || fail "orphan left after stop --orphans: $LEFT"

echo "== verdict"
PYTHONPATH=tests/device python3 - "$OUT" <<'EOF' || FAIL=1
import sys
from verdict import finish, load, need
out = sys.argv[1]
mapping = load(f"{out}/mapping.json")
start = load(f"{out}/start.json")
need(start.get("status") == "ready", f"start ready: {start.get('summary')}")
rec = start.get("record") or {}
need(rec.get("adapter") == mapping["adapter_map"].get("0"), f"-graphicsadapter={rec.get('adapter')} is the Vulkan index of GPU 0's UUID ({mapping['adapter_map'].get('0')})")
need(f"-graphicsadapter={rec.get('adapter')}" in rec.get("command", []), "the command line carries it")
r = start.get("rendering") or {}
need(r.get("verdict") == "gpu", f"rendering verdict gpu: {r.get('summary')}")
uses = [u for u in r.get("nvml", []) if u["gpu_index"] == 0 and (u["used_bytes"] or 0) > 0]
need(bool(uses), f"NVML lists the server on GPU 0 with memory: {uses}")
dev = r.get("log_device") or {}
need(dev.get("vendor_id") == 0x10DE and dev.get("type") == "Discrete GPU", f"log names the NVIDIA device: {dev}")
status = load(f"{out}/status.json")
mine = [s for s in status["servers"] if s["started_by_simdoctor"]]
need(bool(mine) and mine[0]["alive"] and mine[0]["gpu"], f"status lists it with GPU memory: {mine}")
stale = next(r for r in load(f"{out}/stale.json")["results"] if r["id"] == "gpu.stale_carla")
need(stale["status"] == "ok" and "simdoctor's own" in stale["summary"], f"gpu.stale_carla: {stale['summary']}")
stop = load(f"{out}/stop.json")
need(all(s["clean"] for s in stop["stopped"]) and stop["stopped"], "stop: nothing left")
orphan = open(f"{out}/orphan-check.txt").read()
need("not started by simdoctor" in orphan and "simdoctor carla stop --orphans" in orphan, "the orphan is flagged")
finish()
EOF
as_user "$PYTHON" -m simdoctor carla stop --all --orphans >/dev/null 2>&1  # if a step above failed midway
proven
rm -rf "$WORK"
exit "$FAIL"
