"""`simdoctor carla start|stop|status|logs`: what each command does, backend by backend."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TextIO, Union

from simdoctor.carla.command import (
    PORT_FLAG,
    GpuChoice,
    check_port,
    check_quality,
    choose_gpu,
    choose_ports,
    nvml_gpus,
    pick_gpu,
    server_args,
)
from simdoctor.carla.diagnose import Diagnosis, diagnose, first_cause, tail
from simdoctor.carla.docker import DockerBackend, container_name, image
from simdoctor.carla.errors import Refusal
from simdoctor.carla.process import Launched, ProcessBackend
from simdoctor.carla.ready import Ready, wait_ready
from simdoctor.carla.rendering import BAD, NO_GPU, GpuUse, Rendering, gpu_uses, judge
from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings
from simdoctor.doctor import rootfix
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.gpu import GpuDevice
from simdoctor.system import procs, proctree, serverstate
from simdoctor.system.proctree import StopResult
from simdoctor.system.serverstate import ServerRecord

LOCAL = "127.0.0.1"
NVML_WAIT_S = 3.0  # the server's GPU context may show in NVML a moment after it answers
STATUS_RPC_TIMEOUT_S = 1.0
EXIT_OK, EXIT_FAILED, EXIT_WRONG_DEVICE = 0, 1, 3
BACKENDS = ("process", "docker")
Backend = Union[ProcessBackend, DockerBackend]
ROOT_TEXT = (
    "Run simdoctor as a normal user (CARLA runs as the user who starts it; `setup` hands the stack to one), "
    "or use the docker backend, which runs CARLA as the image's user."
)


@dataclass(frozen=True)
class StartOptions:
    gpu: Optional[int] = 0  # NVML index; None: no GPU chosen (CARLA picks its Vulkan device)
    port: Optional[int] = None  # None: auto
    quality: Optional[str] = None
    window: bool = False
    backend: str = "process"
    wait: bool = True
    timeout: Optional[float] = None


@dataclass(frozen=True)
class StartResult:
    status: str  # ready, started, failed, timeout
    exit_code: int
    summary: str
    record: Optional[ServerRecord] = None
    ready: Optional[Ready] = None
    rendering: Optional[Rendering] = None
    diagnoses: list[Diagnosis] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    cleanup: Optional[StopResult] = None
    notes: list[str] = field(default_factory=list)


def backend_for(name: str, settings: Settings) -> Backend:
    return DockerBackend(settings.recipe.carla) if name == "docker" else ProcessBackend()


def refuse_root(backend: str, settings: Settings) -> None:
    """CARLA's UE4 exits with `Refusing to run with the root privileges.`; say so before starting it."""
    if backend == "process" and os.geteuid() == 0:
        fix = rootfix.root_fix(settings, ROOT_TEXT, "carla start")
        raise Refusal(
            "refusing to start CARLA as root: CARLA itself refuses (`Refusing to run with the root privileges.`)",
            Fix(fix.text, [*fix.commands, "simdoctor carla start --backend docker"]),
        )


def check_window(settings: Settings, gpu: Optional[int]) -> str:
    """--window: refused, before CARLA starts, unless `check --window` passes for this GPU: a display, and the
    GPU's Vulkan device presenting to it (a surface and a swapchain, asked in a child process)."""
    from simdoctor.doctor import diagnosis
    from simdoctor.doctor.checking import CheckContext
    from simdoctor.doctor.findings import Status

    checks = diagnosis.select(diagnosis.Selection(only=("display.server", "display.window")))
    ctx = CheckContext(settings, window=True, gpu=gpu)
    facts = diagnosis.start(checks, ctx).wait()
    for finding in diagnosis.diagnose(facts, checks, ctx):
        if finding.status is Status.FAIL:
            raise Refusal(f"--window: {finding.summary}", finding.fix, finding.details)
    return os.environ["DISPLAY"]


