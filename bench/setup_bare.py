"""How long `simdoctor setup` takes from a bare Debian 12 to a stack `check` passes (but for the GPU), step by step.

Prints, from one run in a fresh copy of the cached debootstrap tree (tests/barefs.py, the same flow as
tests/test_setup_bare.py): the debootstrap build (cold, into a scratch cache, unless --cached), the README's
first command, each step of the first `setup --yes --no-torch` as root (packages, user, then as carla:
checkout, agent_env, carla, maps, weights, base_model, env) and its total; beside it its peer, a second
`setup`, which finds nothing to do. The loopback stand-ins make the CARLA and weight downloads tiny, and
--no-torch leaves out torch's 2 GB: the figures are simdoctor's own work plus apt's and uv's real downloads.

Run as root from the repo root after `bash tests/setup.sh`: `.venv/bin/python bench/setup_bare.py [--cached]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # barefs imports builders and the stand-ins as pytest does


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="use the cached debootstrap tree (no cold build)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="simdoctor-bench-setup-"))
    if not args.cached:
        os.environ["SIMDOCTOR_TEST_CACHE"] = str(scratch / "cache")
    import barefs
    from standins.hf_hub import Hub

    try:
        began = time.monotonic()
        barefs.pristine()
        built = time.monotonic() - began
        with Hub() as hub, barefs.fresh_root(scratch) as root:
            env = barefs.root_env(hub)
            t = time.monotonic()
            src, _ = barefs.readme_first_command(root, env)
            readme = time.monotonic() - t
            barefs.stage(root, hub, scratch)
            t = time.monotonic()
            first = barefs.setup(root, env, src)
            setup_s = time.monotonic() - t
            t = time.monotonic()
            second = barefs.setup(root, env, src)
            again_s = time.monotonic() - t
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"debootstrap --variant=minbase bookworm: {built:6.1f} s" + (" (cached)" if args.cached else " (cold)"))
    print(f"README's first command (apt python3-venv, pip install ., check): {readme:6.1f} s")
    for step, seconds in barefs.step_times(first.stdout).items():
        print(f"  setup step {step:11} {seconds:6.1f} s")
    ok = "nothing to do" in second.stdout
    print(f"setup, first run (exit {first.returncode}): {setup_s:6.1f} s")
    print(f"setup, second run (peer: {'nothing to do' if ok else 'NOT idle'}): {again_s:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
