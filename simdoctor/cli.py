"""The `simdoctor` command line. Each command is thin: it parses options and calls one module."""

from __future__ import annotations

import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Annotated, Literal, NoReturn, Optional

import typer
import typer.core

from simdoctor import __version__, entry
from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import SETTINGS, Settings
from simdoctor.entry import EXIT_USAGE, Interrupted, items, settings_from


class _Group(typer.core.TyperGroup):
    def resolve_command(self, ctx, args):
        """A command's old option spellings become the new ones before click parses them (OLD_SPELLINGS); not while
        the shell completes a word (resilient parsing), where a note or a refusal would land in the shell."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, typer.core.TyperGroup) and not ctx.resilient_parsing:
            rest = _modernize(command, " ".join((*_path(ctx), name or "")), rest)
        return name, command, rest

    def invoke(self, ctx):
        """Typer turns a KeyboardInterrupt into a silent exit 130; pass it on as Interrupted, so main says so."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


app = typer.Typer(
    name="simdoctor",
    help="Diagnose, provision and run closed-loop CARLA evaluations of SimLingo on Bench2Drive.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_ENV = {setting.name: setting.env for setting in SETTINGS}


def _env(help_text: str, setting: str) -> str:
    """Name the environment variable the settings layer reads for a flag, in click's own "[default: ...]" style.

    Not click's envvar=: click would pass the value on as a flag and the finding would no longer say it came from
    the environment."""
    return f"{help_text}  [env var: {_ENV[setting]}]"


RecipeOpt = Annotated[
    Optional[str], typer.Option("--recipe", help="Recipe NAME or PATH to a .toml file.  [env var: SIMDOCTOR_RECIPE]")
]
CarlaRootOpt = Annotated[Optional[str], typer.Option("--carla-root", help=_env("CARLA package dir.", "carla_root"))]
WorkDirOpt = Annotated[Optional[str], typer.Option("--work-dir", help=_env("SimLingo checkout.", "work_dir"))]
AgentPythonOpt = Annotated[
    Optional[str], typer.Option("--agent-python", help=_env("Agent interpreter.", "agent_python"))
]
CarlaHostOpt = Annotated[Optional[str], typer.Option("--carla-host", help=_env("CARLA server host.", "carla_host"))]
CarlaPortOpt = Annotated[Optional[int], typer.Option("--carla-port", help=_env("CARLA server RPC port.", "carla_port"))]
PartitionOpt = Annotated[Optional[str], typer.Option("--partition", help=_env("Slurm partition.", "slurm_partition"))]
AccountOpt = Annotated[Optional[str], typer.Option("--account", help=_env("Slurm account.", "slurm_account"))]
QosOpt = Annotated[Optional[str], typer.Option("--qos", help=_env("Slurm QOS.", "slurm_qos"))]
BackendOpt = Annotated[
    Literal["process", "docker"], typer.Option("--backend", help="How CARLA runs: a process here, or in Docker.")
]


def _joined(values: Optional[list[str]]) -> Optional[str]:
    """A list option for a module that parses the comma-separated text itself (--gpus, --route-ids, --seeds):
    its repeats joined by commas, as `items` reads them, each as given (the module says what is wrong in it)."""
    return None if values is None else ",".join(values)


@dataclasses.dataclass(frozen=True)
class OldSpelling:
    """An option's spelling before the vocabulary was made one (issue 15), kept for one release: hidden from --help,
    rewritten to the new spelling before click parses, with one note on stderr (never stdout: --json stays JSON)."""

    old: str  # --timeout
    new: str  # --ready-timeout
    values: tuple[str, ...] = ()  # only these values map (run's --backend local|slurm); others are refused
    kept: tuple[str, ...] = ()  # values for which the old spelling is the option itself (check's --backend docker)
    flag_value: Optional[str] = None  # a flag that became a value: --slurm is --executor slurm
    refusal: str = ""  # why another value fits neither meaning


RUN_BACKEND = (
    "in run, --backend was where the routes run, now --executor local|slurm; how CARLA runs (--backend "
    "process|docker) is for check and carla start: run's evaluator starts its own"
)
CHECK_BACKEND = "how CARLA runs is --backend process|docker; where the routes run is --executor local|slurm"
OLD_SPELLINGS: dict[str, tuple[OldSpelling, ...]] = {
    "check": (
        OldSpelling("--slurm", "--executor", flag_value="slurm"),
        # run's old --backend local|slurm, typed at check: check's own --backend is process|docker
        OldSpelling("--backend", "--executor", ("local", "slurm"), kept=("process", "docker"), refusal=CHECK_BACKEND),
    ),
    "run": (OldSpelling("--backend", "--executor", ("local", "slurm"), refusal=RUN_BACKEND),),
    "download": (OldSpelling("--timeout", "--stall-timeout"),),
    "carla start": (OldSpelling("--timeout", "--ready-timeout"),),
}


def _path(ctx: typer.Context) -> tuple[str, ...]:
    """The command path below the program (`carla start`), whatever name the program was started by."""
    names: list[str] = []
    while ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return tuple(names)


def _modernize(command: typer.core.TyperCommand, path: str, args: list[str]) -> list[str]:
    """`args` with each old spelling of `path`'s options in its new one, and a note on stderr for each."""
    old = {o.old: o for o in OLD_SPELLINGS.get(path, ())}
    if not old:
        return args
    options = [p for p in command.params if isinstance(p, typer.core.TyperOption)]
    takes_value = {name for p in options if not p.is_flag and not p.count for name in p.opts}
    out: list[str] = []
    rest = iter(args)
    for token in rest:
        if token == "--":
            return [*out, token, *rest]
        name, eq, inline = token.partition("=")
        spelling = old.get(name) if token.startswith("--") else None
        if spelling is None:
            out += [token, *itertools.islice(rest, 1 if token in takes_value and not eq else 0)]
            continue
        value = spelling.flag_value or (inline if eq else next(rest, None))
        if value in spelling.kept:
            out += [token] if eq else [token, value]
            continue
        if value is not None and spelling.values and value not in spelling.values:
            raise ConfigError(f"{spelling.old} {value}: {spelling.refusal}")
        given = spelling.old if spelling.flag_value or value is None else f"{spelling.old} {value}"
        now = [spelling.new] if value is None else [spelling.new, value]
        typer.echo(f"note: {given} is deprecated; use {' '.join(now)} (the old spelling goes in the next release)",
                   err=True)  # fmt: skip
        out += now
    return out


def _version(value: bool) -> None:
    if value:
        typer.echo(f"simdoctor {__version__}")
        raise typer.Exit()


@app.callback(cls=_Group)
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """simdoctor: check, set up and run the stack. Start with `simdoctor check`."""


@app.command()
def check(
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the report.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show each finding's details.")] = False,
    only: Annotated[
        Optional[list[str]], typer.Option("--only", help="Only these check ids or groups; repeatable, comma-separated.")
    ] = None,
    skip: Annotated[
        Optional[list[str]], typer.Option("--skip", help="Leave out these check ids or groups; as --only.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Import torch and the agent for real in its interpreter.")
    ] = False,
    window: Annotated[bool, typer.Option("--window", help="Check for a visual session on DISPLAY.")] = False,
    viz: Annotated[bool, typer.Option("--viz", help="Also check what run --viz needs (font, H.264 encoder).")] = False,
    backend: BackendOpt = "process",
    list_checks: Annotated[bool, typer.Option("--list", help="List the checks and exit.")] = False,
    dump_facts: Annotated[
        Optional[Path], typer.Option("--dump-facts", help="Also write the gathered facts here.")
    ] = None,
    facts_file: Annotated[
        Optional[Path], typer.Option("--facts", help="Replay facts from a dump; probe nothing.")
    ] = None,
    recipe: RecipeOpt = None,
    carla_root: CarlaRootOpt = None,
    work_dir: WorkDirOpt = None,
    agent_python: AgentPythonOpt = None,
    carla_host: CarlaHostOpt = None,
    carla_port: CarlaPortOpt = None,
    executor: Annotated[
        Literal["local", "slurm"],
        typer.Option("--executor", help="Where the routes will run; slurm also checks the cluster."),
    ] = "local",
    probe: Annotated[
        bool, typer.Option("--probe", help="With --executor slurm: run a one-task probe job on a node.")
    ] = False,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="With --executor slurm: the run's output folder.")
    ] = None,
    partition: PartitionOpt = None,
    account: AccountOpt = None,
    qos: QosOpt = None,
) -> None:
    """Diagnose the whole stack in well under a second; exit 0 when nothing fails, 1 when something does."""
    raise typer.Exit(entry.check(**locals()))  # every parameter, as simdoctor.entry's own reader passes them


