"""One Slurm array task on its node: `simdoctor run-task SPEC` (hidden; the job script runs it).

It runs one attempt of one route with the same Supervisor as a local run (one slot, `single`): launch,
route timeout, the whole process tree stopped and checked, the results judged, peaks sampled, the attempt
written to the shared <out>/tasks/<id>.json. Only the slot is made here, on the node:
- the GPU: the one Slurm gave the task (task_gpu), as NVML and then Vulkan know it on this node;
- the ports: free here, and claimed against the other array tasks that start on this node at the same
  moment (PortClaims), which are other processes a local run's in-process reservation cannot see.
Slurm's SIGTERM (scancel, time limit, preemption) stops the attempt like Ctrl-C stops a local run;
the login node's simdoctor then decides what that attempt costs (simdoctor/run/slurm/backend.py).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.carla.lifecycle import terminate_as_interrupt
from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings
from simdoctor.doctor.gpumap import adapter_index
from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probes.ports import bindable, worker_ports
from simdoctor.doctor.probes.vulkan import VkDevice
from simdoctor.doctor.probing import ProbeContext, run_probes
from simdoctor.run import results
from simdoctor.run.outdir import Layout
from simdoctor.run.progress import Progress
from simdoctor.run.results import TaskRecord
from simdoctor.run.runplan import RunError, Slot, vulkan_devices
from simdoctor.run.sampling import PeakSampler
from simdoctor.run.slurm import jobs
from simdoctor.run.supervisor import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    SAMPLE_S,
    Supervisor,
    attempt_run,
    refuse_root,
)
from simdoctor.system import procs

# Which GPUs Slurm gave the task, most specific first: a step's, the job's (both global ids, i.e. the
# gres.conf order of the node's device files), then what CUDA is told (ids or UUIDs).
GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")
CLAIM_PREFIX = "simdoctor-port-"  # abstract unix socket names: per node, gone with the process


class NodeError(Exception):
    """This node cannot run the task (one line); recorded as an infrastructure failure, so it is resubmitted."""


@dataclass(frozen=True)
class TaskGpu:
    index: Optional[int]  # NVML index on this node; None: no GPU asked for
    uuid: Optional[str]
    name: Optional[str]
    adapter: Optional[int]  # its Vulkan index: CARLA's -graphicsadapter, the evaluator's --gpu-rank
    how: str  # how it was found, for the task's log


def given_gpus(env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The variable that names the task's GPUs, and its entries."""
    for name in GPU_VARIABLES:
        value = env.get(name, "").strip()
        if value and value != "NoDevFiles":
            return name, [v.strip() for v in value.split(",") if v.strip()]
    return "", []


def task_gpu(env: Mapping[str, str], wanted: int, gpus: Optional[GpuFacts], devices: list[VkDevice]) -> TaskGpu:
    """The GPU Slurm gave this task, as this node's NVML and Vulkan know it. In order:
    CUDA_VISIBLE_DEVICES with UUIDs names it exactly; a job that sees only its own GPUs (ConstrainDevices)
    has it as the one NVML lists; otherwise Slurm's global id is the /dev/nvidiaN minor number NVML gives
    (the NVML index where NVML gives none). Its UUID then gives the Vulkan index (gpumap)."""
    host = socket.gethostname()
    if wanted == 0:
        return TaskGpu(None, None, None, None, "no GPU asked for (--gpus-per-task 0)")
    name, ids = given_gpus(env)
    if not ids:
        raise NodeError(f"Slurm gave this task no GPU on {host} (none of {', '.join(GPU_VARIABLES)} is set)")
    given = f"{name}={','.join(ids)}"
    if gpus is None or gpus.nvml_error:
        why = gpus.nvml_error if gpus is not None else "no GPU facts"
        raise NodeError(f"Slurm gave this task a GPU ({given}) on {host}, but NVML cannot be read there ({why}): "
                        "CARLA's -graphicsadapter cannot be chosen")  # fmt: skip
    visible = list(gpus.gpus)
    cuda = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if cuda and cuda[0].upper().startswith(("GPU-", "MIG-")):
        device = next((g for g in visible if g.uuid.lower() == cuda[0].lower()), None)
        how = f"CUDA_VISIBLE_DEVICES={cuda[0]} (a UUID)"
    elif len(visible) == len(ids):
        device, how = visible[0], f"{given}, the only GPU(s) NVML sees in the job"
    elif ids[0].isdigit():
        minors = {g.minor_number: g for g in visible if g.minor_number is not None}
        if minors:
            device, how = minors.get(int(ids[0])), f"{given} as /dev/nvidia{ids[0]}"
        else:
            device, how = next((g for g in visible if g.index == int(ids[0])), None), f"{given} as the NVML index"
    else:
        device, how = None, given
    if device is None:
        seen = ", ".join(f"{g.index}: {g.uuid}" for g in visible) or "none"
        raise NodeError(f"Slurm gave this task a GPU ({given}) on {host} that NVML does not list (it sees {seen})")
    adapter = adapter_index(device.uuid, devices)
    if adapter is None:
        raise NodeError(f"Vulkan on {host} does not list GPU {device.index} ({device.uuid}): CARLA cannot render "
                        "there (`simdoctor check --only vulkan` on that node says why)")  # fmt: skip
    how += f" -> NVML GPU {device.index} ({device.uuid}) -> -graphicsadapter={adapter}"
    return TaskGpu(device.index, device.uuid, device.name, adapter, how)


