"""`simdoctor setup` for real, as root, on a bare Debian 12 root filesystem (tests/barefs.py): from the README's
first command to a stack that `check` passes except for the GPU, its driver and the display.

Inside the chroot only what the README's first command needs is installed (python3, python3-venv); then
`setup --yes --no-torch` runs as root and does everything else itself: the system packages with apt-get,
the user `carla` and simdoctor for it, and, as carla, the clone from a local bare git repository standing in
for GitHub (same layout, the recipe's commit pinned below a later one), the agent env with uv and the
machine's Python 3.8 (every pin of the recipe installed for real from PyPI except torch, which is only
resolved, and the pins that need torch: --no-torch; the real 2 GB torch download is not made in CI), CARLA
and AdditionalMaps from the loopback archive server, the weights and InternVL2-1B from the Hub stand-in.
Its wall time and the time of each step are printed (run with -s to see them; bench/setup_bare.py prints
them alone). It takes a few minutes: debootstrap's tree is built once and cached (tests/barefs.py)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import barefs
import pytest
from standins.hf_hub import Hub

USER = "carla"
HOME = f"/home/{USER}"
# What only a person (or a GPU) can settle: the GPU and its driver, Vulkan on it, a display; the 2-core test
# machine's CPUs; torch, which --no-torch leaves out, and what needs it.
NOT_SETUPS = re.compile(
    r"^(gpu\.|vulkan\.(icd|devices|adapter_map)$|display\.|system\.(cpu|memory)$|agent\.(torch|deep)$)"
)


def test_setup_takes_a_bare_debian_12_to_a_stack_check_passes(tmp_path: Path, hub: Hub) -> None:
    began = time.monotonic()
    try:
        barefs.pristine()
    except barefs.BareError as exc:
        pytest.fail(str(exc))
    built = time.monotonic() - began
    work = Path(tmp_path)
    with barefs.fresh_root(work) as root:
        env = barefs.root_env(hub)
        src, first = barefs.readme_first_command(root, env)
        assert first.returncode == 1 and "Traceback" not in first.stderr, first.stdout[-3000:] + first.stderr[-3000:]
        # root's finding names the path setup takes: hand over to carla, then the command setup ends with
        assert f"{src}/.venv/bin/simdoctor setup --user carla" in first.stdout
        assert f"su - {USER} -c '{HOME}/.local/bin/simdoctor run'" in first.stdout
        staged = barefs.stage(root, hub, work)
        readme_done = time.monotonic()

        setup = barefs.setup(root, env, src)
        setup_done = time.monotonic()
        out = setup.stdout
        print(out[-6000:])
        assert "setup as root: 2 step(s) done" in out, out[-5000:] + setup.stderr[-3000:]
        assert "setup: 7 step(s) done" in out, out[-5000:] + setup.stderr[-3000:]
        assert out.rstrip().endswith(f"continue as {USER}: su - {USER} -c '{HOME}/.local/bin/simdoctor run'")

        # as carla: the stack under their home, owned by them; the checkout at the pinned commit
        uid = root.inside(HOME).stat().st_uid
        assert uid != 0
        for path in ("simlingo/team_code", "software/carla0915/CarlaUE4.sh", ".local/share/simdoctor/agent-env"):
            assert root.inside(f"{HOME}/{path}").stat().st_uid == uid, path
        head = root.run(["runuser", "-u", USER, "--", "git", "-C", f"{HOME}/simlingo", "rev-parse", "HEAD"], env)
        assert head.stdout.strip() == staged["commit"]
        # the agent env: Python 3.8 with the pins, torch resolved only
        python = f"{HOME}/.local/share/simdoctor/agent-env/bin/python"
        probe = (
            "import sys, carla, transformers, shapely, py_trees; print(sys.version_info[:2], transformers.__version__)"
        )
        imported = root.run(["runuser", "-u", USER, "--", python, "-c", probe], env)
        assert imported.stdout.strip() == "(3, 8) 4.46.3", imported.stderr[-2000:]
        assert "Would install" in setup.stderr + out  # uv resolved torch

        # check as carla: nothing fails or warns but what only a person or a GPU settles
        user_env = {**env, "HOME": HOME, "USER": USER}
        check = root.run(["runuser", "-u", USER, "--", f"{HOME}/.local/bin/simdoctor", "check", "--json",
                          "--recipe", barefs.RECIPE_INSIDE], user_env)  # fmt: skip
        results = json.loads(check.stdout)["results"]
        bad = {
            r["id"]: r["summary"] for r in results if r["status"] in ("fail", "warn") and not NOT_SETUPS.match(r["id"])
        }
        # the pins --no-torch leaves out, and only those (torch itself is agent.torch's)
        assert bad == {"agent.packages": "missing: torchvision, accelerate, peft, timm, pytorch-lightning"}
        passed = {r["id"] for r in results if r["status"] == "ok"}
        assert {"system.packages", "system.user", "agent.checkout", "agent.python", "agent.carla_client",
                "carla.version", "carla.maps", "weights.checkpoint", "weights.base_model"} <= passed  # fmt: skip

        # a second setup as root finds nothing left to do here or for carla
        again = barefs.setup(root, env, src)
        assert "nothing to do: every step is already done" in again.stdout, again.stdout[-3000:]
    times = barefs.step_times(out)
    print(
        f"\ndebootstrap tree: {built:.1f} s (0 when cached); README's first command and staging: "
        f"{readme_done - began - built:.1f} s; setup: {setup_done - readme_done:.1f} s; test: "
        f"{time.monotonic() - began:.1f} s; steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
    )
