"""`simdoctor setup`: the fix side of `check`, as steps in dependency order.

Whether a step is needed is read from the findings of the checks it fixes (the same probes and
checks `check` runs), never guessed again here; so a second `setup` finds nothing to do. Each step
is a list of actions, each either an exact command (shown as such by --dry-run) or a named
operation of simdoctor's own (a verified download, an extraction through a temporary folder).
"""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from simdoctor import doctor, manifest
from simdoctor.checks import CheckContext
from simdoctor.download import DownloadError, archive
from simdoctor.download import command as download
from simdoctor.findings import Finding, Status
from simdoctor.probes.agent import AgentFacts
from simdoctor.probes.carla import CarlaInstallFacts
from simdoctor.probing import Facts
from simdoctor.recipe import ConfigError
from simdoctor.settings import Settings
from simdoctor.subproc import run_bounded

PIP_TIMEOUT = 1800.0
IMPORT_TIMEOUT = 3600.0
ENV_FILES = {"env.sh": "bash", "env.fish": "fish"}
# Step name -> the checks whose failure it fixes, in the order the steps must run.
STEPS: dict[str, tuple[str, ...]] = {
    "carla": ("carla.root", "carla.binaries", "carla.version"),
    "maps": ("carla.maps",),
    "client": ("agent.carla_client",),
    "weights": ("weights.checkpoint", "weights.config"),
    "base_model": ("weights.base_model",),
    "env": (),
}
AFTER = {"maps": "carla"}  # a step that cannot run when this one failed


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


@dataclass(frozen=True)
class State:
    """What the checks found, and the facts behind them."""

    settings: Settings
    facts: Facts
    findings: dict[str, Finding]

    def status(self, check_id: str) -> Optional[Status]:
        f = self.findings.get(check_id)
        return f.status if f else None

    def first_problem(self, ids: tuple[str, ...], statuses: tuple[Status, ...]) -> Optional[Finding]:
        return next((self.findings[i] for i in ids if i in self.findings and self.findings[i].status in statuses), None)


def gather(settings: Settings) -> State:
    ids = (*(i for ids in STEPS.values() for i in ids), "agent.python")
    checks = doctor.select(doctor.Selection(only=ids))
    ctx = CheckContext(settings)
    facts = doctor.start(checks, ctx).wait()
    return State(settings, facts, {f.id: f for f in doctor.diagnose(facts, checks, ctx)})


# -- the steps -----------------------------------------------------------------------------------


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _fetch(settings: Settings, source: str, local_dir: Path, revision: Optional[str] = None) -> Action:
    pin = ["--revision", revision] if revision else []
    cmd = ["simdoctor", "download", source, *pin, "--local-dir", str(local_dir)]

    def run() -> None:
        observer = None
        if sys.stderr.isatty():
            from simdoctor.download.progress import RichProgress

            observer = RichProgress(source)
        request = download.Request(source=source, local_dir=local_dir, revision=revision)
        if observer is not None:
            with observer:
                report = download.execute(settings, request, observer)
        else:
            report = download.execute(settings, request)
        for line in report.lines():
            _say(f"   {line}")
        if report.exit_code:
            raise StepError(f"download of {source} did not complete")

    return Action(f"download {source} into {local_dir}", run, cmd)


def _forget(download_dir: Path, name: str) -> None:
    """An archive left the download folder: drop its record, and the folder once nothing else is there."""
    old = manifest.read(download_dir)
    records = {k: v for k, v in old.files.items() if k != name} if old else {}
    if old and name in old.files:
        manifest.write(download_dir, manifest.Manifest(old.source, records))
    if download_dir.is_dir() and not records and all(p.name == manifest.STATE_DIR for p in download_dir.iterdir()):
        shutil.rmtree(download_dir)  # nothing but simdoctor's own state left


def _drop_archive(download_dir: Path, name: str) -> Action:
    def run() -> None:
        (download_dir / name).unlink(missing_ok=True)
        _forget(download_dir, name)

    return Action(f"remove {download_dir / name} (installed; no longer needed)", run)


def _command(args: list[str], cwd: Optional[Path], timeout: float, what: str) -> Action:
    def run() -> None:
        outcome = run_bounded(args, timeout=timeout, cwd=str(cwd) if cwd else None)
        if not outcome.ok:
            raise StepError(f"{what} failed: {outcome.describe()}")

    return Action(what, run, args, cwd)


def plan_carla(state: State) -> Optional[Planned]:
    problem = state.first_problem(STEPS["carla"], (Status.FAIL,))
    if problem is None:
        return None
    s = state.settings
    c: CarlaInstallFacts = state.facts.get("carla")
    root = s.carla_root
    planned = Planned("carla", problem.summary)
    if c.root is not None and Path(c.root).is_dir() and any(Path(c.root).iterdir()):
        planned.blocked = f"{c.root} exists and is not a complete CARLA {s.recipe.carla.version}: move it away first"
        return planned
    download_dir = Path(s.recipe.carla.download_dir)
    name = archive.archive_name(s.recipe.carla.url)
    planned.actions = [
        _fetch(s, s.recipe.carla.url, download_dir),
        Action(
            f"extract {download_dir / name} into {root} (through a temporary folder beside it, then renamed)",
            lambda: archive.extract(download_dir / name, root),
        ),
        _drop_archive(download_dir, name),
    ]
    return planned


