"""What root is told to do instead, by every command that refuses it (CARLA refuses root): hand the stack to a
normal user with `simdoctor setup --user`, then carry on as that user. `check`'s root finding, `carla start`
and `run` print the same path; simdoctor.provision.handoff carries it out."""

from __future__ import annotations

import pwd
import shlex
from pathlib import Path

from simdoctor.config.recipe import PlatformSetup
from simdoctor.config.settings import Settings
from simdoctor.doctor import distro
from simdoctor.doctor.findings import Fix


def home_of(user: str) -> Path:
    """The user's home; `useradd -m`'s default for one that does not exist yet."""
    try:
        return Path(pwd.getpwnam(user).pw_dir)
    except KeyError:
        return Path("/home") / user


def user_simdoctor(setup: PlatformSetup, user: str) -> Path:
    return home_of(user) / setup.user_bin / "simdoctor"


def continue_command(setup: PlatformSetup, user: str, command: str = "run") -> str:
    """The one command that carries on as that user, in a login shell, with simdoctor named by its path."""
    return f"su - {user} -c {shlex.quote(f'{user_simdoctor(setup, user)} {command}')}"


def root_fix_commands(setup: PlatformSetup, user: str, then: str = "run") -> list[str]:
    """What root runs to get a stack CARLA will start from: hand it over, then continue as the user."""
    return [f"simdoctor setup --user {user}", continue_command(setup, user, then)]


def root_fix(settings: Settings, text: str, then: str = "run") -> Fix:
    """The same path as `check`'s root finding, for a command that refuses root: runnable as printed here."""
    setup = settings.recipe.platform.setup
    return distro.localize(Fix(text, root_fix_commands(setup, setup.user, then)), distro.Machine.here())
