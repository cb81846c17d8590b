"""Bounded helper runs: how they end is reported, never raised."""

from __future__ import annotations

import sys
import time

from simdoctor.system.subproc import run_bounded


def test_a_hanging_command_is_killed_with_its_group():
    start = time.monotonic()
    outcome = run_bounded(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert outcome.timed_out and not outcome.ok and time.monotonic() - start < 5
    assert outcome.describe() == "gave no answer in time and was stopped"


def test_a_crash_names_the_signal():
    outcome = run_bounded([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"], 10)
    assert outcome.describe() == "crashed (SIGSEGV)"


def test_a_traceback_is_summarised_by_its_last_line_other_errors_by_their_first():
    outcome = run_bounded([sys.executable, "-c", "raise ValueError('bad agent')"], 10)
    assert outcome.describe() == "exited with code 1: ValueError: bad agent"
    outcome = run_bounded(
        ["sh", "-c", "echo 'pyenv: python3.8: command not found' >&2; echo >&2; echo hint >&2; exit 127"], 10
    )
    assert outcome.describe() == "exited with code 127: pyenv: python3.8: command not found"


def test_a_missing_program_is_an_outcome_not_an_exception(tmp_path):
    outcome = run_bounded([str(tmp_path / "nope")], 5)
    assert not outcome.ok and outcome.describe().startswith("cannot run")
