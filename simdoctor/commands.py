"""What each CLI command does, on settings already resolved; cli.py only parses options."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

from simdoctor import doctor
from simdoctor.checks import CHECKS, CheckContext
from simdoctor.findings import exit_code
from simdoctor.probing import dump_facts as write_facts
from simdoctor.probing import load_facts
from simdoctor.recipe import ConfigError
from simdoctor.settings import Settings


def check(
    settings: Settings,
    only: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    json_out: bool = False,
    verbose: bool = False,
    strict: bool = False,
    deep: bool = False,
    window: bool = False,
    backend: str = "process",
    list_checks: bool = False,
    dump_facts: Optional[Path] = None,
    facts_file: Optional[Path] = None,
) -> int:
    """Run the selected checks and print them; returns the exit code."""
    if list_checks:
        for c in CHECKS:
            sys.stdout.write(f"{c.id:26} {c.title}\n")
        return 0
    start = time.monotonic()
    checks = doctor.select(doctor.Selection(only, skip))
    ctx = CheckContext(settings, window=window, deep=deep, backend=backend)
    pending = None if facts_file else doctor.start(checks, ctx)
    from simdoctor import render  # imported here: rich loads while the probes' subprocesses run

    if pending is not None:
        facts = pending.wait()
    else:
        try:
            facts = load_facts(facts_file)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if dump_facts is not None:
        try:
            write_facts(facts, dump_facts)
        except OSError as exc:
            raise ConfigError(f"cannot write facts to {dump_facts}: {exc.strerror}") from None
    findings = doctor.diagnose(facts, checks, ctx)
    code = exit_code(findings, strict)
    elapsed = round(time.monotonic() - start, 3)
    if json_out:
        sys.stdout.write(
            render.findings_json(findings, {"exit_code": code, "recipe": settings.recipe.name, "seconds": elapsed})
            + "\n"
        )
    else:
        header = f"simdoctor check · recipe {settings.recipe.name} (CARLA {settings.recipe.carla.version})"
        render.report(findings, render.console(), verbose=verbose, header=header)
    return code
