#!/usr/bin/env bash
# How tests/data/h100/*.json were gathered on the lent H100 machine (device tool), from the repo root:
#   bash tests/data/h100/collect.sh   (with .gl/ holding Debian's Vulkan/EGL loader .debs, see README)
# Writes to $OUT: the facts dumps the replay tests read, plus the JSON reports for the closing note.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
run() {  # name, extra args...
  local name=$1; shift
  python3 -m simdoctor check --json --dump-facts "$OUT/facts-$name.json" "$@" >"$OUT/check-$name.json"
  echo "== $name: exit $?"
  python3 -m simdoctor check "$@" | tail -n 60
}
python3 -c 'import sys, typer, rich; print(sys.version.split()[0], "typer", typer.__version__)'
ldconfig -p | grep -c libvulkan || true
# 1. As the machine comes: NVIDIA ICD present, no Vulkan loader.
run bare
# 2. With the loader unpacked (the H100 should map to -graphicsadapter=0).
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
run loader
# 3. Same, with the machine's own Python 3.12 (torch 2.11+cu130) standing in as the agent interpreter, --deep.
run deep --agent-python python3 --deep
for i in 1 2 3 4 5; do /usr/bin/time -f "%e s" python3 -m simdoctor check >/dev/null; done 2>&1 | tr '\n' ' '
echo
