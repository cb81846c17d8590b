"""This machine's way of installing system software and of running things as root, for fixes and `setup`.

Checks and steps write privileged commands in one canonical form, `sudo CMD`, with package names taken
from the recipe's per-family table ([platform]); `localize` then turns each into what runs as printed on
*this* machine: no `sudo` for root or where sudo is absent, `su - USER -c` for root where `sudo -iu USER`
was written, and simdoctor named as it is installed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from typing import Optional

from simdoctor.config.recipe import GUIDE_PLACEHOLDERS, Family, PlatformRecipe, placeholders
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.system import OsRelease, SystemFacts, read_os_release, simdoctor_command

SUDO_AS = re.compile(r"^sudo -iu (\S+) (.+)$")
SUDO = re.compile(r"(^|[|&;]\s*)sudo ")


@dataclass(frozen=True)
class Machine:
    """What a fix needs to know to be runnable here as printed."""

    os: Optional[OsRelease] = None
    root: bool = False
    sudo: bool = True  # unknown counts as present: the command then reads as it always did
    simdoctor: str = "simdoctor"

    @classmethod
    def of(cls, system: Optional[SystemFacts]) -> Machine:
        if system is None:
            return cls()
        return cls(system.os_release, system.euid == 0, system.sudo is not None, system.simdoctor)

    @classmethod
    def here(cls) -> Machine:
        """This machine, read now: for fixes printed outside `check` (CARLA's log, a refusal), which has no facts."""
        return cls(read_os_release(), os.geteuid() == 0, shutil.which("sudo") is not None, simdoctor_command())

    @property
    def without_privileges(self) -> bool:
        """A normal user on a machine without sudo: commands that need root must be run by root."""
        return not self.root and not self.sudo


def family(platform: PlatformRecipe, os: Optional[OsRelease]) -> Optional[Family]:
    """The first family naming the ID (and the version, where it says), else the first meeting ID_LIKE."""
    if os is None:
        return None

    def fits(f: Family) -> bool:
        return not f.versions or os.major in f.versions

    by_id = next((f for f in platform.families if os.id in f.ids and fits(f)), None)
    return by_id or next((f for f in platform.families if set(os.id_like) & set(f.ids) and fits(f)), None)


def package_names(platform: PlatformRecipe, fam: Optional[Family], names: list[str]) -> list[str]:
    """Each package under this family's name; with no family, the Debian name and the RHEL one."""
    if fam is not None:
        return [platform.packages[n][fam.name] for n in names]  # every name and family is there (recipe.py)
    return [" / ".join(dict.fromkeys(platform.packages[n].values())) for n in names]


def install_commands(platform: PlatformRecipe, os: Optional[OsRelease], names: list[str]) -> list[str]:
    """The canonical commands installing these packages (EPEL first where one needs it); none off-family."""
    fam = family(platform, os)
    if fam is None:
        return []
    packages = package_names(platform, fam, names)
    epel = [fam.epel] if fam.epel and set(packages) & set(fam.epel_packages) else []
    return [*epel, f"{fam.install} {' '.join(packages)}"]


def install_fix(platform: PlatformRecipe, os: Optional[OsRelease], names: list[str], text: str) -> Fix:
    """A fix installing packages by their [platform.packages] names; off-family it names them only."""
    commands = install_commands(platform, os, names)
    if commands:
        return Fix(text, commands)
    return Fix(f"{text} (no command known for {_name(os)}: install {', '.join(package_names(platform, None, names))})")


def _name(os: Optional[OsRelease]) -> str:
    return (os.pretty_name or os.id or "this distribution") if os is not None else "this distribution"


def os_of(system: Optional[SystemFacts]) -> Optional[OsRelease]:
    return system.os_release if system is not None else None


def guide(platform: PlatformRecipe, os: Optional[OsRelease], topic: str, fallback: str, **values: str) -> Fix:
    """The recipe's guide for a topic on this distribution (by ID, then family), its placeholders filled;
    on a distribution it has none for, the fallback sentence alone."""
    guides = platform.guides.get(topic, {})
    fam = family(platform, os)
    chosen = guides.get(os.id) if os is not None else None
    chosen = chosen or (guides.get(fam.name) if fam is not None else None)
    if chosen is None:
        return Fix(f"{fallback} (no command known for {_name(os)})")
    known = {"major": os.major if os is not None else "", **values}
    fill = {name: known[name] for name in GUIDE_PLACEHOLDERS[topic]}
    where = f"platform.guides.{topic}"
    return Fix(placeholders(chosen.text, fill, where), [placeholders(c, fill, where) for c in chosen.commands])


def localize_command(command: str, machine: Machine) -> str:
    """One canonical command as it runs here: sudo only where it exists and is needed; simdoctor as installed."""
    if command.startswith("simdoctor "):
        command = f"{machine.simdoctor} {command[len('simdoctor ') :]}"
    as_user = SUDO_AS.match(command)
    if as_user and (machine.root or not machine.sudo):
        user, rest = as_user.groups()
        rest = localize_command(rest, machine)
        return f"su - {user} -c {shlex.quote(rest)}"
    if machine.root or not machine.sudo:
        command = SUDO.sub(r"\1", command)
    return command


def localize(fix: Optional[Fix], machine: Machine) -> Optional[Fix]:
    """The fix with each command localized; on a machine without sudo, the text says to run them as root."""
    if fix is None:
        return None
    commands = [localize_command(c, machine) for c in fix.commands]
    text = fix.text
    if machine.without_privileges and any(SUDO.search(c) for c in fix.commands):
        text += " Run the commands as root (this machine has no sudo)."
    return Fix(text, commands)