def carla_root(settings: Settings) -> Path:
    from simdoctor.doctor.probes.carla import locate_root

    carla = settings.recipe.carla
    root, _, searched = locate_root(settings)
    fix = Fix("Install CARLA, or point CARLA_ROOT at it.", ["simdoctor check --only carla"])
    if root is None:
        raise Refusal(f"CARLA {carla.version} not found (looked in {', '.join(searched)})", fix)
    launcher = root / carla.launcher
    if not (launcher.is_file() and os.access(launcher, os.X_OK)):
        raise Refusal(f"{launcher} is missing or not executable", fix)
    return root


def docker_gpu(index: Optional[int]) -> tuple[GpuChoice, Optional[str], list[str]]:
    """The GPU for the container's device request (by UUID when NVML can name it)."""
    if index is None:
        return GpuChoice(None, None, None, None), None, ["no GPU asked for (--gpu none): no GPU is requested"]
    try:
        gpu: Optional[GpuDevice] = pick_gpu(index)
    except Refusal:
        gpu = None
    if gpu is None:
        note = f"NVML is not available here: GPU {index} is requested by index, unchecked"
        return GpuChoice(index, None, None, 0), str(index), [note]
    return GpuChoice(gpu.index, gpu.uuid, gpu.name, 0), gpu.uuid, []


def live_records(settings: Settings) -> list[ServerRecord]:
    return [r for r in serverstate.records(settings) if backend_alive(settings, r)]


def backend_alive(settings: Settings, record: ServerRecord) -> bool:
    try:
        return backend_for(record.backend, settings).alive(record)
    except Refusal:
        return False


def reserved_ports(records: list[ServerRecord]) -> set[int]:
    return {p for r in records for p in (r.port, r.streaming_port, r.secondary_port, r.tm_port)}


@contextlib.contextmanager
def terminate_as_interrupt(seen: Optional[list[int]] = None) -> Iterator[None]:
    """SIGTERM and SIGHUP act like Ctrl-C while a server starts (or `simdoctor run` runs), so its cleanup
    runs too. A signal already ignored stays ignored: `nohup simdoctor run` keeps running after a logout.
    `seen` collects those signals (empty after an interrupt: it was Ctrl-C)."""

    def interrupt(signum: int, frame: object) -> None:
        if seen is not None:
            seen.append(signum)
        raise KeyboardInterrupt

    wanted = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN]
    saved = {s: signal.signal(s, interrupt) for s in wanted}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def start(settings: Settings, opts: StartOptions) -> StartResult:
    """Start a server, wait until it answers, prove where it renders; on failure, say why and clean up."""
    if opts.backend not in BACKENDS:
        raise ConfigError(f"--backend must be process or docker, not {opts.backend!r}")
    refuse_root(opts.backend, settings)
    carla = settings.recipe.carla
    quality = check_quality(carla, opts.quality)
    if opts.port is not None:
        check_port(carla, opts.port)
    display = check_window(settings, opts.gpu) if opts.window else None
    backend = backend_for(opts.backend, settings)
    notes: list[str] = []
    device_id = img = None
    if isinstance(backend, DockerBackend):
        img = image(backend.client, carla.docker_image)
        gpu, device_id, notes = docker_gpu(opts.gpu)
        root, launcher = carla.docker_carla_root, f"{carla.docker_carla_root}/{carla.launcher}"
    else:
        root_path = carla_root(settings)
        gpu = choose_gpu(opts.gpu)
        root, launcher = str(root_path), str(root_path / carla.launcher)
        if gpu.index is None:
            notes.append("no GPU asked for (--gpu none): CARLA picks its Vulkan device itself")
    live = live_records(settings)
    ports = choose_ports(carla, opts.port, settings.carla_port, reserved_ports(live))
    server_id = str(ports["rpc"])
    record = ServerRecord(
        id=server_id,
        host=serverstate.hostname(),
        backend=opts.backend,
        port=ports["rpc"],
        streaming_port=ports["streaming"],
        secondary_port=ports["secondary"],
        tm_port=ports["traffic_manager"],
        gpu_index=gpu.index,
        gpu_uuid=gpu.uuid,
        gpu_name=gpu.name,
        adapter=gpu.adapter,
        quality=quality,
        window=opts.window,
        command=[launcher, *server_args(carla, ports["rpc"], gpu.adapter, quality, opts.window)],
        carla_root=root,
        log=str(serverstate.fresh_log(settings, server_id)),
        started_at=time.time(),
        tree=None,
        container_name=container_name(carla, ports["rpc"]) if img else None,
    )
    serverstate.remove(settings, server_id)  # a dead server's record on this port (a live one holds the port)
    launched: Optional[Launched] = None
    with terminate_as_interrupt():
        try:
            began = time.monotonic()
            if isinstance(backend, DockerBackend):
                launched = backend.launch(record, img, device_id, display)
            else:
                launched = backend.launch(record)
            serverstate.save(settings, launched.record)
            if not opts.wait:
                return StartResult("started", EXIT_OK, f"CARLA started on port {record.port}", launched.record,
                                   notes=notes)  # fmt: skip
            rec = launched.record
            waited = wait_ready(
                LOCAL,
                rec.port,
                opts.timeout if opts.timeout is not None else carla.start_timeout_s,
                alive=lambda: backend.alive(rec, launched),
                launched=began,
            )
            if waited.ready is None:
                return failed(settings, backend, launched, waited.reason, waited.last_error, opts, notes)
            rec = serverstate.update(settings, rec, ready_at=waited.ready.at, version=waited.ready.version)
            rendering = verify_rendering(backend, rec, gpu.index)
            code = EXIT_WRONG_DEVICE if rendering.verdict in BAD else EXIT_OK
            summary = f"CARLA {waited.ready.version} ready on port {rec.port} in {waited.ready.seconds:.2f} s"
            return StartResult("ready", code, summary, rec, waited.ready, rendering, notes=notes)
        except BaseException:
            if launched is not None:
                backend.stop(launched.record, carla.stop_grace_s, launched)
                serverstate.remove(settings, launched.record.id)
            raise


def describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "exited"
    if code < 0 or code > 128:
        number = -code if code < 0 else code - 128
        try:
            return f"was killed by {signal.Signals(number).name}"
        except ValueError:
            return f"exited with status {code}"
    return f"exited with status {code}"


def failed(
    settings: Settings,
    backend: Backend,
    launched: Launched,
    reason: str,
    last_error: Optional[str],
    opts: StartOptions,
    notes: list[str],
) -> StartResult:
    """The server exited or never answered: read its log, stop what is left, drop the record."""
    rec = launched.record
    log = backend.log_text(rec)
    exit_status = backend.exit_status(launched) if reason == "exited" else None
    cleanup = backend.stop(rec, settings.recipe.carla.stop_grace_s, launched)
    serverstate.remove(settings, rec.id)
    found = diagnose(log, exited=reason == "exited")
    lead = first_cause(found)
    if reason == "exited":
        summary = f"CARLA {describe_exit(exit_status)} before answering on port {rec.port}"
    else:
        timeout = opts.timeout if opts.timeout is not None else settings.recipe.carla.start_timeout_s
        summary = (
            f"CARLA did not answer on port {rec.port} within {timeout:g} s"
            + (f" ({last_error})" if last_error else "")
            + "; simdoctor stopped it"
        )
    if lead is not None:
        summary += f": {lead.cause}"
    return StartResult(reason if reason == "timeout" else "failed", EXIT_FAILED, summary, rec, diagnoses=found,
                       log_tail=tail(log), cleanup=cleanup, notes=notes)  # fmt: skip


def nvml_state() -> tuple[Optional[list[GpuDevice]], Optional[str]]:
    try:
        return nvml_gpus(), None
    except RuntimeError as exc:
        return None, str(exc)


