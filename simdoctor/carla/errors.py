"""The one kind of failure `simdoctor carla` reports to the user: what happened, and the fix."""

from __future__ import annotations

from typing import Optional

from simdoctor.doctor.findings import Fix


class Refusal(Exception):
    """simdoctor will not (or could not) do what was asked; the message says why (exit 1)."""

    def __init__(self, message: str, fix: Optional[Fix] = None, details: Optional[list[str]] = None) -> None:
        super().__init__(message)
        self.fix = fix
        self.details = details or []
