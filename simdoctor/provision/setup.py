"""`simdoctor setup`: the fix side of `check`, as steps in dependency order.

Whether a step is needed is read from the findings of the checks it fixes (the same probes and
checks `check` runs), never guessed again here; so a second `setup` finds nothing to do. Each step
is a list of actions, each either an exact command (shown as such by --dry-run) or a named
operation of simdoctor's own (a verified download, an extraction through a temporary folder).
As root, `setup` installs the system packages, then hands the stack to a normal user (CARLA refuses
root) and runs the rest as that user (simdoctor.provision.handoff).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import ConfigError, torch_index
from simdoctor.config.settings import Settings, redact_url, with_config_agent_python
from simdoctor.doctor import diagnosis, distro, rootfix
from simdoctor.doctor.checking import CheckContext
from simdoctor.doctor.checks.checkout import is_foreign, way_out
from simdoctor.doctor.findings import Finding, Status
from simdoctor.doctor.probes.agent import AgentFacts
from simdoctor.doctor.probes.carla import CarlaInstallFacts
from simdoctor.doctor.probes.checkout import CheckoutFacts
from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probes.packages import wanted
from simdoctor.doctor.probes.system import SystemFacts, disk_space, simdoctor_command
from simdoctor.doctor.probing import Facts
from simdoctor.download import DownloadError, archive, hfcache, manifest
from simdoctor.download import command as download
from simdoctor.provision import agentbuild, handoff
from simdoctor.provision.steps import Action, Planned, StepError, command, say, streamed

PIP_TIMEOUT = 1800.0
IMPORT_TIMEOUT = 3600.0
GIT_TIMEOUT = 1800.0
PACKAGES_TIMEOUT = 1800.0
ENV_FILES = {"env.sh": "bash", "env.fish": "fish"}
# Step name -> the checks whose failure it fixes, in the order the steps must run.
STEPS: dict[str, tuple[str, ...]] = {
    "packages": ("system.packages",),
    "user": ("system.user",),
    "checkout": ("agent.checkout",),
    "agent_env": ("agent.python",),
    "client": ("agent.carla_client",),
    "carla": ("carla.root", "carla.binaries", "carla.version"),
    "maps": ("carla.maps",),
    "weights": ("weights.checkpoint", "weights.config"),
    "base_model": ("weights.base_model", "weights.hub_cache"),
    "env": (),
}
ROOT_STEPS = ("packages", "user")  # what root does itself; the rest runs as the user it hands over to
AFTER = {"maps": "carla", "client": "agent_env", "weights": "checkout", "base_model": "checkout"}


@dataclass(frozen=True)
class Options:
    """What the user asked of this `setup`."""

    dry_run: bool = False
    yes: bool = False
    only: tuple[str, ...] = ()  # steps of STEPS, each once (the CLI checks them)
    user: Optional[str] = None  # as root: the user to hand the stack to (default: the recipe's)
    build: agentbuild.Options = field(default_factory=agentbuild.Options)
    forwarded: tuple[str, ...] = ()  # settings flags given on the command line, passed on to the user's setup


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

    @property
    def machine(self) -> distro.Machine:
        return distro.Machine.of(self.facts.get("system"))


def gather(settings: Settings) -> State:
    ids = (*(i for ids in STEPS.values() for i in ids), "gpu.driver")
    checks = diagnosis.select(diagnosis.Selection(only=ids))
    ctx = CheckContext(settings)
    facts = diagnosis.start([*checks], ctx).wait()
    return State(settings, facts, {f.id: f for f in diagnosis.diagnose(facts, checks, ctx)})


# -- the steps -----------------------------------------------------------------------------------


def _fetch(settings: Settings, source: str, local_dir: Path, revision: Optional[str] = None) -> Action:
    pin = ["--revision", revision] if revision else []
    shown = redact_url(source)  # a recipe URL may carry user:password
    cmd = [*shlex.split(simdoctor_command()), "download", shown, *pin, "--local-dir", str(local_dir)]

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
            say(f"   {line}")
        if report.exit_code:
            raise StepError(f"download of {shown} did not complete")

    return Action(f"download {shown} into {local_dir}", run, cmd)


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
    planned.actions.append(command(["bash", r.import_script], root, IMPORT_TIMEOUT, f"import {', '.join(pending)}"))

    def clean() -> None:
        for name in pending:
            (import_dir / name).unlink(missing_ok=True)

    planned.actions.append(Action(f"remove the imported {', '.join(pending)} from {import_dir}", clean))
    return planned


def plan_packages(state: State) -> Optional[Planned]:
    """The recipe's host packages and the checkout's tools, with this distribution's package manager."""
    problem = state.first_problem(STEPS["packages"], (Status.FAIL,))  # a warning: the packages could not be told
    if problem is None:
        return None
    s = state.settings
    system: Optional[SystemFacts] = state.facts.get("system")
    os = distro.os_of(system)
    platform = s.recipe.platform
    commands = distro.install_commands(platform, os, wanted(s.recipe))
    planned = Planned("packages", problem.summary)
    if not commands:
        planned.blocked = (problem.fix.text if problem.fix else "no package manager known here") + "; then rerun"
        return planned
    machine = state.machine
    if machine.without_privileges:
        shown = "; ".join(distro.localize_command(c, machine) for c in commands)
        planned.blocked = f"installing packages needs root and this machine has no sudo: as root, run {shown}"
        return planned
    fam = distro.family(platform, os)
    if fam is not None and fam.refresh:
        commands = [fam.refresh, *commands]
    env = {"DEBIAN_FRONTEND": "noninteractive"} if fam is not None and fam.name == "debian" else None
    for c in commands:
        args = shlex.split(distro.localize_command(c, machine))
        planned.actions.append(streamed(args, PACKAGES_TIMEOUT, shlex.join(args), env))
    return planned


