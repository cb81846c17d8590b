"""Root hands the stack to a normal user: CARLA refuses root, so `setup` as root creates (or uses) one, installs
simdoctor where that user can run it, and continues as them; `check`'s root finding names the same path."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from simdoctor import __version__
from simdoctor.config.recipe import ConfigError, PlatformSetup
from simdoctor.config.settings import Settings
from simdoctor.doctor.rootfix import home_of, user_simdoctor
from simdoctor.provision.steps import Action, StepError, command
from simdoctor.system.subproc import run_bounded

USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
INSTALL_TIMEOUT = 900.0
# Root's own places and choices, which the user's setup must not inherit (it resolves its own).
NOT_PASSED = {
    "SIMDOCTOR_CONFIG",
    "SIMDOCTOR_STATE_DIR",
    "SIMDOCTOR_WORK_DIR",
    "SIMDOCTOR_AGENT_PYTHON",
    "CARLA_ROOT",
    "HF_HOME",
    "HF_TOKEN_PATH",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "MAIL",
    "PWD",
    "OLDPWD",
}


def checked_user(name: str) -> str:
    if not USER_NAME.match(name) or name == "root":
        raise ConfigError(f"--user {name!r}: give the name of a normal user (lowercase letters, digits, _ and -)")
    return name


def exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def source() -> str:
    """What the user's pip installs: the folder this simdoctor was installed from, else the same release."""
    import importlib.metadata  # imported here, not at the top: `check` (root's fix) starts faster

    try:
        text = importlib.metadata.distribution("simdoctor").read_text("direct_url.json")
        url = json.loads(text)["url"] if text else ""
    except (importlib.metadata.PackageNotFoundError, ValueError, KeyError):
        url = ""
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" else f"simdoctor=={__version__}"


def _reachable_by_others(path: Path) -> bool:
    """Every folder above it searchable and the file executable by anyone: a new user can run it."""
    try:
        if not path.stat().st_mode & stat.S_IXOTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in path.resolve().parents)
    except OSError:
        return False


def base_python() -> str:
    """An interpreter the user may run for their venv: simdoctor's own base one, else the system's python3."""
    own = Path(getattr(sys, "_base_executable", sys.executable))
    return str(own) if _reachable_by_others(own) else "/usr/bin/python3"


def as_user(user: str, args: list[str]) -> list[str]:
    home = home_of(user)
    return ["runuser", "-u", user, "--", "env", f"HOME={home}", f"USER={user}", f"LOGNAME={user}", *args]


def install_actions(setup: PlatformSetup, user: str) -> list[Action]:
    """Create the user when missing, and give them their own simdoctor (a venv in their home, linked on PATH)."""
    actions: list[Action] = []
    home = home_of(user)
    if not exists(user):
        actions.append(
            command(["useradd", "--create-home", "--shell", "/bin/bash", user], None, 60, f"create the user {user}")
        )
    if user_simdoctor(setup, user).exists():
        return actions
    venv = home / setup.user_venv
    bin_dir = home / setup.user_bin
    spec = source()
    actions += [
        command(as_user(user, [base_python(), "-m", "venv", str(venv)]), None, 300, f"make {venv} as {user}"),
        _install(user, venv, spec),
        command(as_user(user, ["mkdir", "-p", str(bin_dir)]), None, 60, f"make {bin_dir}"),
        command(
            as_user(user, ["ln", "-sfn", str(venv / "bin" / "simdoctor"), str(bin_dir / "simdoctor")]),
            None,
            60,
            f"put simdoctor on {user}'s PATH",
        ),
    ]
    return actions


def _install(user: str, venv: Path, spec: str) -> Action:
    """pip-install simdoctor into the user's venv, as the user. From a local folder (which the user may not be
    able to read), root first builds a wheel into a fresh temporary folder the user can read."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if spec.startswith("simdoctor=="):
        return command(as_user(user, [*pip, spec]), None, INSTALL_TIMEOUT, f"install {spec} into {venv}")

    def run() -> None:
        folder = Path(tempfile.mkdtemp(prefix="simdoctor-wheel-"))
        try:
            folder.chmod(0o755)
            build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(folder), spec]
            built = run_bounded(build, INSTALL_TIMEOUT)
            if not built.ok:
                raise StepError(f"building a wheel from {spec} failed: {built.describe()}")
            installed = run_bounded(as_user(user, [*pip, *map(str, folder.glob("*.whl"))]), INSTALL_TIMEOUT)
            if not installed.ok:
                raise StepError(f"installing simdoctor as {user} failed: {installed.describe()}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return Action(f"install simdoctor from {spec} into {venv} as {user} (through a wheel root builds)", run)


def user_environment(settings: Settings, user: str) -> dict[str, str]:
    """Root's environment for the user's setup, less root's own paths; a token root has is passed on, unshown."""
    home = home_of(user)
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED and not k.startswith("XDG_")}
    env.update(
        HOME=str(home),
        USER=user,
        LOGNAME=user,
        PATH=f"{home / '.local' / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    )
    if settings.hf_token and "HF_TOKEN" not in env:
        env["HF_TOKEN"] = settings.hf_token.reveal()
    return env


def user_setup(settings: Settings, user: str, args: list[str]) -> list[str]:
    """The command line of the user's own `simdoctor setup ARGS`."""
    return ["runuser", "-u", user, "--", str(user_simdoctor(settings.recipe.platform.setup, user)), "setup", *args]


def run_user_setup(settings: Settings, user: str, args: list[str]) -> int:
    """Run the user's setup, its output straight to this terminal; its exit code."""
    argv = user_setup(settings, user, args)
    sys.stdout.flush()
    try:
        return subprocess.run(argv, env=user_environment(settings, user), cwd="/", check=False).returncode
    except OSError as exc:
        raise StepError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
