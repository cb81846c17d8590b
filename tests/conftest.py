"""Shared fixtures: an isolated user environment, real Xvfb, the agent's real interpreter, free ports."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import builders
import pytest
import slurmcluster

from simdoctor.config.recipe import DEFAULT_RECIPE, find_recipe, load_recipe
from simdoctor.config.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
AGENT_VENV = REPO / ".venv-agent"
STACK_VARIABLES = (
    "CARLA_ROOT", "HF_ENDPOINT", "HF_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "DISPLAY", "WAYLAND_DISPLAY",
    "VK_DRIVER_FILES", "VK_ICD_FILENAMES", "VK_ADD_DRIVER_FILES", "NO_COLOR", "XDG_CONFIG_HOME",
    "XDG_STATE_HOME", "XDG_CACHE_HOME",
)  # fmt: skip


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated user: HOME, config file and state dir under tmp_path, no stack variables set."""
    for name in list(os.environ):
        if name.startswith("SIMDOCTOR_") or name in STACK_VARIABLES:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SIMDOCTOR_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("SIMDOCTOR_STATE_DIR", str(tmp_path / "state"))
    return home


@pytest.fixture
def make_settings(home: Path) -> Callable[..., Settings]:
    """Settings as a command would load them, with flags given as keyword arguments."""

    def make(recipe: str | None = None, **flags: object) -> Settings:
        return load_settings(flags, recipe=recipe, env=dict(os.environ))

    return make


