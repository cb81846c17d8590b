"""What a check says: one Finding per check, with a status and, when something is wrong, the fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Fix:
    """How to solve a finding: a sentence, and the exact commands to run, in order."""

    text: str
    commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    id: str
    group: str
    title: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    fix: Optional[Fix] = None


def counts(findings: list[Finding]) -> dict[str, int]:
    return {s.value: sum(1 for f in findings if f.status is s) for s in Status}


def exit_code(findings: list[Finding], strict: bool = False) -> int:
    """0 when nothing fails, 1 when something fails (or warns, with --strict)."""
    bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
    return 1 if any(f.status in bad for f in findings) else 0
