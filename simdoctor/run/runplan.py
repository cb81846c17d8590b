"""The plan of `simdoctor run`: worker slots (a GPU and its own CARLA ports), one task per route, and the
exact evaluator command and environment of each task on a slot.

The evaluator command is SimLingo's per-route job (start_eval_simlingo.py, reference §1.4) plus
`--gpu-rank`, run from the SimLingo checkout (the agent resolves `pretrained/InternVL2-1B` against the
working directory) with the timing wrapper as `--agent`. The supervisor (simdoctor/run/supervisor.py) calls
`launch()` for the slot and ports an attempt gets, and `prepare()` before the first launch.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from simdoctor import scripts
from simdoctor.carla.errors import Refusal
from simdoctor.config.agentenv import agent_environment
from simdoctor.config.recipe import ConfigError, VizRecipe
from simdoctor.config.settings import Settings
from simdoctor.config.typed import to_data
from simdoctor.doctor.findings import Finding, Fix, Status
from simdoctor.doctor.gpumap import adapter_map
from simdoctor.doctor.probes.agent import resolve_python
from simdoctor.doctor.probes.carla import carla_root_problem
from simdoctor.doctor.probes.gpu import GpuDevice, GpuFacts
from simdoctor.doctor.probes.ports import bindable, worker_ports
from simdoctor.doctor.probes.viz import pillow_lookup
from simdoctor.doctor.probes.vulkan import VkDevice
from simdoctor.doctor.probing import Facts
from simdoctor.run import results, routes
from simdoctor.run.outdir import Layout
from simdoctor.run.viz import font
from simdoctor.scripts.timed_agent import AGENT_FILE_ENV, STEPS_FILE_ENV, VIZ_EVERY_ENV, VIZ_FILE_ENV, VIZ_FLAG_ENV
from simdoctor.system import atomic, strictjson, terminal

PLAN_SCHEMA_VERSION = 1
RUN_SCHEMA_VERSION = 1
# The checks whose failure means CARLA cannot render on the GPUs (the same findings `check` prints).
GPU_CHECKS = ("gpu.driver", "gpu.devices", "vulkan.loader", "vulkan.devices", "vulkan.adapter_map")


class RunError(Exception):
    """The machine cannot run the plan (no free ports, no GPU memory): one line, exit 1."""


@dataclass(frozen=True)
class Options:
    """`simdoctor run`'s options; None takes the recipe's default."""

    routes: Optional[Path] = None
    route_ids: str = ""
    out: Optional[Path] = None
    gpus: Optional[str] = None  # "0,1", "none"; None: every GPU NVML sees
    workers_per_gpu: str = "auto"
    route_timeout_s: Optional[float] = None
    retries: Optional[int] = None
    seed: Optional[int] = None
    fresh: bool = False
    viz_every: Optional[int] = None  # --viz: SimLingo's own drawing every N-th step (None: off)
    keep_frames: bool = False


@dataclass(frozen=True)
class Slot:
    """A place one task runs at a time: a GPU (or none) and the CARLA ports of its server."""

    index: int
    gpu: Optional[int]  # NVML index (nvidia-smi order); None: a slot without a GPU (--gpus none)
    gpu_uuid: Optional[str]
    gpu_name: Optional[str]
    graphics_adapter: Optional[int]  # the GPU's Vulkan index: --gpu-rank, CARLA's -graphicsadapter
    ports: dict[str, int]  # rpc, streaming, secondary, traffic_manager (probes.ports.carla_ports)


@dataclass(frozen=True)
class Task:
    route: routes.Route
    route_file: str
    results_file: str  # the evaluator's --checkpoint
    steps_file: str
    viz_dir: str
    log_file: str
    task_file: str
    finished: bool = False  # a resumed run skips it (results.finished); never with --fresh
    frames_file: str = ""  # --viz: the wrapper's frame log


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]  # set on top of simdoctor's own environment
    cwd: str


@dataclass(frozen=True)
class Plan:
    out: str
    routes_source: str
    python: str
    evaluator: str
    agent_file: str  # the user's agent, loaded by the timing wrapper
    wrapper: str  # the evaluator's --agent
    checkpoint: str
    track: str
    seed: int
    retries: int
    route_timeout_s: float
    evaluator_timeout_s: float
    cwd: str
    environment: dict[str, str]  # agentenv.agent_environment: the same for every task
    slots: list[Slot]
    tasks: list[Task]
    notes: list[str] = field(default_factory=list)
    viz_every: Optional[int] = None  # --viz-every; None: no drawing
    keep_frames: bool = False
    viz_share: str = ""  # put first on the agent's XDG_DATA_DIRS (fonts/arial.ttf)
    viz_flag: str = "DEBUG"  # the agent module's drawing switch

    @property
    def pending(self) -> list[Task]:
        return [t for t in self.tasks if not t.finished]


@dataclass(frozen=True)
class RunInfo:
    """<out>/run.json: what the results in this folder were produced with, so a resume cannot mix runs."""

    recipe: str
    seed: int
    agent_file: str
    checkpoint: str
    schema_version: int = RUN_SCHEMA_VERSION


def parse_gpus(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """None: every GPU; (): none; else the NVML indexes, in the given order."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    if text.strip().lower() == "none":
        return ()
    try:
        indexes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--gpus {text!r}: give GPU indexes like 0,1 (nvidia-smi order), all, or none") from None
    if not indexes or any(i < 0 for i in indexes) or len(set(indexes)) != len(indexes):
        raise ConfigError(f"--gpus {text!r}: give distinct GPU indexes like 0,1, all, or none")
    return indexes