def plan_checkout(state: State) -> Optional[Planned]:
    """SimLingo at the pinned commit, by init + fetch + checkout: a rerun carries on where a killed one stopped."""
    if state.status("agent.checkout") is not Status.FAIL:
        return None
    s = state.settings
    c: CheckoutFacts = state.facts.get("checkout")
    r = s.recipe.agent
    planned = Planned("checkout", state.findings["agent.checkout"].summary)
    if is_foreign(c, s):
        planned.blocked = f"{c.path} is not a SimLingo checkout; move it away first: {' && '.join(way_out(c.path))}"
        return planned
    work = s.work_dir
    git = ["git", "-C", str(work)]
    if not c.git:
        planned.actions.append(
            command(
                ["git", "-c", "init.defaultBranch=main", "init", "-q", str(work)],
                None,
                GIT_TIMEOUT,
                f"make {work} a git repository",
            )
        )
    if c.origin is None:
        planned.actions.append(
            command([*git, "remote", "add", "origin", r.repo_url], None, GIT_TIMEOUT, f"name {r.repo_url} its origin")
        )
    planned.actions += [
        streamed([*git, "fetch", "--depth", "1", "origin", r.commit], GIT_TIMEOUT, f"fetch {r.commit[:7]}"),
        streamed(
            [*git, "checkout", "-q", "--detach", r.commit],
            GIT_TIMEOUT,
            f"check out {r.commit[:7]}",
            {"GIT_LFS_SKIP_SMUDGE": "1"},
        ),  # the weights come verified from the hub, not through LFS
    ]
    return planned


