# Sourced by the device scripts (tests/device/*.sh), from the repo root, as root: what each of them needs first.
# device_prologue NAME sends everything to $OUT/NAME.log too, checks the machine (GPU, python3 with torch,
# typer, rich, nvidia-ml-py), unpacks Debian's Vulkan loader from .gl/ when there is none, makes the non-root
# user CARLA must run as, and copies the code where that user can read it (with msgpack beside it when python3
# lacks it). Sets OUT, REPO, USER_NAME, WORK, HOME_DIR, PYTHON. Helpers below it: fail, live_carla,
# agent_python (an interpreter with the carla client), standin_carla (the stand-in CARLA that renders through
# the real Vulkan), as_user.
FAIL=0
fail() { echo "FAIL: $*"; FAIL=1; }
# skipped WHAT: a proof this machine cannot give (one GPU, no carla client), said and counted in $SKIPPED_FILE, where
# the Python verdicts' skip() counts theirs too; proven prints the last line: ALL PROVEN only when nothing failed
# and nothing was skipped. Both before $WORK is removed.
skipped() { echo "skip $*"; echo "$*" >>"$SKIPPED_FILE"; }
proven() {
  local n
  n=$(cat "$SKIPPED_FILE" 2>/dev/null | wc -l)
  if [ "$FAIL" -ne 0 ]; then
    echo "NOT PROVEN"
  elif [ "$n" -gt 0 ]; then
    echo "PROVEN EXCEPT $n SKIPPED (the skip lines above: this machine could not give them)"
  else
    echo "ALL PROVEN"
  fi
}
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
  export SKIPPED_FILE="$WORK/skipped"
  mkdir -p "$WORK/code/tests"
  cp -r "$REPO/simdoctor" "$REPO/recipes" "$WORK/code/"
  cp -r "$REPO/tests/standins" "$REPO/tests/device" "$REPO/tests/builders.py" "$WORK/code/tests/"
  # simdoctor's rpc.py and the stand-in CARLA's RPC port speak MessagePack through the msgpack package: python3's
  # own, else the wheel carried in .whl/ for python3 (made once: pip download msgpack --no-deps --only-binary=:all:
  #   --python-version 3.12 --implementation cp --abi cp312 --platform manylinux2014_x86_64 -d .whl),
  # unpacked beside the code (on the PYTHONPATH of simdoctor and the stand-ins).
  if ! python3 -c 'import msgpack' 2>/dev/null; then
    for w in "$REPO"/.whl/msgpack-*.whl; do [ -e "$w" ] && python3 -m zipfile -e "$w" "$WORK/code"; done
    PYTHONPATH="$WORK/code" python3 -c 'import msgpack' 2>/dev/null \
      || { echo "FAIL: python3 lacks msgpack and .whl/ has no msgpack wheel for it (see common.sh)"; exit 1; }
  fi
  HOME_DIR="$WORK/home"
  PYTHON=$(command -v python3)
}

# agent_python: an interpreter that has torch, the carla client and what the stand-in evaluator and agent import as
# the real ones do (reference/upstream-behaviour.md §3-4), for the stand-in evaluator (as the agent's). python3
# itself when it imports them all; else a venv that sees python3's own packages (a .pth: python3 is itself a venv
# here, so --system-site-packages would reach only the base Python's) with carried wheels unpacked into it: the
# client from .whl/carla-*.whl matching python3 and the rest from .whl/eval/*.whl (the download commands are in
# multi_gpu.sh's header).
EVALUATOR_IMPORTS="carla requests pexpect ephem transforms3d py_trees dictor networkx shapely six xmlschema \
simple_watchdog_timer tabulate numpy huggingface_hub PIL"
agent_python() {
  local probe="import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
  if python3 -c "$probe" $EVALUATOR_IMPORTS 2>/dev/null; then command -v python3; return; fi
  local tag wheel site
  tag=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  wheel=$(ls "$REPO"/.whl/carla-*-"$tag"-*.whl 2>/dev/null | head -n 1)
  [ -n "$wheel" ] || { echo "python3 cannot import carla and .whl/ has no carla wheel for $tag" >&2; return 1; }
  python3 -m venv --without-pip "$WORK/agent" || return 1
  site=$("$WORK/agent/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  python3 -c 'import site; print("\n".join(site.getsitepackages()))' >"$site/python3-packages.pth"
  for w in "$wheel" "$REPO"/.whl/eval/*.whl; do [ -e "$w" ] && python3 -m zipfile -e "$w" "$site"; done
  chmod -R a+rX "$WORK/agent"
  "$WORK/agent/bin/python" -c "$probe" $EVALUATOR_IMPORTS \
    || { echo "the agent venv lacks an evaluator import (carry .whl/eval/, see above)" >&2; return 1; }
  echo "$WORK/agent/bin/python"
}

# as_user CMD...: run a command as the user, with a clean environment plus what simdoctor, the stand-in stack
# under $HOME_DIR (carla/, simlingo/, state/) and the driver need; the agent's interpreter is $AGENT_PY if set.
as_user() {
  setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups -- env -i \
    HOME="$HOME_DIR" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 NO_COLOR=1 PYTHONPATH="$WORK/code" \
    CARLA_ROOT="$HOME_DIR/carla" SIMDOCTOR_WORK_DIR="$HOME_DIR/simlingo" SIMDOCTOR_AGENT_PYTHON="${AGENT_PY:-$PYTHON}" \
    SIMDOCTOR_STATE_DIR="$HOME_DIR/state" SIMDOCTOR_CONFIG="$HOME_DIR/config.toml" STANDIN_STATE_DIR="$HOME_DIR/state" \
    LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}" ${VK_DRIVER_FILES:+VK_DRIVER_FILES=$VK_DRIVER_FILES} "$@"
}

# standin_carla MIB: under $HOME_DIR/carla the real launcher script and a shipping binary that enumerates Vulkan
# for real, picks the device -graphicsadapter names and holds MIB of GPU memory on it with torch, as CARLA's
# renderer would; the user owns it all and can read the code.
standin_carla() {
  PYTHONPATH="$WORK/code" python3 - "$HOME_DIR" "$PYTHON" "$WORK/code" "$1" <<'EOF'
import sys
from pathlib import Path
from simdoctor.config.settings import load_settings
from tests import builders
home, python, code, mib = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
recipe = load_settings(env={"HOME": str(home)}).recipe
builders.carla_root(home / "carla", recipe)
builders.standin_server(home / "carla", recipe, python, code, {"vulkan": "real", "gpu_memory_mib": mib})
EOF
  chown -R "$USER_NAME:$USER_NAME" "$HOME_DIR"
  chmod -R a+rX "$WORK/code"
}
