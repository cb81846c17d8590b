"""What a `setup` step is made of: actions, each an exact command (shown as such by --dry-run) or a named
operation of simdoctor's own; the step's sizes; and the error a failed action raises."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from simdoctor.system.subproc import run_bounded


class StepError(Exception):
    """A step that failed; one line for the user."""


@dataclass(frozen=True)
class Action:
    text: str  # what it does, in words
    run: Callable[[], None]
    command: Optional[list[str]] = None  # the exact command line, when the action is one
    cwd: Optional[Path] = None  # where the command runs

    def show(self) -> str:
        if self.command is None:
            return self.text
        where = f"cd {shlex.quote(str(self.cwd))} && " if self.cwd else ""
        return f"$ {where}{shlex.join(self.command)}"


@dataclass
class Planned:
    step: str
    reason: str
    actions: list[Action] = field(default_factory=list)
    blocked: Optional[str] = None
    download_gib: float = 0.0  # what the step fetches and leaves on disk (the recipe's estimates)
    disk_gib: float = 0.0
    disk_at: Optional[Path] = None  # where that disk space is taken
    notes: list[str] = field(default_factory=list)  # said under the step in the plan


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def command(args: list[str], cwd: Optional[Path], timeout: float, what: str) -> Action:
    """A command whose output is captured and shown only when it fails."""

    def run() -> None:
        outcome = run_bounded(args, timeout=timeout, cwd=str(cwd) if cwd else None)
        if not outcome.ok:
            raise StepError(f"{what} failed: {outcome.describe()}")

    return Action(what, run, args, cwd)


def streamed(args: list[str], timeout: float, what: str, env: Optional[dict[str, str]] = None) -> Action:
    """A long command whose own progress (apt, git, uv, conda) goes straight to the terminal."""

    def run() -> None:
        sys.stdout.flush()
        try:
            done = subprocess.run(args, timeout=timeout, env={**os.environ, **env} if env else None, check=False)
        except subprocess.TimeoutExpired:
            raise StepError(f"{what}: no end after {timeout:.0f} s; stopped") from None
        except OSError as exc:
            raise StepError(f"{what}: cannot run {args[0]}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            raise StepError(f"{what} failed: {shlex.join(args[:3])}... exited with code {done.returncode}")

    shown = [*(f"{k}={v}" for k, v in (env or {}).items()), *args]
    return Action(what, run, ["env", *shown] if env else args)
