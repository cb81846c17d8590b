# Sourced by the device scripts (tests/device/*.sh), from the repo root, as root: what each of them needs first.
# device_prologue NAME sends everything to $OUT/NAME.log too, checks the machine (GPU, python3 with torch,
# typer, rich, nvidia-ml-py), unpacks Debian's Vulkan loader from .gl/ when there is none, makes the non-root
# user CARLA must run as, and copies the code where that user can read it. Sets OUT, REPO, USER_NAME, WORK,
# HOME_DIR, PYTHON.
FAIL=0
fail() { echo "FAIL: $*"; FAIL=1; }
# Live CARLA processes of the user; zombies (state Z) have exited and hold nothing: where PID 1 does not
# reap orphans (seen on the lent machine), they stay in the table until it does.
live_carla() { ps -u "$USER_NAME" -o pid=,stat=,args= | awk '$2 !~ /^Z/ && /CarlaUE4/ {print $1}'; }

device_prologue() {
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT"
  exec > >(tee "$OUT/$1.log") 2>&1
  REPO=$PWD
  echo "== machine"
  nvidia-smi --query-gpu=index,name,uuid,memory.used --format=csv,noheader
  python3 -c 'import sys, torch, typer, rich, pynvml; print(sys.version.split()[0], "torch", torch.__version__)' \
    || { echo "FAIL: python3 lacks torch/typer/rich/nvidia-ml-py"; exit 1; }

  echo "== Vulkan loader"
  if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  ldconfig -p | grep -q libvulkan.so.1 || { echo "FAIL: no Vulkan loader (carry .gl/)"; exit 1; }

  echo "== a non-root user and a copy of the code it can read"
  USER_NAME=simdoctor-gpu
  id -u "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$USER_NAME"
  WORK=$(mktemp -d "/tmp/simdoctor-$1-XXXXXX")
  chmod 755 "$WORK"
  mkdir -p "$WORK/code/tests"
  cp -r "$REPO/simdoctor" "$REPO/recipes" "$WORK/code/"
  cp -r "$REPO/tests/standins" "$REPO/tests/device" "$REPO/tests/builders.py" "$WORK/code/tests/"
  HOME_DIR="$WORK/home"
  PYTHON=$(command -v python3)
}