def verify_rendering(backend: Backend, record: ServerRecord, expected: Optional[int]) -> Rendering:
    deadline = time.monotonic() + NVML_WAIT_S
    while True:
        gpus, error = nvml_state()
        verdict = judge(expected, backend.pids(record), gpus, error, backend.log_text(record))
        if verdict.verdict != NO_GPU or time.monotonic() >= deadline:
            return verdict
        time.sleep(0.25)


# ---- status ----


@dataclass(frozen=True)
class ServerStatus:
    id: Optional[str]  # None for a server simdoctor did not start
    started_by_simdoctor: bool
    backend: Optional[str]
    port: Optional[int]
    alive: bool
    version: Optional[str]
    error: Optional[str]
    pids: list[int]
    gpu: list[GpuUse]
    gpu_index: Optional[int]
    command: str
    log: Optional[str] = None
    started_at: Optional[float] = None


@dataclass(frozen=True)
class StatusReport:
    servers: list[ServerStatus]
    nvml_error: Optional[str]


def _version(port: int) -> tuple[Optional[str], Optional[str]]:
    from simdoctor.doctor.probes.server import query_version
    from simdoctor.system import rpc

    try:
        return query_version(LOCAL, port, STATUS_RPC_TIMEOUT_S)[0], None
    except (OSError, RuntimeError, rpc.RpcError) as exc:
        return None, str(exc) or type(exc).__name__


def in_runs(settings: Settings, gpus: Optional[list[GpuDevice]]) -> list[ServerStatus]:
    """CARLA servers a still-running simdoctor process started (a `simdoctor run`'s evaluators start
    their own): simdoctor's, though not recorded as `carla start` servers."""
    out = []
    for p in proctree.named(settings.recipe.carla.process_name):
        owner = proctree.live_owner(p.pid)
        if owner is None:
            continue
        match = PORT_FLAG.search(p.command)
        out.append(
            ServerStatus(
                id=None, started_by_simdoctor=True, backend=f"run, pid {owner}",
                port=int(match.group(1)) if match else None, alive=True, version=None, error=None, pids=[p.pid],
                gpu=gpu_uses(gpus or [], {p.pid}), gpu_index=None, command=p.command,
            )
        )  # fmt: skip
    return out


def foreign(settings: Settings, ours: set[int], gpus: Optional[list[GpuDevice]]) -> list[ServerStatus]:
    """CARLA servers simdoctor did not start: by process name in the process table, and in NVML."""
    carla = settings.recipe.carla
    ours = ours | {p for s in in_runs(settings, gpus) for p in s.pids}
    found = {p.pid: p for p in proctree.named(carla.process_name) if p.pid not in ours}
    extra: dict[int, str] = {}
    for d in gpus or []:
        for p in d.processes:
            if (
                p.pid not in ours
                and p.pid not in found
                and (p.name == carla.process_name or carla.process_name in (p.command or ""))
            ):
                extra[p.pid] = p.command or "not visible here (another PID namespace)"
    out = []
    for pid in sorted({*found, *extra}):
        command = found[pid].command if pid in found else extra[pid]
        match = PORT_FLAG.search(command)
        out.append(
            ServerStatus(
                id=None, started_by_simdoctor=False, backend=None, port=int(match.group(1)) if match else None,
                alive=pid in found, version=None, error=None, pids=[pid], gpu=gpu_uses(gpus or [], {pid}),
                gpu_index=None, command=command,
            )
        )  # fmt: skip
    return out


def status(settings: Settings) -> StatusReport:
    gpus, nvml_error = nvml_state()
    servers = []
    ours: set[int] = set()
    for rec in serverstate.records(settings):
        try:
            backend = backend_for(rec.backend, settings)
            pids = backend.pids(rec)
            alive = backend.alive(rec)
            error = None
        except Refusal as exc:
            pids, alive, error = set(), False, str(exc)
        ours |= pids
        version = None
        if alive:
            version, error = _version(rec.port)
        servers.append(
            ServerStatus(
                id=rec.id, started_by_simdoctor=True, backend=rec.backend, port=rec.port, alive=alive,
                version=version, error=error, pids=sorted(pids), gpu=gpu_uses(gpus or [], pids),
                gpu_index=rec.gpu_index, command=" ".join(rec.command), log=rec.log, started_at=rec.started_at,
            )
        )  # fmt: skip
    return StatusReport(servers + in_runs(settings, gpus) + foreign(settings, ours, gpus), nvml_error)