@app.command()
def run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan: slots, routes, each exact command and environment.")
    ] = False,
    routes: Annotated[
        Optional[Path], typer.Option("--routes", help="Routes XML with many routes, or a folder of route files.")
    ] = None,
    route_ids: Annotated[
        Optional[list[str]],
        typer.Option("--route-ids", help="Only these route ids / A-B ranges; repeatable, comma-separated."),
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder; rerunning with it resumes.")] = None,
    gpus: Annotated[
        Optional[list[str]], typer.Option("--gpus", help="GPU indexes (0,1; repeatable), all (default), or none.")
    ] = None,
    workers_per_gpu: Annotated[
        Optional[str], typer.Option("--workers-per-gpu", help="Workers per GPU: N or auto.")
    ] = None,
    route_timeout: Annotated[
        Optional[float], typer.Option("--route-timeout", help="Wall-clock seconds per route attempt.")
    ] = None,
    retries: Annotated[Optional[int], typer.Option("--retries", help="Retries after infrastructure failures.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Traffic manager seed.")] = None,
    seeds: Annotated[
        Optional[list[str]],
        typer.Option("--seeds", help="Run the routes once per seed (1,2,3: SimLingo's protocol) into OUT/seed-N/."),
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming.")] = False,
    viz: Annotated[bool, typer.Option("--viz", help="Record SimLingo's own view of each route as a video.")] = False,
    viz_every: Annotated[
        Optional[int], typer.Option("--viz-every", help="Draw every N-th step (a multiple of 5); implies --viz.")
    ] = None,
    keep_frames: Annotated[bool, typer.Option("--keep-frames", help="With --viz: keep the PNG frames.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    executor: Annotated[
        Literal["local", "slurm"],
        typer.Option("--executor", help="Where the routes run: this machine's GPUs, or Slurm job arrays."),
    ] = "local",
    partition: PartitionOpt = None,
    account: AccountOpt = None,
    qos: QosOpt = None,
    time_limit: Annotated[
        Optional[str], typer.Option("--time", help="Slurm: each task's time limit (default: route timeout + margin).")
    ] = None,
    max_concurrent: Annotated[
        Optional[int], typer.Option("--max-concurrent", help="Slurm: at most N tasks of this run at once.")
    ] = None,
    gpus_per_task: Annotated[
        Optional[int], typer.Option("--gpus-per-task", help="Slurm: GPUs per task, 1 (default) or 0.")
    ] = None,
    cpus_per_task: Annotated[
        Optional[int], typer.Option("--cpus-per-task", help="Slurm: CPUs per task (default: the recipe's worker).")
    ] = None,
    mem: Annotated[
        Optional[str], typer.Option("--mem", help="Slurm: memory per task, e.g. 40G (default: the recipe's worker).")
    ] = None,
    on_interrupt: Annotated[
        Optional[Literal["cancel", "leave"]],
        typer.Option("--on-interrupt", help="Slurm, on Ctrl-C: cancel the jobs or leave them (default: ask on a TTY)."),
    ] = None,
    recipe: RecipeOpt = None,
    carla_root: CarlaRootOpt = None,
    work_dir: WorkDirOpt = None,
    agent_python: AgentPythonOpt = None,
) -> None:
    """Drive the Bench2Drive routes over the GPUs: one evaluator per route on a worker slot, retried, resumable."""
    from simdoctor.run import runplan, supervisor
    from simdoctor.run.seeds import runner as seeds_runner

    settings = settings_from(
        recipe, carla_root=carla_root, work_dir=work_dir, agent_python=agent_python,
        slurm_partition=partition, slurm_account=account, slurm_qos=qos,
    )  # fmt: skip
    gpus_text = _joined(gpus)
    options = runplan.Options(
        routes=routes, route_ids=_joined(route_ids) or "", out=out, gpus=gpus_text,
        workers_per_gpu=workers_per_gpu or "auto",
        route_timeout_s=route_timeout, retries=retries, seed=seed, fresh=fresh,
        viz_every=_viz_every(viz, viz_every, keep_frames, settings), keep_frames=keep_frames,
    )  # fmt: skip
    slurm_only = {"--partition": partition, "--account": account, "--qos": qos, "--time": time_limit,
                  "--max-concurrent": max_concurrent, "--gpus-per-task": gpus_per_task,
                  "--cpus-per-task": cpus_per_task, "--mem": mem, "--on-interrupt": on_interrupt}  # fmt: skip
    each = seeds_runner(_joined(seeds), seed, options, settings, json_out)
    if executor == "slurm":
        from simdoctor.run.slurm import backend as slurm_backend

        local_only = [name for name, value in (("--gpus", gpus_text), ("--workers-per-gpu", workers_per_gpu)) if value]
        if local_only:
            raise ConfigError(f"{', '.join(local_only)}: with --executor slurm, Slurm gives each task its GPU "
                              "(--gpus-per-task) and runs as many tasks as it can (--max-concurrent)")  # fmt: skip
        opts = slurm_backend.SlurmOptions(
            time=time_limit, max_concurrent=max_concurrent, gpus_per_task=1 if gpus_per_task is None else gpus_per_task,
            cpus_per_task=cpus_per_task, mem=mem, on_interrupt=on_interrupt,
        )  # fmt: skip
        if dry_run:
            raise typer.Exit(each(lambda o: slurm_backend.dry_run(settings, o, opts, json_out=json_out), False))
        raise typer.Exit(each(lambda o: _refusable(lambda _: slurm_backend.run(settings, o, opts, json_out), json_out)))
    given = [name for name, value in slurm_only.items() if value is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: only with --executor slurm")
    if dry_run:
        raise typer.Exit(each(lambda o: runplan.dry_run(settings, o, json_out=json_out), False))
    raise typer.Exit(each(lambda o: _refusable(lambda _: supervisor.run(settings, o, json_out=json_out), json_out)))


def _viz_every(viz: bool, every: Optional[int], keep_frames: bool, settings: Settings) -> Optional[int]:
    """--viz-every implies --viz; --keep-frames needs it."""
    if keep_frames and not (viz or every is not None):
        raise ConfigError("--keep-frames: only with --viz")
    if every is None:
        return settings.recipe.viz.every if viz else None
    return every


@app.command("run-task", hidden=True)
def run_task(
    spec: Annotated[Path, typer.Argument(help="<out>/slurm/<n>/spec.json of the array job.")],
    index: Annotated[Optional[int], typer.Argument(help="Array index (default: $SLURM_ARRAY_TASK_ID).")] = None,
) -> None:
    """One Slurm array task (the job script runs it on the node): one attempt at the route of its index."""
    from simdoctor.run.slurm import node

    raise typer.Exit(_refusable(lambda output: node.run_task(spec, index)))


@app.command()
def download(
    source: Annotated[str, typer.Argument(metavar="REPO_ID|URL", help="owner/name on the Hub, or an http(s) URL.")],
    local_dir: Annotated[Path, typer.Option("--local-dir", help="Where the files go (created if needed).")],
    revision: Annotated[
        Optional[str], typer.Option("--revision", help="Branch, tag or commit (default: main).")
    ] = None,
    repo_type: Annotated[Literal["model", "dataset"], typer.Option("--repo-type", help="Hub repo type.")] = "model",
    include: Annotated[
        Optional[list[str]], typer.Option("--include", help="Only paths matching this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option("--exclude", help="Leave out paths matching this glob (repeatable).")
    ] = None,
    endpoint: Annotated[
        Optional[str], typer.Option("--endpoint", help=_env("Hub endpoint or mirror.", "hf_endpoint"))
    ] = None,
    connections: Annotated[int, typer.Option("--connections", help="Parallel HTTP connections.")] = 32,
    chunk_mib: Annotated[int, typer.Option("--chunk-mib", help="Largest byte range, in MiB.")] = 16,
    stall_timeout: Annotated[
        float, typer.Option("--stall-timeout", help="Seconds without a byte before a connection is retried.")
    ] = 30.0,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries of a file that fails again and again without progress.")
    ] = 8,
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="Re-hash the files against the pinned hashes; no download.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object with the result.")] = False,
    recipe: RecipeOpt = None,
) -> None:
    """Download a Hub repo pinned to a commit (or a plain URL): parallel, resumable, verified."""
    from simdoctor.download import command

    request = command.Request(
        source=source, local_dir=local_dir, revision=revision, repo_type=repo_type,
        include=tuple(include or ()), exclude=tuple(exclude or ()), endpoint=endpoint,
        connections=connections, chunk_mib=chunk_mib, timeout=stall_timeout, retries=retries, verify_only=verify_only,
    )  # fmt: skip
    raise typer.Exit(command.run(settings_from(recipe), request, json_out))


@app.command()
def env(
    fmt: Annotated[Literal["bash", "fish", "json"], typer.Option("--format", help="bash serves zsh too.")] = "bash",
    recipe: RecipeOpt = None,
    carla_root: CarlaRootOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """Print the environment the evaluator and the agent need (eval "$(simdoctor env)")."""
    from simdoctor.config import shellenv
    from simdoctor.config.agentenv import agent_environment

    settings = settings_from(recipe, carla_root=carla_root, work_dir=work_dir)
    typer.echo(shellenv.render(agent_environment(settings), fmt), nl=False)


@app.command()
def setup(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan with every command; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Run without asking.")] = False,
    only: Annotated[
        Optional[list[str]], typer.Option("--only", help="Only these steps; repeatable, comma-separated.")
    ] = None,
    user: Annotated[
        Optional[str], typer.Option("--user", help="As root: the normal user the stack goes to (default carla).")
    ] = None,
    no_torch: Annotated[
        bool, typer.Option("--no-torch", help="Resolve torch for the agent env, install neither it nor what needs it.")
    ] = False,
    flash_attn: Annotated[bool, typer.Option("--flash-attn", help="Also install flash-attn (optional).")] = False,
    recipe: RecipeOpt = None,
    carla_root: CarlaRootOpt = None,
    work_dir: WorkDirOpt = None,
    agent_python: AgentPythonOpt = None,
) -> None:
    """Provision from bare: system packages, the SimLingo checkout and its Python 3.8 env, CARLA and its maps,
    the weights, the env file; as root, for a normal user."""
    from simdoctor.provision import agentbuild
    from simdoctor.provision import setup as provision

    steps = items(only, "--only", provision.STEPS, "step", f"the steps are {', '.join(provision.STEPS)}")
    settings = settings_from(recipe, carla_root=carla_root, work_dir=work_dir, agent_python=agent_python)
    given = {"--recipe": recipe, "--carla-root": carla_root, "--work-dir": work_dir, "--agent-python": agent_python}
    options = provision.Options(
        dry_run=dry_run, yes=yes, only=steps, user=user,
        build=agentbuild.Options(no_torch=no_torch, flash_attn=flash_attn),
        forwarded=tuple(f"{flag}={value}" for flag, value in given.items() if value is not None),
    )  # fmt: skip
    raise typer.Exit(provision.run(settings, options))


@app.command()
def report(
    out: Annotated[Path, typer.Argument(help="A `simdoctor run` output folder.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the report.")] = False,
    html: Annotated[bool, typer.Option("--html", help="Also write OUT/report.html (offline: plots, videos).")] = False,
    recipe: RecipeOpt = None,
) -> None:
    """Driving Score, Success Rate and the agent's speed over a run's routes; writes OUT/merged.json."""
    from simdoctor.run import htmlreport
    from simdoctor.run import report as route_report

    settings = settings_from(recipe)
    names = settings.recipe.run
    if html:
        htmlreport.require_run_folder(out, names)
        htmlreport.require_plotting()
    code = route_report.run(out, names, json_out=json_out, settings=settings)  # seeds: each seed's, then their mean
    if html:
        page = htmlreport.write(out, names)
        (sys.stderr if json_out else sys.stdout).write(f"HTML report: {page}\n")
    raise typer.Exit(code)


@app.command()
def watch(
    out: Annotated[Path, typer.Argument(help="A `simdoctor run` output folder (the run may be going on).")],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (default loopback; the token is always needed).")
    ] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option("--port", help="Port (default: the first free from 8765).")] = None,
    recipe: RecipeOpt = None,
) -> None:
    """Watch a run live in a browser: each slot's newest frame, SimLingo's answer, speed, progress, DS so far."""
    from simdoctor.run import watch as live

    settings = settings_from(recipe)
    raise typer.Exit(live.run(out, settings.recipe.run, host=host, port=port))