def plan_maps(state: State, carla_planned: bool) -> Optional[Planned]:
    status = state.status("carla.maps")
    if status is not Status.FAIL and not (carla_planned and status is Status.SKIP):
        return None
    s = state.settings
    r = s.recipe.carla
    c: CarlaInstallFacts = state.facts.get("carla")
    root = Path(c.root) if c.root else s.carla_root
    reason = state.findings["carla.maps"].summary if status is Status.FAIL else "a fresh CARLA has no AdditionalMaps"
    planned = Planned("maps", reason)
    import_dir = root / r.import_dir
    if not c.import_pending:
        download_dir = Path(r.download_dir)
        name = archive.archive_name(r.additional_maps_url)

        def move() -> None:
            import_dir.mkdir(parents=True, exist_ok=True)
            (download_dir / name).replace(import_dir / name)
            _forget(download_dir, name)

        planned.actions += [
            _fetch(s, r.additional_maps_url, download_dir),
            Action(f"move {download_dir / name} into {import_dir}/", move),
        ]
        pending = [name]
    else:
        pending = list(c.import_pending)
    planned.actions.append(_command(["bash", r.import_script], root, IMPORT_TIMEOUT, f"import {', '.join(pending)}"))

    def clean() -> None:
        for name in pending:
            (import_dir / name).unlink(missing_ok=True)

    planned.actions.append(Action(f"remove the imported {', '.join(pending)} from {import_dir}", clean))
    return planned


def plan_client(state: State) -> Optional[Planned]:
    status = state.status("agent.carla_client")
    if status in (None, Status.OK):
        return None
    s = state.settings
    a: Optional[AgentFacts] = state.facts.get("agent")
    if status is Status.SKIP or a is None or not a.python:
        why = state.findings.get("agent.python")
        return Planned("client", "no agent interpreter", blocked=why.summary if why else "no agent interpreter")
    version = s.recipe.agent.packages["carla"]
    args = [a.python, "-m", "pip", "install", f"carla=={version}"]
    planned = Planned("client", state.findings["agent.carla_client"].summary)
    planned.actions.append(_command(args, None, PIP_TIMEOUT, f"install carla {version} into {a.python}"))
    return planned


def plan_weights(state: State, step: str, repo: str, revision: str, local_dir: str) -> Optional[Planned]:
    problem = state.first_problem(STEPS[step], (Status.FAIL, Status.WARN))
    if problem is None:
        return None
    return Planned(step, problem.summary, [_fetch(state.settings, repo, Path(local_dir), revision)])


def env_files(settings: Settings) -> dict[Path, str]:
    """The files `setup` writes: exactly what `simdoctor env` prints, one per shell family."""
    from simdoctor import shellenv
    from simdoctor.agentenv import agent_environment

    env = agent_environment(settings)
    folder = settings.config_file.parent
    return {folder / name: shellenv.render(env, fmt) for name, fmt in ENV_FILES.items()}


def plan_env(state: State) -> Optional[Planned]:
    wanted = env_files(state.settings)
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if not stale:
        return None

    def write() -> None:
        for path, text in wanted.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        sh, fish = wanted
        _say(f"   load it in each new shell: `. {sh}` (bash, zsh) or `source {fish}` (fish)")

    first = next(iter(wanted))
    return Planned(
        "env",
        f"{stale[0]} is missing or out of date",
        [Action(f"write the output of `simdoctor env` to {', '.join(map(str, wanted))} (source {first})", write)],
    )


def plan(state: State) -> list[Planned]:
    r = state.settings.recipe
    carla = plan_carla(state)
    steps = [
        carla,
        plan_maps(state, carla is not None),
        plan_client(state),
        plan_weights(state, "weights", r.weights.repo, r.weights.revision, r.weights.local_dir),
        plan_weights(state, "base_model", r.base_model.repo, r.base_model.revision, r.base_model.local_dir),
        plan_env(state),
    ]
    return [p for p in steps if p is not None]


# -- the command ---------------------------------------------------------------------------------


def show(planned: list[Planned]) -> None:
    for n, p in enumerate(planned, 1):
        fixes = f"  [fixes {', '.join(STEPS[p.step])}]" if STEPS[p.step] else ""
        _say(f"{n}. {p.step}: {p.reason}{fixes}")
        if p.blocked:
            _say(f"   cannot run: {p.blocked}")
        for action in p.actions:
            _say(f"   {action.show()}")


def execute(planned: list[Planned]) -> list[str]:
    """Run the steps in order; returns the names of those that failed."""
    failed: list[str] = []
    for p in planned:
        _say(f"-> {p.step}")
        if p.blocked or AFTER.get(p.step) in failed:
            _say(f"   not run: {p.blocked or AFTER[p.step] + ' failed'}")
            failed.append(p.step)
            continue
        try:
            for action in p.actions:
                _say(f"   {action.show()}")
                action.run()
        except (StepError, DownloadError, OSError) as exc:
            _say(f"   failed: {exc}")
            failed.append(p.step)
    return failed


def run(settings: Settings, dry_run: bool = False, yes: bool = False, only: Optional[str] = None) -> int:
    """`simdoctor setup`: plan from the findings, confirm once, run the steps, end with `check`."""
    if only is not None and only not in STEPS:
        raise ConfigError(f"unknown step {only!r}; the steps are {', '.join(STEPS)}")
    planned = plan(gather(settings))
    if only is not None:
        planned = [p for p in planned if p.step == only]
    if not planned:
        _say(f"nothing to do: {'step ' + only if only else 'every step'} is already done")
    else:
        _say(f"simdoctor setup · recipe {settings.recipe.name}: {len(planned)} step(s) to run")
        show(planned)
    if dry_run:
        return 0
    failed: list[str] = []
    if planned:
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError("setup changes this machine: pass --yes to run it without a terminal")
            import typer

            if not typer.confirm(f"Run these {len(planned)} step(s)?", default=False):
                _say("cancelled; nothing was changed")
                return 1
        failed = execute(planned)
        _say(f"setup: {len(planned) - len(failed)} step(s) done" + (f", failed: {', '.join(failed)}" if failed else ""))
    _say("")
    code = doctor.run(settings)
    return 1 if failed else code
