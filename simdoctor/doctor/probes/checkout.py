"""The SimLingo checkout: read from its .git files directly (no git process), so `check` stays fast."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor.doctor.probing import ProbeContext, probe

SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CheckoutFacts:
    path: str
    exists: bool
    entries: list[str] = field(default_factory=list)  # top-level names, when it is a folder
    git: bool = False  # has a .git folder
    head: Optional[str] = None  # the commit checked out; None before the first checkout (an interrupted clone)
    origin: Optional[str] = None  # remote.origin.url


def _ref(git: Path, name: str) -> Optional[str]:
    try:
        value = (git / name).read_text().strip()
    except OSError:
        value = ""
    if SHA.match(value):
        return value
    try:
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, ref = line.partition(" ")
            if ref == name and SHA.match(sha):
                return sha
    except OSError:
        pass
    return None


def _origin(config: str) -> Optional[str]:
    section = ""
    for line in config.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == '[remote "origin"]' and line.replace(" ", "").startswith("url="):
            return line.split("=", 1)[1].strip()
    return None


def read_checkout(path: Path) -> CheckoutFacts:
    if not path.is_dir():
        return CheckoutFacts(str(path), path.exists())
    entries = sorted(p.name for p in path.iterdir())
    git = path / ".git"
    if not git.is_dir():
        return CheckoutFacts(str(path), True, entries)
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        head = ""
    commit = head if SHA.match(head) else _ref(git, head[5:].strip()) if head.startswith("ref:") else None
    try:
        origin = _origin((git / "config").read_text())
    except OSError:
        origin = None
    return CheckoutFacts(str(path), True, entries, True, commit, origin)


@probe("checkout", CheckoutFacts, timeout=1.0, description="the SimLingo checkout (its .git)")
def probe_checkout(ctx: ProbeContext) -> CheckoutFacts:
    return read_checkout(ctx.settings.work_dir)
