"""Run a helper program with a hard time bound; report how it ended instead of raising."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Outcome:
    """How a bounded command ended: its exit code (negative: killed by that signal) and output."""

    returncode: Optional[int]
    stdout: str
    stderr: str
    timed_out: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.error

    def describe(self) -> str:
        """One line saying how the command failed, for a finding's summary."""
        if self.error:
            return self.error
        if self.timed_out:
            return "gave no answer in time and was stopped"
        if self.returncode is not None and self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"crashed ({name})"
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        # A Python traceback ends with the error; other tools (shims, wrappers) lead with it.
        why = (lines[-1] if "Traceback (most recent call last):" in self.stderr else lines[0]) if lines else ""
        return f"exited with code {self.returncode}" + (f": {why}" if why else "")

    def json(self) -> Any:
        """The last line of stdout parsed as JSON (helpers print exactly one such line)."""
        lines = self.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None


def run_bounded(
    args: list[str],
    timeout: float,
    env: Optional[dict[str, str]] = None,
    stdin: Optional[str] = None,
    cwd: Optional[str] = None,
) -> Outcome:
    """Run `args` (never through a shell) in its own process group, killed whole on timeout."""
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome(None, "", "", error=f"cannot run {args[0]}: {exc.strerror or exc}")
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Outcome(proc.returncode, out, err, timed_out=True)
    return Outcome(proc.returncode, out, err)