def parse_workers(text: str, most: int) -> Optional[int]:
    """None: auto (the GPU's free memory over one worker's need); at most `most` (the recipe's bound)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise ConfigError(f"--workers-per-gpu {text!r}: give a number from 1 to {most} (the recipe's "
                          "run.max_workers_per_gpu: each worker is a CARLA server and an agent), or auto")  # fmt: skip
    return value


def gpu_gate(
    findings: list[Finding], gpus: Optional[GpuFacts], devices: list[VkDevice], selected: Optional[tuple[int, ...]]
) -> list[Finding]:
    """The findings that stop a run: any failure of GPU_CHECKS (or of their probes), except an unmapped
    GPU that was not selected."""
    mapping = adapter_map(gpus.gpus, devices) if gpus is not None and not gpus.nvml_error else {}
    wanted = set(mapping) if selected is None else set(selected)
    fatal = []
    for f in findings:
        if f.status is not Status.FAIL:
            continue
        if f.id == "vulkan.adapter_map" and all(mapping.get(i) is not None for i in wanted if i in mapping):
            continue
        fatal.append(f)
    return fatal


def vulkan_devices(facts: Facts) -> list[VkDevice]:
    v = facts.get("vulkan")
    enumeration = getattr(v, "enumeration", None)
    return list(enumeration.devices) if enumeration is not None and enumeration.ok else []


def plan_slots(
    settings: Settings,
    selected: Optional[tuple[int, ...]],
    workers: Optional[int],
    gpus: Optional[GpuFacts],
    devices: list[VkDevice],
    taken: frozenset[int] = frozenset(),
    is_free: Callable[[int], bool] = bindable,
) -> tuple[list[Slot], list[str]]:
    """Slots ordered worker-major (GPU 0, GPU 1, GPU 0, ...) so the first tasks spread over the GPUs."""
    recipe = settings.recipe
    notes: list[str] = []
    if selected == ():
        counts: list[tuple[Optional[GpuDevice], int]] = [(None, workers or 1)]
    else:
        if gpus is None or gpus.nvml_error:
            raise RunError("no NVIDIA GPU to plan on: `simdoctor check --only gpu` says why, or pass --gpus none")
        by_index = {g.index: g for g in gpus.gpus}
        unknown = [i for i in (selected or ()) if i not in by_index]
        if unknown:
            known = ", ".join(map(str, by_index)) or "none"
            raise ConfigError(f"--gpus: no GPU {', '.join(map(str, unknown))} (NVML sees {known})")
        need = recipe.worker.gpu_memory_gib * 2**30
        counts = []
        for index in selected if selected is not None else sorted(by_index):
            gpu = by_index[index]
            count = workers if workers is not None else int(gpu.memory_free_bytes // need)
            free = f"{gpu.memory_free_bytes / 2**30:.1f} GiB free"
            if workers is None and count == 0:
                notes.append(f"GPU {index}: {free}, less than the {recipe.worker.gpu_memory_gib:g} GiB a worker needs")
            elif workers is not None and gpu.memory_free_bytes < count * need:
                notes.append(f"GPU {index}: {free} for {count} workers of {recipe.worker.gpu_memory_gib:g} GiB each")
            counts.append((gpu, count))
        if not any(c for _, c in counts):
            raise RunError(
                f"no selected GPU has the {recipe.worker.gpu_memory_gib:g} GiB one worker needs free "
                "(see `simdoctor check --only gpu`); free GPU memory or pass --workers-per-gpu N"
            )
    mapping = adapter_map(gpus.gpus, devices) if gpus is not None and not gpus.nvml_error else {}
    total = sum(c for _, c in counts)
    try:
        port_sets = worker_ports(recipe.carla, total, recipe.run.port_base, taken, is_free)
    except RuntimeError as exc:
        raise RunError(str(exc)) from None
    slots: list[Slot] = []
    for round_ in range(max(c for _, c in counts)):
        for gpu, count in counts:
            if round_ >= count:
                continue
            adapter = mapping.get(gpu.index) if gpu is not None else None
            if gpu is not None and adapter is None:
                raise RunError(f"Vulkan does not list GPU {gpu.index}: CARLA cannot render there (vulkan.adapter_map)")
            slots.append(
                Slot(
                    index=len(slots),
                    gpu=gpu.index if gpu else None,
                    gpu_uuid=gpu.uuid if gpu else None,
                    gpu_name=gpu.name if gpu else None,
                    graphics_adapter=adapter,
                    ports=port_sets[len(slots)],
                )
            )
    return slots, notes


def out_layout(settings: Settings, options: Options) -> Layout:
    return Layout(Path(options.out or settings.recipe.run.out_dir).expanduser().resolve(), settings.recipe.run)


def run_info(settings: Settings, seed: int) -> RunInfo:
    return RunInfo(settings.recipe.name, seed, settings.recipe.agent.file, _checkpoint(settings))


def _checkpoint(settings: Settings) -> str:
    weights = settings.recipe.weights
    return str(Path(weights.local_dir) / weights.checkpoint)


def _read_run_info(path: Path) -> Optional[dict]:
    try:
        data = strictjson.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return data if isinstance(data, dict) else {}


def check_out(layout: Layout, info: RunInfo, texts: list[routes.RouteText], fresh: bool) -> None:
    """Refuse a folder that is a file, or to resume into one whose results were produced otherwise (seed,
    agent, routes)."""
    if layout.root.exists() and not layout.root.is_dir():
        raise ConfigError(f"--out {layout.root} is a file, not a folder: pass a folder (it is made when missing)")
    if fresh:
        return
    earlier = _read_run_info(layout.run_file)
    if earlier is not None:
        differ = [k for k, v in to_data(info).items() if earlier.get(k) != v]
        if differ:
            was = ", ".join(f"{k} {earlier.get(k)!r}" for k in differ)
            raise ConfigError(
                f"{layout.root} holds a run with {was} ({layout.run_file}); "
                "rerun with the same options, --fresh to start over, or another --out"
            )
    stale = routes.changed(texts, layout.routes_dir)
    if stale:
        ids = ", ".join(t.route.id for t in stale[:5])
        raise ConfigError(
            f"route {ids} differs from the one {layout.root} was run with ({layout.routes_dir}); "
            "use --fresh to start over, or another --out"
        )


def build(
    settings: Settings,
    options: Options,
    slots: list[Slot],
    notes: Optional[list[str]] = None,
) -> tuple[Plan, list[routes.RouteText]]:
    """The plan for these slots: tasks for the selected routes, marked finished where a resume skips them."""
    recipe = settings.recipe
    source = options.routes or Path(recipe.routes.file)
    texts = routes.select(routes.read_routes(source), options.route_ids)
    layout = out_layout(settings, options)
    seed = recipe.run.seed if options.seed is None else options.seed
    retries = recipe.run.retries if options.retries is None else options.retries
    timeout = recipe.run.route_timeout_s if options.route_timeout_s is None else options.route_timeout_s
    if retries < 0:
        raise ConfigError(f"--retries {retries}: give 0 or more")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigError(f"--route-timeout {timeout:g}: give a number of seconds > 0")
    problem = carla_root_problem(str(settings.carla_root))
    if problem:
        raise ConfigError(f"{problem}; `simdoctor check --only carla.root` says how to fix it")
    info = run_info(settings, seed)
    check_out(layout, info, texts, options.fresh)
    python, tried = resolve_python(settings)
    if python is None:
        raise ConfigError(
            f"no agent interpreter found (tried {', '.join(tried)}): make SimLingo's environment with "
            "`simdoctor setup --only checkout,agent_env` (as check says), or pass --agent-python "
            "(or set SIMDOCTOR_AGENT_PYTHON)"
        )
    python = os.path.abspath(python)  # the evaluator runs in the SimLingo checkout; keep venv symlinks
    tasks = []
    for text in texts:
        route_id = text.route.id
        done = not options.fresh and results.finished(
            results.read_results(layout.results_file(route_id)), results.read_task(layout.task_file(route_id))
        )
        tasks.append(
            Task(
                route=text.route,
                route_file=str(layout.route_file(route_id)),
                results_file=str(layout.results_file(route_id)),
                steps_file=str(layout.steps_file(route_id)),
                viz_dir=str(layout.viz_dir(route_id)),
                log_file=str(layout.log_file(route_id)),
                task_file=str(layout.task_file(route_id)),
                finished=done,
                frames_file=str(layout.frames_file(route_id)),
            )
        )
    agent = recipe.agent
    notes = list(notes or [])
    if os.geteuid() == 0:
        notes.append(
            "running as root: `simdoctor run` refuses to start, as CARLA refuses root; run it as a normal user"
        )
    for what, path in (("evaluator", agent.evaluator), ("agent file", agent.file), ("checkpoint", info.checkpoint)):
        if not Path(path).is_file():
            notes.append(f"the {what} {path} does not exist yet (simdoctor check says what to do)")
    plan = Plan(
        out=str(layout.root),
        routes_source=str(Path(source).expanduser()),
        python=python,
        evaluator=agent.evaluator,
        agent_file=agent.file,
        wrapper=scripts.path("timed_agent.py"),
        checkpoint=info.checkpoint,
        track=agent.track,
        seed=seed,
        retries=retries,
        route_timeout_s=float(timeout),
        evaluator_timeout_s=recipe.run.evaluator_timeout_s,
        cwd=str(settings.work_dir),
        environment=agent_environment(settings),
        slots=slots,
        tasks=tasks,
        notes=notes,
        viz_every=check_viz_every(options.viz_every, recipe.viz),
        keep_frames=options.keep_frames,
        viz_share=str(layout.share_dir),
        viz_flag=recipe.viz.debug_flag,
    )
    return plan, texts


def check_viz_every(every: Optional[int], viz: VizRecipe) -> Optional[int]:
    """--viz-every: SimLingo draws only when `self.step % 5 == 0` (agent_simlingo.py:691), so the wrapper can
    choose among those steps, not add others."""
    if every is not None and (every <= 0 or every % viz.every):
        raise ConfigError(
            f"--viz-every {every}: give a multiple of {viz.every} (SimLingo draws only on steps that are multiples "
            f"of {viz.every}; the wrapper picks among them)"
        )
    return every


def launch(plan: Plan, task: Task, slot: Slot) -> Launch:
    """The exact command, environment and working directory of `task` on `slot`."""
    argv = [
        plan.python,
        plan.evaluator,
        f"--routes={task.route_file}",
        "--repetitions=1",
        f"--track={plan.track}",
        f"--checkpoint={task.results_file}",
        f"--timeout={plan.evaluator_timeout_s:g}",
        f"--agent={plan.wrapper}",
        f"--agent-config={plan.checkpoint}",
        f"--traffic-manager-seed={plan.seed}",
        f"--port={slot.ports['rpc']}",
        f"--traffic-manager-port={slot.ports['traffic_manager']}",
    ]
    if slot.graphics_adapter is not None:
        argv.append(f"--gpu-rank={slot.graphics_adapter}")
    env = dict(plan.environment)
    env["SAVE_PATH"] = task.viz_dir.rstrip("/") + "/"  # the agent appends the save name without a separator
    env["ROUTES"] = task.route_file  # agent_simlingo.py line 113: names its debug folder after the route file's stem
    if slot.gpu is not None:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's own order is fastest-first, NVML's is PCI
        env["CUDA_VISIBLE_DEVICES"] = str(slot.gpu)
    env[AGENT_FILE_ENV] = plan.agent_file
    env[STEPS_FILE_ENV] = task.steps_file
    if plan.viz_every:
        env[VIZ_EVERY_ENV] = str(plan.viz_every)
        env[VIZ_FILE_ENV] = task.frames_file
        env[VIZ_FLAG_ENV] = plan.viz_flag
        env["XDG_DATA_DIRS"] = font.data_dirs(Path(plan.viz_share), {**os.environ, **env})
    env["PYTHONUNBUFFERED"] = "1"  # the log shows each line as it happens (start_eval uses python -u)
    return Launch(argv, env, plan.cwd)


def prepare(plan: Plan, texts: list[routes.RouteText], settings: Settings) -> None:
    """Write what the evaluators read before the first launch: run.json and the per-route files."""
    layout = Layout(Path(plan.out), settings.recipe.run)
    atomic.write_json(layout.run_file, to_data(run_info(settings, plan.seed)))
    routes.write_route_files(texts, layout.routes_dir)
    viz = settings.recipe.viz
    if (  # a local run's gate said so already; --executor slurm gets here
        plan.viz_every
        and font.provide(layout.share_dir, viz) is None
        and pillow_lookup(viz.font_name, Path(plan.cwd), dict(os.environ)) is None
    ):
        raise Refusal(
            f"run --viz: no font named {viz.font_name} for SimLingo's drawing and none of {', '.join(viz.fonts)} "
            "to give it: every route would fail as 'Agent crashed'",
            Fix("See what to install.", ["simdoctor check --viz --only viz"]),
        )


# --- dry run ----------------------------------------------------------------------------------------


def _initial(plan: Plan) -> list[tuple[Task, Slot]]:
    """The first assignment: pending tasks to slots in turn (later, slots take tasks as they free up)."""
    return [(task, plan.slots[i % len(plan.slots)]) for i, task in enumerate(plan.pending)] if plan.slots else []


def plan_json(plan: Plan) -> str:
    launches = [
        {"route_id": task.route.id, "slot": slot.index, **to_data(launch(plan, task, slot))}
        for task, slot in _initial(plan)
    ]
    return json.dumps({"schema_version": PLAN_SCHEMA_VERSION, "plan": to_data(plan), "launches": launches}, indent=2)


def show_plan(plan: Plan, out) -> None:
    """The plan as text: slots, routes, the environment every task shares, then each task's command, fitted to
    the console's width (an assignment NAME=value is one shell word and stays whole)."""
    from rich.text import Text

    from simdoctor.doctor.render import say, shell_lines

    finished = len(plan.tasks) - len(plan.pending)
    say(out, f"simdoctor run --dry-run · {plan.out}", hang=2, style="bold")
    say(
        out,
        f"routes: {len(plan.tasks)} from {plan.routes_source}"
        + (f" ({finished} finished, {len(plan.pending)} to run)" if finished else "")
        + f" · seed {plan.seed} · retries {plan.retries} · route timeout {plan.route_timeout_s:g} s",
        hang=2,
    )
    out.print(Text(f"\nslots ({len(plan.slots)})", style="bold"))
    for slot in plan.slots:
        gpu = "no GPU"
        if slot.gpu is not None:
            gpu = f"GPU {slot.gpu} {slot.gpu_name or ''} -graphicsadapter={slot.graphics_adapter}"
        ports = " ".join(f"{role}={port}" for role, port in slot.ports.items())
        say(out, f"{slot.index}: {gpu.strip()}  {ports}", indent=2, hang=5)
    for note in plan.notes:
        say(out, f"! {note}", indent=2, hang=4, style="yellow")
    out.print()
    say(out, f"environment of every task (cwd {plan.cwd})", hang=2, style="bold")
    for name, value in plan.environment.items():
        out.print(f"  {name}={shlex.quote(value)}")
    out.print(Text("\ntasks (first assignment; slots take the next task as they free up)", style="bold"))
    for task, slot in _initial(plan):
        run = launch(plan, task, slot)
        say(out, f"route {task.route.id} ({task.route.town}, {task.route.scenario_type}) on slot {slot.index}", hang=2)
        for name, value in run.env.items():
            if plan.environment.get(name) != value:
                out.print(f"  {name}={shlex.quote(value)}")
        for line in shell_lines(run.argv, out.width, "  ", "      "):
            out.print(Text(line))
    for task in plan.tasks:
        if task.finished:
            say(out, f"route {task.route.id}: finished, skipped ({task.results_file})", hang=2, style="dim")