def plan_agent_env(state: State, options: agentbuild.Options) -> Optional[Planned]:
    """SimLingo's Python 3.8 env: conda/mamba/micromamba with environment.yaml, else uv with the recipe's pins."""
    s = state.settings
    r = s.recipe.agent
    a: Optional[AgentFacts] = state.facts.get("agent")
    lacking = agentbuild.unfinished(r, a.python if a else None, a.packages if a else None, options)
    if state.status("agent.python") is not Status.FAIL and not lacking:
        return None
    if a is not None and a.python and not lacking:
        return None  # an interpreter that exists but fails its probe is the user's to look at, not ours to replace
    g: Optional[GpuFacts] = state.facts.get("gpu")
    driver_cuda = g.cuda_driver_version if g is not None and not g.nvml_error else None
    index = torch_index(r, driver_cuda)
    reason = f"the agent env setup makes lacks {', '.join(lacking)} (an interrupted setup?)" if lacking else None
    planned = Planned("agent_env", reason or state.findings["agent.python"].summary)
    cuda = f"the driver's CUDA {driver_cuda}" if driver_cuda else "no NVIDIA driver here: the newest CUDA"
    conda = agentbuild.find_conda(r)
    if conda is not None and not lacking:
        planned.notes.append(f"with {conda} and {r.build.environment_file}; torch for {cuda} ({index})")
        planned.actions = agentbuild.conda_actions(r, conda, index, options, s.config_file)
        return planned
    python = agentbuild.find_python(r)
    uv = agentbuild.find_uv()
    found = f"Python {python}" if python else f"a Python {r.python_version} uv downloads"
    planned.notes.append(f"no conda here: uv ({uv or r.build.uv + ' from PyPI'}) with {found}; torch for {cuda}")
    if options.no_torch:
        planned.notes.append(
            f"--no-torch: torch is resolved, not installed; left out: {', '.join(r.build.needs_torch)}"
        )
    planned.actions = agentbuild.uv_actions(r, uv, python, index, options, make_venv=not lacking)
    return planned


def plan_client(state: State, env_planned: bool) -> Optional[Planned]:
    status = state.status("agent.carla_client")
    if status in (None, Status.OK) or env_planned:
        return None  # a new env gets the pinned client with the other pins
    s = state.settings
    a: Optional[AgentFacts] = state.facts.get("agent")
    if status is Status.SKIP or a is None or not a.python:
        why = state.findings.get("agent.python")
        return Planned("client", "no agent interpreter", blocked=why.summary if why else "no agent interpreter")
    version = s.recipe.agent.packages["carla"]
    args = [a.python, "-m", "pip", "install", f"carla=={version}"]
    planned = Planned("client", state.findings["agent.carla_client"].summary)
    planned.actions.append(command(args, None, PIP_TIMEOUT, f"install carla {version} into {a.python}"))
    return planned


def plan_weights(state: State, step: str, repo: str, revision: str, local_dir: str) -> Optional[Planned]:
    problem = state.first_problem(STEPS[step], (Status.FAIL, Status.WARN))
    if problem is None:
        return None
    return Planned(step, problem.summary, [_fetch(state.settings, repo, Path(local_dir), revision)])


def plan_base_model(state: State) -> Optional[Planned]:
    """The base model's download (verified in place when it is there), then its links in the Hugging Face cache,
    where the agent resolves it by hub name offline (simdoctor.download.hfcache)."""
    b = state.settings.recipe.base_model
    planned = plan_weights(state, "base_model", b.repo, b.revision, b.local_dir)
    if planned is None:
        return None
    cache = hfcache.hub_cache(os.environ)

    def link() -> None:
        try:
            snapshot = hfcache.link(Path(b.local_dir), cache, b.revision)
        except (hfcache.CacheError, OSError) as exc:
            raise StepError(f"cannot put {b.repo} into the Hugging Face cache {cache}: {exc}") from None
        say(f"   {b.repo} resolves by name offline: {snapshot}")

    planned.actions.append(Action(f"link {b.local_dir} into the Hugging Face cache {cache} (no second copy)", link))
    return planned


