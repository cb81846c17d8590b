"""A bare Debian 12 root filesystem (debootstrap, from Debian's packages) to run `simdoctor setup` in for real,
as a new user would on a fresh server. Used by tests/test_setup_bare.py and bench/setup_bare.py.

The pristine tree is built once and cached outside the repository (/var/cache/simdoctor-tests, or
$SIMDOCTOR_TEST_CACHE); each use copies it, mounts /proc and /dev into the copy, and removes it afterwards.
Only plumbing comes from this machine: its DNS, its CA bundle (PyPI is reached through it here), the loopback
servers (the chroot shares this machine's network) and its Python 3.8 ("the machine's Python 3.8", which no
Debian 12 package provides), copied into /usr/local as a source build would install it."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import builders
from standins.hf_hub import Hub

from simdoctor.config.recipe import load_recipe

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SIMDOCTOR_TEST_CACHE", "/var/cache/simdoctor-tests"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PRISTINE = CACHE / f"{SUITE}-minbase"
AGENT_BASE_PYTHON = "/opt/simdoctor-test/agent-venv/bin/python"  # tests/setup.sh: a Python 3.8 venv
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# This machine's bundle inside, where Debian's ca-certificates (which apt pulls in) does not rewrite it, and how
# the tools there find it (uv, pip, requests, git).
INNER_CA = "/opt/host-ca/ca-certificates.crt"
CA_ENV = {name: INNER_CA for name in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO")}
SOURCE = ("simdoctor", "recipes", "pyproject.toml", "README.md")  # what `pip install .` builds from
RECIPE_INSIDE = "/opt/test/recipe.toml"  # the bundled recipe pointed at the stand-ins
BUNDLED = REPO / "recipes" / "simlingo-bench2drive.toml"


class BareError(RuntimeError):
    """What is missing to build or enter the root filesystem."""


def pristine() -> Path:
    """`debootstrap --variant=minbase bookworm`, built once (under a lock, through a temporary name)."""
    if os.geteuid() != 0:
        raise BareError("debootstrap and chroot need root (CI runs as root)")
    if not shutil.which("debootstrap"):
        raise BareError("debootstrap is missing: run `bash tests/setup.sh`")
    CACHE.mkdir(parents=True, exist_ok=True)
    done = PRISTINE / ".simdoctor-complete"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            partial = CACHE / f"{SUITE}-minbase.partial"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(PRISTINE, ignore_errors=True)
            out = subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(partial), MIRROR],
                                 capture_output=True, text=True, timeout=1200)  # fmt: skip
            if out.returncode != 0:
                raise BareError(f"debootstrap failed: {out.stderr.strip().splitlines()[-1:]}")
            (partial / ".simdoctor-complete").write_text(time.strftime("%Y-%m-%d\n"))
            partial.rename(PRISTINE)
    return PRISTINE


@dataclass(frozen=True)
class Root:
    """One fresh copy of the bare root filesystem, entered with chroot."""

    path: Path

    def run(self, args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
        """`args` inside, with exactly `env` (plus PATH), output captured."""
        plain = {"PATH": PATH, "LANG": "C.UTF-8", **env}
        command = ["chroot", str(self.path), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in plain.items()), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def inside(self, path: str) -> Path:
        return self.path / path.lstrip("/")


def machine_python38() -> Path:
    """The installation prefix of this machine's Python 3.8 (the agent venv's base)."""
    out = subprocess.run([AGENT_BASE_PYTHON, "-c", "import sys; print(sys.base_prefix, sys.version_info[:2])"],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        raise BareError(f"{AGENT_BASE_PYTHON} is missing: run `bash tests/setup.sh`")
    prefix, version = out.stdout.split(" ", 1)
    if version.strip() != "(3, 8)":
        raise BareError(f"this machine has no Python 3.8 ({AGENT_BASE_PYTHON} is {version.strip()})")
    return Path(prefix)


def _copy_python(prefix: Path, root: Path) -> None:
    """bin/python3.8, lib/python3.8 and libpython into the root's /usr/local, as `make altinstall` puts them."""
    local = root / "usr" / "local"
    shutil.copy2(prefix / "bin" / "python3.8", local / "bin" / "python3.8")
    for lib in (prefix / "lib").glob("libpython3.8*"):
        shutil.copy2(lib, local / "lib" / lib.name)
    ignore = shutil.ignore_patterns("test", "site-packages", "__pycache__")
    shutil.copytree(prefix / "lib" / "python3.8", local / "lib" / "python3.8", ignore=ignore, symlinks=True)
    (local / "lib" / "python3.8" / "site-packages").mkdir(exist_ok=True)