def make(settings: Settings, options: Options) -> tuple[Optional[Plan], list[routes.RouteText], list[Finding]]:
    """The plan for these options on this machine, with the route texts `prepare` writes; when the GPUs
    cannot run CARLA, no plan and the gpu/vulkan findings that say why. Raises ConfigError (usage) and
    RunError (no free ports, no GPU memory)."""
    from simdoctor.doctor import diagnosis
    from simdoctor.doctor.checking import CheckContext

    selected = parse_gpus(options.gpus)
    workers = parse_workers(options.workers_per_gpu, settings.recipe.run.max_workers_per_gpu)
    gpus, devices = None, []
    if selected != ():
        checks = diagnosis.select(diagnosis.Selection(only=GPU_CHECKS))
        ctx = CheckContext(settings)
        facts = diagnosis.start(checks, ctx).wait()
        gpus = facts.get("gpu") if isinstance(facts.get("gpu"), GpuFacts) else None
        devices = vulkan_devices(facts)
        fatal = gpu_gate(diagnosis.diagnose(facts, checks, ctx), gpus, devices, selected)
        if fatal:
            return None, [], fatal
    if options.viz_every is not None:
        fatal = viz_gate(settings)
        if fatal:
            return None, [], fatal
    slots, notes = plan_slots(settings, selected, workers, gpus, devices)
    plan, texts = build(settings, options, slots, notes)
    return plan, texts, []