@pytest.fixture(scope="session")
def agent_python() -> str:
    """The real interpreter standing in for the agent's conda env (Python 3.8 + carla 0.9.15 where possible)."""
    python = AGENT_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run `bash tests/setup.sh` (the README's test command does)")
    return str(python)


def free_port(count: int = 1) -> int:
    """A port P with P..P+count-1 all free on loopback right now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            socks = []
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


@pytest.fixture(scope="session")
def xvfb() -> str:
    """A real Xvfb on a free display number; Mesa renders its OpenGL with llvmpipe."""
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.fail("Xvfb is not installed: run `bash tests/setup.sh`")
    number = next(n for n in range(90, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())  # fmt: skip
    proc = subprocess.Popen(
        [binary, f":{number}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Xvfb :{number} did not start")
        time.sleep(0.05)
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


TEST_USER = "simdoctor-test"  # created by tests/setup.sh
USER_PYTHON = "/opt/simdoctor-test/venv/bin/python"  # tests/setup.sh: Debian's python3 + simdoctor's dependencies
# The stand-in evaluator's 60 s start-up sleep, 5 s pauses and per-attempt client timeout, times this: 0.3 s,
# 25 ms and 3 s (tests/standins/bench2drive/leaderboard/leaderboard/leaderboard_evaluator.py).
STANDIN_TIME_SCALE = "0.005"
USER_AGENT_PYTHON = "/opt/simdoctor-test/agent-venv/bin/python"  # tests/setup.sh: .venv-agent's Python + carla
SESSION_MARK = "SIMDOCTOR_TEST_SESSION"  # in the environment of every process a UserRuntime starts


@dataclass(frozen=True)
class UserRuntime:
    """Run simdoctor as the non-root test user, as a real server would be run (CARLA refuses root).

    The checkout may sit under a directory that user cannot enter, so a fresh copy of the code
    (simdoctor, the recipes, the stand-ins) goes to a world-readable temp dir for the session."""

    user: str
    uid: int
    gid: int
    python: str
    code: Path
    base: Path

    def mkdir(self, name: str) -> Path:
        """A directory the user owns, under the session's world-traversable base."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.base))
        os.chown(path, self.uid, self.gid)
        return path

    def chown_tree(self, root: Path) -> None:
        for path in [root, *root.rglob("*")]:
            os.lchown(path, self.uid, self.gid)

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        return {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "PYTHONPATH": str(self.code),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "SIMDOCTOR_CONFIG": str(home / "config.toml"),
            "SIMDOCTOR_STATE_DIR": str(home / "state"),
            SESSION_MARK: str(self.base),
            **extra,
        }

    def processes(self) -> list:
        """The live processes this runtime started: the test user's that carry this runtime's mark in their
        environment. Other suites on the machine run as the same user; their processes are not ours to stop."""
        from simdoctor.system import procs

        mine = [p for p in procs.processes() if p.uid == self.uid and procs.is_alive(p.pid)]
        return [p for p in mine if (procs.environ(p.pid) or {}).get(SESSION_MARK) == str(self.base)]

    def command(self, args: list[str]) -> list[str]:
        """`args` as the user; setpriv execs in place, so the pid is that of `args` itself."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *args]

    def simdoctor(self, *args: str) -> list[str]:
        return self.command([self.python, "-m", "simdoctor", *args])


def copy_code(dest: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "simdoctor", dest / "simdoctor", ignore=skip)
    shutil.copytree(REPO / "recipes", dest / "recipes", ignore=skip)
    shutil.copytree(REPO / "tests" / "standins", dest / "tests" / "standins", ignore=skip)
    return dest


def new_user_runtime(prefix: str) -> UserRuntime:
    """A UserRuntime with a fresh world-readable copy of the code under /tmp/<prefix>*; RuntimeError says
    what is missing (also used by bench/, outside pytest)."""
    if os.geteuid() != 0:
        raise RuntimeError("these create processes as another user (CARLA refuses root): run them as root (CI does)")
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        raise RuntimeError(f"user {TEST_USER} is missing: run `bash tests/setup.sh`") from None
    if not os.access(USER_PYTHON, os.X_OK):
        raise RuntimeError(f"{USER_PYTHON} is missing: run `bash tests/setup.sh`")
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    code = copy_code(base / "code")
    for path in [code, *code.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return UserRuntime(TEST_USER, entry.pw_uid, entry.pw_gid, USER_PYTHON, code, base)


@pytest.fixture(scope="session")
def user_runtime() -> Iterator[UserRuntime]:
    try:
        runtime = new_user_runtime("simdoctor-user-")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield runtime
    shutil.rmtree(runtime.base, ignore_errors=True)


@dataclass(frozen=True)
class Stack:
    """A stand-in stack the test user owns: a CARLA_ROOT whose server is the full stand-in
    (tests/standins/carla_server.py, run as that user: CARLA refuses root), a SimLingo checkout holding
    the stand-in Bench2Drive evaluator and SimLingo agent, the agent's real interpreter as that user can
    run it, and STANDIN_STATE_DIR (attempt counts of routes that fail only their first runs)."""

    rt: UserRuntime
    home: Path
    carla_root: Path
    work_dir: Path
    state_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        return self.rt.env(
            self.home, CARLA_ROOT=str(self.carla_root), SIMDOCTOR_WORK_DIR=str(self.work_dir),
            SIMDOCTOR_AGENT_PYTHON=USER_AGENT_PYTHON, STANDIN_STATE_DIR=str(self.state_dir),
            **{"STANDIN_EVALUATOR_TIME_SCALE": STANDIN_TIME_SCALE, **extra},
        )  # fmt: skip

    def settings(self) -> Settings:
        return load_settings(env=self.env())

    def user_processes(self) -> list:
        return self.rt.processes()


def make_stack(rt: UserRuntime) -> Stack:
    """A fresh Stack in a directory the test user owns (also used by bench/, outside pytest)."""
    if not os.access(USER_AGENT_PYTHON, os.X_OK):
        raise RuntimeError(f"{USER_AGENT_PYTHON} is missing: run `bash tests/setup.sh`")
    home = rt.mkdir("stack")
    recipe = load_recipe(find_recipe(DEFAULT_RECIPE, []))
    root = builders.carla_root(home / "carla", recipe)
    builders.standin_server(root, recipe, rt.python, rt.code)
    work = builders.bench2drive_standin(home / "simlingo")
    builders.base_model(home, work, recipe)  # the agent loads it by hub name, from the user's HF cache
    (home / "standin-state").mkdir()
    rt.chown_tree(home)
    return Stack(rt, home, root, work, home / "standin-state")


@pytest.fixture
def standin_stack(user_runtime: UserRuntime) -> Iterator[Stack]:
    from simdoctor.system import proctree

    try:
        stack = make_stack(user_runtime)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield stack
    # Whatever a test left running is a failure of that test; stop it so the next one is not hit.
    left = stack.user_processes()
    if left:
        proctree.stop_processes(left, grace=1)
        pytest.fail(f"processes left running: {[p.command for p in left]}")


STANDIN_IMAGE = "simdoctor-test/carla-standin:0.9.15"  # tagged as the docker_image of a test recipe


@dataclass(frozen=True)
class DockerDaemon:
    host: str  # DOCKER_HOST for the clients
    hook_dir: Path  # holds the stand-in nvidia-container-runtime-hook (on the daemon's PATH)
    image: str
    base: Path


@pytest.fixture(scope="session")
def dockerd(user_runtime: UserRuntime) -> Iterator[DockerDaemon]:
    """A real Docker daemon of our own (own data root, exec root and socket; stopped by its pid at the
    end), with the stand-in CARLA image built from a root filesystem assembled here: no registry."""
    binary = shutil.which("dockerd")
    if binary is None:
        pytest.fail("dockerd is not installed: run `bash tests/setup.sh` (it installs docker.io)")
    import docker

    from simdoctor.config.settings import load_settings
    from tests import builders

    base = Path(tempfile.mkdtemp(prefix="sdd-", dir="/tmp"))  # short: unix socket paths are limited
    hook_dir = base / "hook"
    hook_dir.mkdir()
    shutil.copy(REPO / "tests" / "standins" / "nvidia-container-runtime-hook", hook_dir)
    socket_path = base / "docker.sock"
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 (closed at the end of the session)
    proc = subprocess.Popen(
        [binary, "--iptables=false", "--bridge=none", "--data-root", str(base / "root"),
         "--exec-root", str(base / "exec"), "--pidfile", str(base / "docker.pid"), "-H", f"unix://{socket_path}"],
        env={**os.environ, "PATH": f"{hook_dir}:{os.environ.get('PATH', '')}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    host = f"unix://{socket_path}"
    try:
        deadline = time.monotonic() + 60
        client = None
        while client is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start: {(base / 'dockerd.log').read_text()[-3000:]}")
            try:
                client = docker.DockerClient(base_url=host, timeout=120)
                client.ping()
            except docker.errors.DockerException:
                client = None
                time.sleep(0.2)
        recipe = load_settings(env={"HOME": str(base)}).recipe
        carla = recipe.carla
        tar = builders.standin_image_tar(base, recipe, user_runtime.code)
        repository, tag = STANDIN_IMAGE.rsplit(":", 1)
        client.api.import_image(
            src=str(tar),
            repository=repository,
            tag=tag,
            changes=[f"USER {builders.IMAGE_USER[0]}", f"WORKDIR {carla.docker_carla_root}",
                     f'CMD ["/bin/sh", "{carla.launcher}"]'],
        )  # fmt: skip
        client.close()
        yield DockerDaemon(host, hook_dir, STANDIN_IMAGE, base)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def unmount_under(base: Path) -> None:
    """Mounts dockerd leaves under its own dirs (its network namespace file), deepest first."""
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        points = [line.split()[1] for line in handle if line.split()[1].startswith(f"{base}/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[slurmcluster.Cluster]:
    """A real single-node Slurm cluster (munged, slurmctld, slurmd) with 2 GPUs modelled as GRES. Its folder
    is world-traversable: the test user submits too (its configuration and munge's socket are there)."""
    root = Path(tempfile.mkdtemp(prefix="sdslurm-", dir="/tmp"))
    root.chmod(0o755)
    try:
        cluster = slurmcluster.start(root, gpus=2)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"the Slurm test cluster did not start: {exc}")
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def on_cluster(slurm_cluster: slurmcluster.Cluster, monkeypatch: pytest.MonkeyPatch) -> slurmcluster.Cluster:
    """This test talks to the test cluster (SLURM_CONF points at its configuration)."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    return slurm_cluster


@pytest.fixture
def hub():
    """The Hugging Face Hub stand-in and its CDN on loopback (tests/standins/hf_hub.py)."""
    from standins.hf_hub import Hub

    with Hub() as server:
        yield server


@pytest.fixture
def simdoctor(home: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run the real `simdoctor` command line in a subprocess, in the isolated user environment."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "simdoctor", *args],
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )

    return run