class PortClaims:
    """Ports this process claims on its node: one abstract unix socket per port (`@simdoctor-port-P`),
    held until the claim is dropped or the process ends, however it ends. Array tasks that start together
    on one node would otherwise all find the same ports free and pick them."""

    def __init__(self) -> None:
        self.held: dict[int, socket.socket] = {}

    def take(self, port: int) -> bool:
        """Claim `port` if no other process has and it can be bound now (worker_ports' is_free)."""
        if port not in self.held:
            claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                claim.bind(f"\0{CLAIM_PREFIX}{port}")
            except OSError:
                claim.close()
                return False
            self.held[port] = claim
        if bindable(port):
            return True
        self.held.pop(port).close()
        return False

    def keep_only(self, ports: set[int]) -> None:
        for port in set(self.held) - ports:
            self.held.pop(port).close()

    def __enter__(self) -> PortClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.keep_only(set())


def job_label(env: Mapping[str, str]) -> str:
    """`<array job id>_<index>`, as squeue and the login node name the task."""
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or f"pid-{os.getpid()}"


def leftovers(layout: Layout, record: TaskRecord, settings: Settings) -> Optional[str]:
    """Stop what the route's previous attempt left running when it ran on this node (a task killed
    outright: node trouble, an out-of-memory kill): by its recorded identity only."""
    attempt = record.last
    if attempt is None or attempt.tree is None or attempt.host != socket.gethostname():
        return None
    if attempt.tree.boot_id and attempt.tree.boot_id != procs.boot_id():
        return None
    stopped = attempt_run(layout, record.route_id, attempt, settings).stop(settings.recipe.carla.stop_grace_s)
    if not stopped.terminated:
        return None
    return f"stopped {len(stopped.terminated)} process(es) attempt {attempt.number} ({attempt.job}) left running here"


def run_task(spec_path: Path, index: Optional[int]) -> int:
    """`simdoctor run-task SPEC [INDEX]`: the array task's route, one attempt (INDEX: $SLURM_ARRAY_TASK_ID)."""
    spec = jobs.read_spec(spec_path)
    env = os.environ
    if index is None:
        text = env.get("SLURM_ARRAY_TASK_ID", "")
        if not text.isdigit():
            raise ConfigError("run-task needs INDEX or $SLURM_ARRAY_TASK_ID (it runs inside the array job)")
        index = int(text)
    if not 0 <= index < len(spec.plan.tasks):
        raise ConfigError(f"array index {index} is outside {spec_path}'s {len(spec.plan.tasks)} task(s)")
    refuse_root()
    settings = jobs.settings_of(spec)
    task = dataclasses.replace(spec.plan.tasks[index], finished=False)
    layout = Layout(Path(spec.plan.out), settings.recipe.run)
    label, host, began = job_label(env), socket.gethostname(), time.time()
    print(f"simdoctor: array task {label} on {host}: route {task.route.id}", flush=True)
    record = results.read_task(Path(task.task_file)) or TaskRecord(task.route.id)
    stopped = leftovers(layout, record, settings)
    if stopped:
        print(f"simdoctor: {stopped}", flush=True)
    with PortClaims() as claims:
        try:
            gpu = task_gpu(env, spec.gpus_per_task, *_gpu_facts(settings, spec.gpus_per_task))
            run = settings.recipe.run
            ports = worker_ports(settings.recipe.carla, 1, run.port_base, is_free=claims.take)[0]
        except (NodeError, RuntimeError) as exc:
            record = results.with_failure(record, str(exc), began, time.time(), host, label)
            results.write_task(Path(task.task_file), record)
            sys.stderr.write(f"simdoctor: {exc}\n")
            return EXIT_FAILED
        claims.keep_only(set(ports.values()))
        print(f"simdoctor: GPU: {gpu.how}", flush=True)
        slot = Slot(0, gpu.index, gpu.uuid, gpu.name, gpu.adapter, ports)
        plan = dataclasses.replace(spec.plan, slots=[slot], tasks=[task])
        with terminate_as_interrupt(), PeakSampler(SAMPLE_S) as sampler, Progress(plan, {}, "lines") as progress:
            supervisor = Supervisor(plan, settings, progress, sampler, False, job=label, single=True,
                                    is_free=claims.take)  # fmt: skip
            try:
                completed = supervisor.run()
            except RunError as exc:  # its ports were taken meanwhile and no others are free: nothing started
                record = results.read_task(Path(task.task_file)) or record
                results.write_task(Path(task.task_file), results.with_failure(record, str(exc), began, time.time(),
                                                                              host, label))  # fmt: skip
                sys.stderr.write(f"simdoctor: {exc}\n")
                return EXIT_FAILED
    if supervisor.unclean:
        return EXIT_FAILED
    return EXIT_OK if completed else EXIT_INTERRUPTED


def _gpu_facts(settings: Settings, wanted: int) -> tuple[Optional[GpuFacts], list[VkDevice]]:
    if wanted == 0:
        return None, []
    facts = run_probes(["gpu", "vulkan"], ProbeContext(settings))
    gpus = facts.get("gpu")
    return (gpus if isinstance(gpus, GpuFacts) else None), vulkan_devices(facts)