carla_app = typer.Typer(
    cls=_Group,
    help="Start, inspect and stop CARLA servers (on the GPU you name, verified).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(carla_app, name="carla")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object with the result.")]


def _gpu(value: str) -> Optional[int]:
    if value.lower() == "none":
        return None
    if not value.isdigit():
        raise ConfigError(f"--gpu takes an nvidia-smi index or none, not {value!r}")
    return int(value)


def _port(value: str) -> Optional[int]:
    if value.lower() == "auto":
        return None
    if not value.isdigit() or not 1 <= int(value) <= 65533:
        raise ConfigError(f"--port takes a port number (1-65533) or auto, not {value!r}")
    return int(value)


def _refusable(call, json_out: bool = False) -> int:
    """Run one command (`run`, a `carla` subcommand); a Refusal prints its reason and fix and exits 1."""
    from simdoctor.carla import output
    from simdoctor.carla.errors import Refusal

    try:
        return call(output)
    except Refusal as exc:
        output.refusal(exc, json_out, out=sys.stdout)  # the current one: run --seeds --json collects it
        return 1


@carla_app.command("start")
def carla_start(
    gpu: Annotated[str, typer.Option("--gpu", help="GPU index as nvidia-smi counts, or none.")] = "0",
    port: Annotated[str, typer.Option("--port", help="RPC port P (P+1, P+2 too), or auto.")] = "auto",
    quality: Annotated[Optional[str], typer.Option("--quality", help="Low or Epic (default: the recipe's).")] = None,
    window: Annotated[bool, typer.Option("--window", help="Open a window on DISPLAY instead of off-screen.")] = False,
    backend: BackendOpt = "process",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the server answers.")] = True,
    ready_timeout: Annotated[
        Optional[float],
        typer.Option("--ready-timeout", help="Seconds --wait waits for an answer (default: the recipe's)."),
    ] = None,
    json_out: JsonOpt = False,
    recipe: RecipeOpt = None,
    carla_root: CarlaRootOpt = None,
    carla_port: Annotated[
        Optional[int], typer.Option("--carla-port", help=_env("Where --port auto starts.", "carla_port"))
    ] = None,
) -> None:
    """Start CARLA on a GPU, wait until it answers, and prove it renders there."""
    from simdoctor.carla import lifecycle

    settings = settings_from(recipe, carla_root=carla_root, carla_port=carla_port)
    opts = lifecycle.StartOptions(_gpu(gpu), _port(port), quality, window, backend, wait, ready_timeout)

    def call(output) -> int:
        result = lifecycle.start(settings, opts)
        output.start(result, json_out)
        return result.exit_code

    raise typer.Exit(_refusable(call, json_out))


