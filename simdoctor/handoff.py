"""Root hands the stack to a normal user: CARLA refuses root, so `setup` as root creates (or uses) one, installs
simdoctor where that user can run it, and continues as them; `check`'s root finding names the same path."""

from __future__ import annotations

import pwd
import shlex
from pathlib import Path

from simdoctor.recipe import PlatformSetup


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


def root_fix_commands(setup: PlatformSetup, user: str) -> list[str]:
    """What root runs to get a stack CARLA will start from: hand it over, then continue as the user."""
    return [f"simdoctor setup --user {user}", continue_command(setup, user)]
