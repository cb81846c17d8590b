#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine, then nothing else:
#   system packages (real Xvfb, Mesa's Vulkan and GLX, ...), the dev venv .venv with simdoctor and its
#   test extras, and .venv-agent: a Python 3.8 interpreter (SimLingo's) with the real carla 0.9.15 client,
#   standing in for the agent's conda env. Idempotent; needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb x11-utils mesa-utils            # a real X server and glxinfo: display checks
  mesa-vulkan-drivers libvulkan1       # the Vulkan loader and lavapipe (llvmpipe): vulkan checks
  vulkan-tools                         # vulkaninfo, only to cross-check our enumeration in tests
  slurm-wlm munge                      # a real single-node Slurm cluster (tests/slurmcluster.py)
  docker.io                            # a real Docker daemon (the tests start their own): carla docker backend
  python3 python3-venv                 # Debian's Python: the interpreter of the non-root test user
  fish                                 # sources `simdoctor env --format fish` in the env tests
  patchelf                             # the test user's copy of the agent's Python finds its libpython
  git git-lfs                          # `setup` clones the SimLingo stand-in repository
  libsdl2-2.0-0 libomp5 xdg-user-dirs  # CARLA's runtime libraries: `setup`'s packages step finds them here
  debootstrap                          # the bare Debian 12 root filesystem of tests/test_setup_bare.py
  fonts-liberation                     # Liberation Sans: run --viz gives it to SimLingo's drawing as arial.ttf
  chromium                             # a real headless browser: the watch and report --html pages
)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  [[ "$p" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# uv, which `setup` makes the agent env with when no conda is here (the recipe's [agent.build] uv).
UV=uv==0.9.5
.venv/bin/python -m pip install -q "$UV"

# The agent's interpreter: Python 3.8 where one exists (pyenv or PATH), as SimLingo pins; else python3.
if [ ! -x .venv-agent/bin/python ]; then
  AGENT_PY=$(ls -d /root/.pyenv/versions/3.8*/bin/python 2>/dev/null | head -n 1 || true)
  [ -n "$AGENT_PY" ] || AGENT_PY=$(command -v python3.8 || command -v python3)
  "$AGENT_PY" -m venv .venv-agent
fi
# SimLingo's Pillow (recipe [agent.packages]): the stand-in agent draws its debug view with it.
PILLOW=$(sed -n 's/^pillow = "\(.*\)"/\1/p' recipes/simlingo-bench2drive.toml)
case "$(.venv-agent/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" in
  3.8|3.9|3.10) CARLA=0.9.15 ;;
  *) CARLA=0.9.16 ;;
esac
.venv-agent/bin/python -m pip install -q "carla==$CARLA" "pillow==$PILLOW"
# What the real evaluator imports besides carla (reference/upstream-behaviour.md §3), and huggingface_hub, through
# which the real agent resolves its base model by name: the stand-ins need them as upstream does; at the recipe's
# pins (environment.yaml's) on SimLingo's Pythons.
STANDIN_DISTS=(six simple-watchdog-timer py-trees pexpect transforms3d tabulate numpy ephem shapely networkx dictor
               requests huggingface-hub)
if [ "$CARLA" = 0.9.15 ]; then
  STANDIN_REQS=$(.venv/bin/python -c 'import sys; from simdoctor.config.recipe import DEFAULT_RECIPE, find_recipe, load_recipe
pins = load_recipe(find_recipe(DEFAULT_RECIPE, [])).agent.packages
print(" ".join(f"{n}=={pins[n]}" for n in sys.argv[1:]))' "${STANDIN_DISTS[@]}")
else
  STANDIN_REQS="${STANDIN_DISTS[*]}"
fi
# shellcheck disable=SC2086 # one requirement per word
.venv-agent/bin/python -m pip install -q $STANDIN_REQS

# The non-root user the CARLA lifecycle tests run simdoctor as (CARLA refuses root), with an
# interpreter it may execute: Debian's python3 in a venv outside the checkout (which may sit under a
# home only root can enter), holding simdoctor's dependencies; the tests put a fresh copy of the code
# on its PYTHONPATH. Rebuilt when pyproject.toml changes.
TEST_USER=simdoctor-test
id -u "$TEST_USER" >/dev/null 2>&1 || $SUDO useradd --create-home --shell /bin/bash "$TEST_USER"
USER_VENV=/opt/simdoctor-test/venv
STAMP="$USER_VENV/.pyproject.sha256"
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$USER_VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  $SUDO rm -rf "$USER_VENV"
  $SUDO /usr/bin/python3 -m venv "$USER_VENV"
  $SUDO "$USER_VENV/bin/python" -m pip install -q --upgrade pip
  $SUDO "$USER_VENV/bin/python" -m pip install -q '.[carla,docker,viz]' "$UV"
  $SUDO "$USER_VENV/bin/python" -m pip uninstall -q -y simdoctor
  echo "$WANT" | $SUDO tee "$STAMP" >/dev/null
fi

# The agent's interpreter as the test user runs it (`simdoctor run` tests: the evaluator and its CARLA
# run as that user, since CARLA refuses root): a venv with the same carla client, made from .venv-agent's
# base Python. When that Python sits where the user cannot enter (pyenv under /root), its installation is
# copied under /opt first, with its libpython found beside it ($ORIGIN runpath instead of the absolute one).
AGENT_BASE=$(.venv-agent/bin/python -c 'import sys; print(sys.base_prefix)')
AGENT_VERSION=$(.venv-agent/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
USER_AGENT_VENV=/opt/simdoctor-test/agent-venv
AGENT_STAMP="$USER_AGENT_VENV/.carla-$CARLA-$(echo "$STANDIN_REQS" | sha256sum | cut -c1-12)"
if [ ! -x "$USER_AGENT_VENV/bin/python" ] || [ ! -e "$AGENT_STAMP" ]; then
  USER_AGENT_BASE=$AGENT_BASE
  as_user() { $SUDO setpriv --reuid="$(id -u "$TEST_USER")" --regid="$(id -g "$TEST_USER")" --init-groups -- "$@"; }
  if ! (cd / && as_user "$AGENT_BASE/bin/python$AGENT_VERSION" -c '') >/dev/null 2>&1; then
    USER_AGENT_BASE=/opt/simdoctor-test/python$AGENT_VERSION
    $SUDO rm -rf "$USER_AGENT_BASE"
    $SUDO cp -a "$AGENT_BASE" "$USER_AGENT_BASE"
    $SUDO rm -rf "$USER_AGENT_BASE/lib/python$AGENT_VERSION/test" "$USER_AGENT_BASE/lib/python$AGENT_VERSION/site-packages"
    $SUDO mkdir -p "$USER_AGENT_BASE/lib/python$AGENT_VERSION/site-packages"
    $SUDO patchelf --set-rpath '$ORIGIN/../lib' "$(readlink -f "$USER_AGENT_BASE/bin/python$AGENT_VERSION")"
    $SUDO chmod -R a+rX "$USER_AGENT_BASE"
  fi
  $SUDO rm -rf "$USER_AGENT_VENV"
  $SUDO "$USER_AGENT_BASE/bin/python$AGENT_VERSION" -m venv "$USER_AGENT_VENV"
  $SUDO "$USER_AGENT_VENV/bin/python" -m pip install -q "carla==$CARLA"
  # shellcheck disable=SC2086
  $SUDO "$USER_AGENT_VENV/bin/python" -m pip install -q $STANDIN_REQS
  $SUDO touch "$AGENT_STAMP"
fi
$SUDO "$USER_AGENT_VENV/bin/python" -m pip install -q "pillow==$PILLOW"  # additive: no rebuild for it