@carla_app.command("status")
def carla_status(json_out: JsonOpt = False, recipe: RecipeOpt = None) -> None:
    """List simdoctor's servers and any other CARLA server on this machine."""
    from simdoctor.carla import lifecycle

    settings = settings_from(recipe)

    def call(output) -> int:
        output.status(lifecycle.status(settings), json_out)
        return 0

    raise typer.Exit(_refusable(call, json_out))


@carla_app.command("stop")
def carla_stop(
    ids: Annotated[
        Optional[list[str]], typer.Argument(help="Server IDs (their RPC ports).", show_default=False)
    ] = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Every server simdoctor started here.")] = False,
    orphans: Annotated[bool, typer.Option("--orphans", help="Also CARLA servers simdoctor did not start.")] = False,
    grace: Annotated[
        Optional[float], typer.Option("--grace", help="Seconds between TERM and KILL (default: the recipe's).")
    ] = None,
    json_out: JsonOpt = False,
    recipe: RecipeOpt = None,
) -> None:
    """Stop servers: the launcher and the shipping binary, TERM then KILL; verified gone."""
    from simdoctor.carla import lifecycle

    settings = settings_from(recipe)

    def call(output) -> int:
        done = lifecycle.stop(settings, list(ids or []), all_servers, orphans, grace)
        output.stopped(done, json_out)
        return 0 if all(s.clean for s in done) else 1

    raise typer.Exit(_refusable(call, json_out))


@carla_app.command("logs")
def carla_logs(
    server_id: Annotated[str, typer.Argument(metavar="ID", help="Server ID (its RPC port).")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing as the log grows.")] = False,
    recipe: RecipeOpt = None,
) -> None:
    """Print a server's log."""
    from simdoctor.carla import lifecycle

    settings = settings_from(recipe)

    def call(output) -> int:
        lifecycle.logs(settings, server_id, follow)
        return 0

    raise typer.Exit(_refusable(call))


def main() -> NoReturn:
    """The typer app's entry (simdoctor.entry sends every command line here but a plain `check`): typer's usage
    errors are one line too, an abort is an interrupt."""
    entry.guarded(_typer_app)


def _typer_app() -> object:
    try:
        return app(standalone_mode=False)
    except typer.Abort:
        raise Interrupted() from None
    except typer.BadParameter as exc:  # a value that is not one of the choices, or not a number: one line
        raise ConfigError(exc.format_message()) from None
    except typer.TyperException as exc:  # usage errors: unknown option
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"simdoctor: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
