"""`check` end to end: pick checks, run only the probes they need, turn facts into findings."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import simdoctor.doctor.checks  # noqa: F401  (importing the package registers every check)
from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings
from simdoctor.doctor import distro
from simdoctor.doctor.checking import CHECKS, Check, CheckContext
from simdoctor.doctor.findings import Finding, Fix, Status, exit_code
from simdoctor.doctor.probing import REGISTRY, Facts, Pending, ProbeContext, ProbeFailure, load_facts, start_probes
from simdoctor.doctor.probing import dump_facts as write_facts
from simdoctor.system import procs, terminal

if TYPE_CHECKING:  # the Slurm probe's module and its tools load only for a check of the cluster
    from simdoctor.doctor.probes.slurm import SlurmIntent

PROBE_GROUPS = {  # probes named unlike the group they feed
    "server": "carla",
    "ports": "carla",
    "carla_servers": "gpu",
    "packages": "system",
    "checkout": "agent",
    "window": "display",
    "slurm_job": "slurm",
}


@dataclass(frozen=True)
class Selection:
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


def select(selection: Selection) -> list[Check]:
    """Checks matching --only (ids or groups), minus --skip; an unknown name is a usage error."""
    known = {c.id for c in CHECKS} | {c.group for c in CHECKS}
    for name in (*selection.only, *selection.skip):
        if name not in known:
            raise ConfigError(f"unknown check or group {name!r}; `simdoctor check --list` shows them")

    def hit(c: Check, names: tuple[str, ...]) -> bool:
        return c.id in names or c.group in names

    return [c for c in CHECKS if (not selection.only or hit(c, selection.only)) and not hit(c, selection.skip)]


def applicable(checks: list[Check], ctx: CheckContext) -> list[Check]:
    """Opt-in groups: docker only when CARLA is to run in Docker (`--backend docker`), slurm only with
    `--executor slurm`, and its probe job only with `--probe`."""

    def wanted(c: Check) -> bool:
        if c.group == "docker":
            return ctx.backend == "docker"
        if c.group == "viz":
            return ctx.viz
        if c.id == "display.window":
            return ctx.window
        if c.group == "slurm":
            return ctx.slurm is not None and (c.id != "slurm.probe_job" or ctx.slurm.probe_job)
        return True

    return [c for c in checks if wanted(c)]


def needed_probes(checks: list[Check]) -> list[str]:
    return list(dict.fromkeys(p for c in checks for p in (*c.needs, *c.uses)))


def rerun_flags(ctx: CheckContext) -> list[str]:
    """The options of `check` that gave this context: a rerun with them runs the same opt-in checks and probes."""
    flags = [*(["--window"] if ctx.window else []), *(["--viz"] if ctx.viz else []), *(["--deep"] if ctx.deep else [])]
    flags += ["--backend", "docker"] if ctx.backend == "docker" else []
    if ctx.slurm is not None:
        flags += ["--executor", "slurm", "--out", ctx.slurm.out_dir, *(["--probe"] if ctx.slurm.probe_job else [])]
    return flags


def probe_failure_finding(failure: ProbeFailure, ctx: CheckContext) -> Finding:
    group = PROBE_GROUPS.get(failure.probe, failure.probe)
    what = REGISTRY[failure.probe].description if failure.probe in REGISTRY else failure.probe
    return Finding(
        id=f"probe.{failure.probe}",
        group=group,
        title=f"{failure.probe} probe",
        status=Status.FAIL,
        summary=f"could not gather facts ({what}): {failure.error}",
        fix=Fix(
            "A probe that hangs usually means a wedged driver or filesystem; rerun this group alone "
            "with details and report it if it persists.",
            [shlex.join(["simdoctor", "check", "--only", group, *rerun_flags(ctx), "-v"])],
        ),
    )


def diagnose(facts: Facts, checks: list[Check], ctx: CheckContext) -> list[Finding]:
    """Pure: the same facts and settings always give the same findings."""
    findings: list[Finding] = []
    machine = distro.Machine.of(facts.get("system"))
    for value in facts.by_probe.values():
        if isinstance(value, ProbeFailure):
            finding = probe_failure_finding(value, ctx)
            findings.append(dataclasses.replace(finding, fix=distro.localize(finding.fix, machine)))
    for c in applicable(checks, ctx):
        missing = [p for p in c.needs if not _has(facts, p)]
        if missing:
            verdict_status, summary = (
                Status.SKIP,
                f"needs facts from the {', '.join(missing)} probe, which failed",
            )
            findings.append(Finding(c.id, c.group, c.title, verdict_status, summary))
            continue
        v = c.fn(facts, ctx)
        fix = distro.localize(v.fix, machine)
        findings.append(Finding(c.id, c.group, c.title, v.status, v.summary, list(v.details), fix))
    return findings


def _has(facts: Facts, name: str) -> bool:
    return facts.get(name) is not None


def start(checks: list[Check], ctx: CheckContext, early: Optional[Pending] = None) -> Pending:
    """Start the probes the checks need, beside those `early` already runs; collect them with `.wait()`."""
    names = list(dict.fromkeys([*needed_probes(checks), "system"]))  # the system facts localize every fix
    if early is None:
        return start_probes(names, ProbeContext(ctx.settings, deep=ctx.deep, slurm=ctx.slurm))
    early.start(names)
    return early


def run(
    settings: Settings,
    only: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    json_out: bool = False,
    verbose: bool = False,
    strict: bool = False,
    deep: bool = False,
    window: bool = False,
    viz: bool = False,
    backend: str = "process",
    list_checks: bool = False,
    dump_facts: Optional[Path] = None,
    facts_file: Optional[Path] = None,
    slurm: Optional[SlurmIntent] = None,
    early: Optional[Pending] = None,
) -> int:
    """`simdoctor check`: run the selected checks and print them; returns the exit code.

    `early` holds probes the caller started before importing this module (see probing.SLOW_PROBES), made with
    the same settings, deep and slurm; --json's seconds count from the process's start, imports included."""
    if list_checks:
        for c in CHECKS:
            sys.stdout.write(f"{c.id:26} {c.title}\n")
        return 0
    ctx = CheckContext(settings, window=window, deep=deep, backend=backend, slurm=slurm, viz=viz)
    checks = applicable(select(Selection(only, skip)), ctx)
    pending = None if facts_file else start(checks, ctx, early)
    from simdoctor.doctor import render

    if not json_out:  # the report prints with rich: it loads while the probes' subprocesses run; --json needs none
        import rich.console
        import rich.text  # noqa: F401

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
    findings = diagnose(facts, checks, ctx)
    code = exit_code(findings, strict)
    elapsed = round(procs.age(os.getpid()) or 0.0, 3)
    if json_out:
        sys.stdout.write(
            render.findings_json(findings, {"exit_code": code, "recipe": settings.recipe.name, "seconds": elapsed})
            + "\n"
        )
    else:
        header = f"simdoctor check · recipe {settings.recipe.name} (CARLA {settings.recipe.carla.version})"
        render.report(findings, terminal.console(), verbose=verbose, header=header)
    return code