def env_files(settings: Settings) -> dict[Path, str]:
    """The files `setup` writes: exactly what `simdoctor env` prints, one per shell family."""
    from simdoctor.config import shellenv
    from simdoctor.config.agentenv import agent_environment

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
        say(f"   load it in each new shell: `. {sh}` (bash, zsh) or `source {fish}` (fish)")

    first = next(iter(wanted))
    return Planned(
        "env",
        f"{stale[0]} is missing or out of date",
        [Action(f"write the output of `simdoctor env` to {', '.join(map(str, wanted))} (source {first})", write)],
    )


def step_sizes(planned: Planned, settings: Settings) -> None:
    """The recipe's estimates of what the step downloads and holds, and the folder whose disk it fills."""
    sizes = settings.recipe.disk.steps.get(planned.step)
    if sizes:
        planned.download_gib, planned.disk_gib = sizes[0], sizes[1]
    where = {
        "packages": Path("/"),
        "agent_env": Path(settings.recipe.agent.build.venv),
        "carla": settings.carla_root,
        "maps": settings.carla_root,
    }
    planned.disk_at = where.get(planned.step, settings.work_dir)


def plan(state: State, options: Options) -> list[Planned]:
    r = state.settings.recipe
    env = plan_agent_env(state, options.build)
    carla = plan_carla(state)
    steps = [
        plan_packages(state),
        plan_checkout(state),
        env,
        plan_client(state, env is not None),
        carla,
        plan_maps(state, carla is not None),
        plan_weights(state, "weights", r.weights.repo, r.weights.revision, r.weights.local_dir),
        plan_base_model(state),
        plan_env(state),
    ]
    planned = [p for p in steps if p is not None and (not options.only or p.step in options.only)]
    for p in planned:
        step_sizes(p, state.settings)
    return planned


# -- the command ---------------------------------------------------------------------------------


def totals(planned: list[Planned]) -> list[str]:
    """The plan's download and disk size, and a warning for each filesystem they would overfill."""
    download = sum(p.download_gib for p in planned)
    disk = sum(p.disk_gib for p in planned)
    if not download and not disk:
        return []
    lines = [f"about {download:.1f} GiB to download, {disk:.1f} GiB on disk (the recipe's estimates)"]
    by_device: dict[int, tuple[str, int, float]] = {}
    for p in planned:
        if p.disk_gib and p.disk_at is not None:
            d = disk_space(p.step, p.disk_at)
            where, free, need = by_device.get(d.device, (d.measured_at, d.free_bytes, 0.0))
            by_device[d.device] = (where, free, need + p.disk_gib)
    for where, free, need in by_device.values():
        if need * 2**30 > free:
            lines.append(
                f"warning: {need:.1f} GiB are needed on the filesystem of {where}, "
                f"which has {free / 2**30:.1f} GiB free: free space first or the steps will fail"
            )
    return lines


def show(planned: list[Planned]) -> None:
    for n, p in enumerate(planned, 1):
        fixes = f"  [fixes {', '.join(STEPS[p.step])}]" if STEPS[p.step] else ""
        size = f"  (about {p.download_gib:g} GiB to download)" if p.download_gib >= 0.1 else ""
        say(f"{n}. {p.step}: {p.reason}{fixes}{size}")
        for note in p.notes:
            say(f"   {note}")
        if p.blocked:
            say(f"   cannot run: {p.blocked}")
        for action in p.actions:
            say(f"   {action.show()}")
    for line in totals(planned):
        say(line)


def execute(planned: list[Planned]) -> list[str]:
    """Run the steps in order, each timed; returns the names of those that failed."""
    failed: list[str] = []
    for p in planned:
        say(f"-> {p.step}")
        if p.blocked or AFTER.get(p.step) in failed:
            say(f"   not run: {p.blocked or AFTER[p.step] + ' failed'}")
            failed.append(p.step)
            continue
        began = time.monotonic()
        try:
            for action in p.actions:
                say(f"   {action.show()}")
                action.run()
        except (StepError, DownloadError, OSError) as exc:
            say(f"   failed: {exc}")
            failed.append(p.step)
        say(f"   ({p.step}: {time.monotonic() - began:.1f} s)")
    return failed