def viz_gate(settings: Settings) -> list[Finding]:
    """--viz: the failures of `check --viz`'s viz group (no font for SimLingo's drawing, no H.264 encoder)."""
    from simdoctor.doctor import diagnosis
    from simdoctor.doctor.checking import CheckContext

    checks = diagnosis.select(diagnosis.Selection(only=("viz",)))
    ctx = CheckContext(settings, viz=True)
    findings = diagnosis.diagnose(diagnosis.start(checks, ctx).wait(), checks, ctx)
    return [f for f in findings if f.status is Status.FAIL]


def make_or_explain(
    settings: Settings, options: Options, json_out: bool
) -> tuple[Optional[Plan], list[routes.RouteText]]:
    """`make`, printing why there is no plan (the GPU findings, or the RunError's one line) when there is none."""
    from simdoctor.doctor import render

    try:
        plan, texts, fatal = make(settings, options)
    except RunError as exc:
        sys.stderr.write(f"simdoctor: {exc}\n")
        return None, []
    if plan is None:
        if json_out:
            sys.stdout.write(render.findings_json(fatal, {"exit_code": 1}) + "\n")
        else:
            header = "simdoctor run: CARLA cannot run on this machine's GPUs (or pass --gpus none)"
            if all(f.group == "viz" for f in fatal):
                header = "simdoctor run --viz: SimLingo's view cannot be recorded on this machine"
            render.report(fatal, terminal.console(), header=header)
    return plan, texts


def dry_run(settings: Settings, options: Options, json_out: bool = False) -> int:
    """`simdoctor run --dry-run`: print the plan; 1 when the GPUs cannot run CARLA (with the checks' findings)."""

    plan, _ = make_or_explain(settings, options, json_out)
    if plan is None:
        return 1
    if json_out:
        sys.stdout.write(plan_json(plan) + "\n")
    else:
        show_plan(plan, terminal.console())
    return 0