# ---- stop ----


@dataclass(frozen=True)
class Stopped:
    label: str  # "server 2000" or "pid 1234 (not started by simdoctor)"
    result: StopResult
    error: Optional[str] = None

    @property
    def clean(self) -> bool:
        return self.error is None and self.result.clean


def stop(settings: Settings, ids: list[str], everything: bool, orphans: bool, grace: Optional[float]) -> list[Stopped]:
    grace = settings.recipe.carla.stop_grace_s if grace is None else grace
    records = serverstate.records(settings)
    if not ids and not everything and not orphans:
        if not records:
            return []
        if len(records) > 1:
            known = ", ".join(r.id for r in records) or "none"
            raise ConfigError(f"say which server to stop (ID, --all or --orphans); simdoctor's servers: {known}")
        ids = [records[0].id]
    chosen = records if everything else []
    for server_id in ids:
        rec = serverstate.find(settings, server_id)
        if rec is None:
            known = ", ".join(r.id for r in records) or "none"
            raise Refusal(f"no server {server_id} recorded here (simdoctor's servers: {known})",
                          Fix("See what runs.", ["simdoctor carla status"]))  # fmt: skip
        chosen.append(rec)
    done = []
    ours: set[int] = set()
    for rec in chosen:
        try:
            result = backend_for(rec.backend, settings).stop(rec, grace)
        except Refusal as exc:
            done.append(Stopped(f"server {rec.id}", StopResult(), str(exc)))
            continue
        if result.clean:
            serverstate.remove(settings, rec.id)
        done.append(Stopped(f"server {rec.id}", result))
    if orphans:
        for rec in serverstate.records(settings):
            with contextlib.suppress(Refusal):
                ours |= backend_for(rec.backend, settings).pids(rec)
        done += stop_orphans(settings, ours, grace)
    return done


def stop_orphans(settings: Settings, ours: set[int], grace: float) -> list[Stopped]:
    """CARLA servers simdoctor did not start, with their launcher script: only when asked."""
    carla = settings.recipe.carla
    gpus, _ = nvml_state()
    done = []
    for server in foreign(settings, ours, gpus):
        pid = server.pids[0]
        info = procs.process(pid)
        if info is None:
            done.append(Stopped(f"pid {pid}", StopResult(), "not visible here (another PID namespace or user)"))
            continue
        targets = [info]
        parent = procs.process(info.ppid)
        if parent is not None and any(carla.launcher in a for a in parent.cmdline[:2]):
            targets.append(parent)
        done.append(Stopped(f"pid {pid} (not started by simdoctor)", proctree.stop_processes(targets, grace)))
    return done


# ---- logs ----


FOLLOW_POLL_S = 0.2


def logs(settings: Settings, server_id: str, follow: bool, out: TextIO = sys.stdout) -> None:
    path = serverstate.log_path(settings, server_id)
    if not path.exists():
        known = ", ".join(r.id for r in serverstate.records(settings)) or "none"
        raise Refusal(f"no log for server {server_id} (simdoctor's servers: {known})")
    with open(path, encoding="utf-8", errors="replace") as handle:
        out.write(handle.read())
        out.flush()
        if not follow:
            return
        with contextlib.suppress(KeyboardInterrupt):
            idle = 0.0
            while True:
                chunk = handle.read()
                if chunk:
                    out.write(chunk)
                    out.flush()
                    idle = 0.0
                    continue
                rec = serverstate.find(settings, server_id)
                idle += FOLLOW_POLL_S
                if idle >= 1.0 and (rec is None or not backend_alive(settings, rec)):
                    return  # the server is gone and its log ended
                time.sleep(FOLLOW_POLL_S)
