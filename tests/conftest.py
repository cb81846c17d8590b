"""Shared fixtures: an isolated user environment, real Xvfb, the agent's real interpreter, free ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from simdoctor.settings import Settings, load_settings

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