@contextmanager
def fresh_root(work: Path) -> Iterator[Root]:
    """A copy of the pristine tree with /proc and /dev mounted, this machine's DNS and CA bundle, and its
    Python 3.8 in /usr/local; unmounted and removed afterwards."""
    base = pristine()
    python = machine_python38()
    path = work / "rootfs"
    subprocess.run(["cp", "-a", str(base), str(path)], check=True)
    mounted: list[Path] = []
    try:
        for target, args in ((path / "proc", ["-t", "proc", "proc"]), (path / "dev", ["--bind", "/dev"])):
            subprocess.run(["mount", *args, str(target)], check=True)
            mounted.append(target)
        shutil.copy2("/etc/resolv.conf", path / "etc" / "resolv.conf")
        (path / INNER_CA.lstrip("/")).parent.mkdir(parents=True)
        shutil.copy2(CA_BUNDLE, path / INNER_CA.lstrip("/"))
        _copy_python(python, path)
        root = Root(path)
        root.run(["ldconfig"], {})
        yield root
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def copy_source(root: Root, dest: str = "/opt/simdoctor") -> str:
    """simdoctor's source, as a user who cloned it would have it."""
    target = root.inside(dest)
    target.mkdir(parents=True)
    for name in SOURCE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target / name)
    return dest


def root_env(hub: Hub) -> dict[str, str]:
    """Root's environment inside: the Hub stand-in, this machine's CA bundle, plain output."""
    return {"HOME": "/root", "HF_ENDPOINT": hub.endpoint, "NO_COLOR": "1", **CA_ENV}


def readme_first_command(root: Root, env: dict[str, str]) -> tuple[str, subprocess.CompletedProcess]:
    """What the README's first command needs on Debian (python3, python3-venv), then that command:
    `python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/simdoctor check`."""
    apt = root.run(["sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                    "--no-install-recommends python3 python3-venv"], env)  # fmt: skip
    if apt.returncode != 0:
        raise BareError(f"apt-get in the root filesystem failed: {apt.stderr[-2000:]}")
    src = copy_source(root)
    install = root.run(["sh", "-c", f"cd {src} && python3 -m venv .venv && .venv/bin/pip install -q ."], env)
    if install.returncode != 0:
        raise BareError(f"pip install . failed: {install.stderr[-3000:]}")
    return src, root.run([f"{src}/.venv/bin/simdoctor", "check"], env)


def stage(root: Root, hub: Hub, work: Path) -> dict[str, str]:
    """The stand-ins the recipe points at, inside (the git remote) and on loopback (archives, the Hub)."""
    url, commit = builders.simlingo_remote(root.inside("/srv/github/RenzKa"), towns=("Town01", "Town12", "Town13"))
    url = url.replace(f"file://{root.path}", "file://")  # as seen from inside
    # git reads a repository another user owns only when told it is safe; GitHub is nobody's folder
    root.inside("/etc/gitconfig").write_text(f"[safe]\n\tdirectory = {url[len('file://') :]}\n")
    every_pin = load_recipe(BUNDLED).agent.packages  # as the real recipe has them
    root.inside(RECIPE_INSIDE).parent.mkdir(parents=True)
    root.inside(RECIPE_INSIDE).write_text(builders.standin_recipe(hub, work / "build", url, commit, every_pin, {}))
    return {"commit": commit}


def setup(root: Root, env: dict[str, str], src: str) -> subprocess.CompletedProcess:
    """`simdoctor setup --yes --no-torch` as root with the staged recipe."""
    return root.run([f"{src}/.venv/bin/simdoctor", "setup", "--yes", "--no-torch", "--recipe", RECIPE_INSIDE], env)


def step_times(out: str) -> dict[str, float]:
    """Each step's wall time, as `setup` prints it: `(STEP: SECONDS s)`."""
    return {name: float(s) for name, s in re.findall(r"\((\w+): ([0-9.]+) s\)", out)}


if __name__ == "__main__":  # build the cache ahead of a test run
    print(pristine(), file=sys.stderr)
