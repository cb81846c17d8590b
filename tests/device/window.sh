#!/usr/bin/env bash
# A CARLA window judged by Vulkan, on the lent GPU machine (device tool), run by the lead from the repo root, as
# root, with .gl/ (Debian's Vulkan/GL loader .debs, as for carla_gpu.sh) and .xvfb/ carried:
#
#   bash tests/device/window.sh            (writes what it saw to $OUT; about a minute)
#
# .xvfb/ holds Debian bookworm's Xvfb and the libraries it needs beyond .gl/, downloaded once on the
# development machine, in the repo's root (amd64, like .gl/):
#   echo /.xvfb/ >>.git/info/exclude; mkdir -p .xvfb /tmp/amd64/partial
#   o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'; apt-get $o update
#   (cd .xvfb && apt-get $o download xvfb xserver-common x11-xkb-utils xkb-data libxfont2 libpixman-1-0 \
#      libxshmfence1 libunwind8 libfontenc1 libxkbfile1 libx11-6 libx11-data libxcb1 libxau6 libxdmcp6 libbsd0 \
#      libmd0 libfreetype6 libpng16-16 libbrotli1 libaudit1 libaudit-common libcap-ng0)      (23 files, ~9.4 MiB)
# They are unpacked into a private folder, not into / (the device README: other packages can break /), and run
# with LD_LIBRARY_PATH; Xvfb runs xkbcomp from /usr/bin, so a link to the unpacked one goes there when absent.
# No Mesa GLX is carried: this is reference §9's "Xvfb without GLX" (vulkaninfo died with SIGSEGV there).
#
# What it proves, self-checking (exit 1 when any proof fails):
#   1. with DISPLAY on that Xvfb, `simdoctor check --window` fails display.window for the Vulkan reason: the
#      NVIDIA GPU's device (-graphicsadapter) cannot present there ("would crash"), asked in a child process
#      that the driver may kill without taking simdoctor down; the probe's own stages are in present.txt;
#   2. `simdoctor carla start --window` refuses with that reason before starting CARLA (no record, no process);
#   3. off-screen `simdoctor carla start --gpu 0` (no DISPLAY) starts the stand-in server (the real launcher, a
#      binary that enumerates Vulkan for real and holds GPU memory on the -graphicsadapter device) and it is
#      ready; `stop` leaves nothing.
set -u
source tests/device/common.sh
device_prologue window

echo "== Xvfb from .xvfb/ (private prefix)"
ls .xvfb/*.deb >/dev/null 2>&1 || { echo "FAIL: no .xvfb/*.deb carried (see the header)"; exit 1; }
XROOT="$WORK/xvfb"
mkdir -p "$XROOT"
for f in .xvfb/*.deb; do dpkg -x "$f" "$XROOT"; done
chmod -R a+rX "$XROOT"
XLIB="$XROOT/usr/lib/x86_64-linux-gnu"
[ -e /usr/bin/xkbcomp ] || ln -s "$XROOT/usr/bin/xkbcomp" /usr/bin/xkbcomp
DISPLAY_NUMBER=99
env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$XLIB" "$XROOT/usr/bin/Xvfb" ":$DISPLAY_NUMBER" -screen 0 1280x720x24 \
  -ac -nolisten tcp -xkbdir "$XROOT/usr/share/X11/xkb" >"$OUT/xvfb.log" 2>&1 &
XVFB_PID=$!
for _ in $(seq 1 50); do [ -S "/tmp/.X11-unix/X$DISPLAY_NUMBER" ] && break; sleep 0.2; done
[ -S "/tmp/.X11-unix/X$DISPLAY_NUMBER" ] || { cat "$OUT/xvfb.log"; echo "FAIL: Xvfb did not start"; exit 1; }
echo "Xvfb pid $XVFB_PID on :$DISPLAY_NUMBER"
stop_xvfb() { kill "$XVFB_PID" 2>/dev/null; wait "$XVFB_PID" 2>/dev/null; }
trap stop_xvfb EXIT
on_display() { as_user env DISPLAY=":$DISPLAY_NUMBER" LD_LIBRARY_PATH="$XLIB:${LD_LIBRARY_PATH:-}" "$@"; }

standin_carla 2048
PORT=${PORT:-2000}

echo "== 1. check --window on Xvfb"
for index in 0 1; do
  echo "-- vulkan_devices.py --present $index"
  on_display "$PYTHON" "$WORK/code/simdoctor/scripts/vulkan_devices.py" --present "$index"
  echo "exit $?"
done 2>&1 | tee "$OUT/present.txt"
on_display "$PYTHON" -m simdoctor check --window --only display --json >"$OUT/check_window.json"
echo "exit $?" | tee -a "$OUT/check_window.json.rc"
on_display "$PYTHON" -m simdoctor check --window --only display -v
python3 - "$OUT/check_window.json" <<'EOF' || fail "check --window did not fail display.window for the Vulkan reason"
import json, sys
found = {r["id"]: r for r in json.load(open(sys.argv[1]))["results"]}
window = found["display.window"]
print(window["status"], window["summary"])
assert found["display.server"]["summary"].find("Xvfb") > 0, found["display.server"]
assert window["status"] == "fail" and "would crash" in window["summary"] and "NVIDIA" in window["summary"], window
assert any("watch" in c for c in window["fix"]["commands"]) and any("nvidia-xconfig" in c for c in window["fix"]["commands"])
EOF

echo "== 2. carla start --window refuses before CARLA starts"
on_display "$PYTHON" -m simdoctor carla start --gpu 0 --port "$PORT" --window >"$OUT/start_window.txt" 2>&1
RC=$?
cat "$OUT/start_window.txt"
echo "exit $RC"
[ "$RC" -eq 1 ] || fail "carla start --window exited $RC, not 1"
grep -q -- "--window: a CARLA window on DISPLAY=:$DISPLAY_NUMBER" "$OUT/start_window.txt" || fail "not refused for the Vulkan reason"
[ -z "$(live_carla)" ] || fail "a CARLA process runs after the refusal: $(live_carla)"
ls "$HOME_DIR/state/carla/"*.json >/dev/null 2>&1 && fail "a server record was written"

echo "== 3. off-screen carla start works"
as_user "$PYTHON" -m simdoctor carla start --gpu 0 --port "$PORT" --json >"$OUT/start.json"
RC=$?
cat "$OUT/start.json"
echo "exit $RC"
[ "$RC" -eq 0 ] || fail "off-screen carla start exited $RC"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"] == "ready" and "-RenderOffScreen" in d["record"]["command"], d' \
  "$OUT/start.json" || fail "off-screen start not ready"
as_user "$PYTHON" -m simdoctor carla stop "$PORT" || fail "stop failed"
sleep 1
[ -z "$(live_carla)" ] || fail "processes left after stop: $(live_carla)"

if [ "$FAIL" -ne 0 ]; then echo "window.sh: FAILED"; exit 1; fi
echo "window.sh: all proofs passed"