def _confirm(count: int, options: Options) -> bool:
    if options.yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError("setup changes this machine: pass --yes to run it without a terminal")
    import typer

    return typer.confirm(f"Run these {count} step(s)?", default=False)


def user_args(options: Options) -> list[str]:
    """The user's setup: the same choices, less what root did itself."""
    only = [o for o in options.only if o not in ROOT_STEPS]
    args = ["--dry-run"] if options.dry_run else ["--yes"]
    args += [f"--only={','.join(only)}"] if only else []
    args += ["--no-torch"] if options.build.no_torch else []
    args += ["--flash-attn"] if options.build.flash_attn else []
    return [*args, *options.forwarded]


def run_as_root(state: State, options: Options) -> int:
    """Root installs the system packages, hands the stack to a normal user and runs the rest as them."""
    settings = state.settings
    setup = settings.recipe.platform.setup
    user = handoff.checked_user(options.user or setup.user)
    planned = [p for p in [plan_packages(state)] if p is not None and (not options.only or "packages" in options.only)]
    user_side = not options.only or any(o not in ROOT_STEPS for o in options.only)
    install = handoff.install_actions(setup, user) if user_side or "user" in options.only else []
    if install:
        planned.append(
            Planned("user", f"CARLA refuses root: the stack goes to {user}, in {rootfix.home_of(user)}", install)
        )
    for p in planned:
        step_sizes(p, settings)
    args = user_args(options)
    say(
        f"simdoctor setup · recipe {settings.recipe.name} · as root: {len(planned)} step(s) here"
        + (f", then the rest as {user}" if user_side else "")
    )
    show(planned)
    if user_side:
        say(f"{len(planned) + 1}. as {user}: $ {shlex.join(handoff.user_setup(settings, user, args))}")
    if options.dry_run:
        if user_side and rootfix.user_simdoctor(setup, user).exists():
            say(f"   {user}'s own plan:")
            handoff.run_user_setup(settings, user, args)
        return 0
    if not _confirm(len(planned) + int(user_side), options):
        say("cancelled; nothing was changed")
        return 1
    failed = execute(planned)
    if "user" in failed or (user_side and not rootfix.user_simdoctor(setup, user).exists()):
        say(f"setup: stopped before handing over to {user}: failed: {', '.join(failed)}")
        return 1
    code = 0
    if user_side:
        say(f"-> as {user}")
        code = handoff.run_user_setup(settings, user, args)
    say(
        f"setup as root: {len(planned) - len(failed)} step(s) done"
        + (f", failed: {', '.join(failed)}" if failed else "")
    )
    say(f"continue as {user}: {rootfix.continue_command(setup, user)}")
    return 1 if failed else code


def run(settings: Settings, options: Options) -> int:
    """`simdoctor setup`: plan from the findings, confirm once, run the steps, end with `check`."""
    state = gather(settings)
    if state.machine.root:
        return run_as_root(state, options)
    if options.user is not None:
        raise ConfigError("--user is for root: it names the normal user root hands the stack to")
    planned = plan(state, options)
    what = "step" + ("s " if len(options.only) > 1 else " ") + ", ".join(options.only) if options.only else None
    if not planned:
        say(
            f"nothing to do: {what + (' is' if len(options.only) == 1 else ' are') if what else 'every step is'} "
            "already done"
        )
    else:
        say(f"simdoctor setup · recipe {settings.recipe.name}: {len(planned)} step(s) to run")
        show(planned)
    if options.dry_run:
        return 0
    failed: list[str] = []
    if planned:
        if not _confirm(len(planned), options):
            say("cancelled; nothing was changed")
            return 1
        failed = execute(planned)
        say(f"setup: {len(planned) - len(failed)} step(s) done" + (f", failed: {', '.join(failed)}" if failed else ""))
    say("")
    code = diagnosis.run(with_config_agent_python(settings))  # an env setup made may be named there now
    return 1 if failed else code
