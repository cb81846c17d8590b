"""Slurm's command-line tools (sinfo, scontrol, sbatch, squeue, sacct, scancel), each call bounded.

simdoctor talks to Slurm only through these commands: they are on every login node, speak the
cluster's configured auth, and need no extra library. Each failure is a SlurmError with one line.
"""

from __future__ import annotations

import getpass
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from simdoctor.system.subproc import run_bounded

TOOLS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "scontrol")
TIMEOUT = 10.0


class SlurmError(Exception):
    """A Slurm command failed or is missing; the message is its first line of explanation."""


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    available: str  # up, down, drain, inact
    nodes: list[str]
    gpus_per_node: list[int]  # per node, from its GRES
    cpus_per_node: list[int]
    memory_mb_per_node: list[int]


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, PREEMPTED, OUT_OF_MEMORY, ...
    reason: str
    node: str
    exit_code: Optional[str] = None  # "0:0" once finished, when known


def tools() -> dict[str, Optional[str]]:
    return {name: shutil.which(name) for name in TOOLS}


def _run(args: list[str], env: Optional[dict[str, str]] = None, timeout: float = TIMEOUT) -> str:
    if shutil.which(args[0]) is None:
        raise SlurmError(f"{args[0]} is not installed or not on PATH")
    outcome = run_bounded(args, timeout=timeout, env=env)
    if not outcome.ok:
        raise SlurmError(f"`{' '.join(args[:2])}` {outcome.describe()}")
    return outcome.stdout


def version(env: Optional[dict[str, str]] = None) -> str:
    """The Slurm release of the client tools, e.g. 22.05.8."""
    return _run(["sinfo", "--version"], env).split()[-1]


def ping(env: Optional[dict[str, str]] = None) -> str:
    """scontrol ping's line for the primary controller (`Slurmctld(primary) at HOST is UP`); raises when
    it is not UP. scontrol answers at once even when the controller is down, unlike sinfo."""
    if shutil.which("scontrol") is None:
        raise SlurmError("scontrol is not installed or not on PATH")
    outcome = run_bounded(["scontrol", "ping"], timeout=TIMEOUT, env=env)
    lines = [line.strip() for line in (outcome.stdout + outcome.stderr).splitlines() if line.strip()]
    if outcome.ok and lines and "is UP" in lines[0]:
        return lines[0]
    raise SlurmError(lines[0] if lines else f"`scontrol ping` {outcome.describe()}")


def gpu_count(gres: str, name: str) -> int:
    """GPUs in a sinfo GRES field such as `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:2,shard:8` (0 for `(null)`)."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == name and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def partitions(gres_name: str, env: Optional[dict[str, str]] = None) -> list[Partition]:
    """Every partition, node by node (sinfo -N), folded back into one Partition each."""
    out = _run(["sinfo", "-h", "-a", "-N", "-o", "%P|%a|%N|%G|%c|%m"], env)
    found: dict[str, dict] = {}
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) != 6:
            continue
        raw, available, node, gres, cpus, memory = fields
        name = raw.rstrip("*")
        entry = found.setdefault(name, {"default": raw.endswith("*"), "available": available, "nodes": [],
                                        "gpus": [], "cpus": [], "mem": []})  # fmt: skip
        if node not in entry["nodes"]:
            entry["nodes"].append(node)
            entry["gpus"].append(gpu_count(gres, gres_name))
            entry["cpus"].append(int(cpus) if cpus.isdigit() else 0)
            entry["mem"].append(int(memory) if memory.isdigit() else 0)
    return [
        Partition(n, e["default"], e["available"], e["nodes"], e["gpus"], e["cpus"], e["mem"]) for n, e in found.items()
    ]


def submit(script: Path, env: Optional[dict[str, str]] = None, extra: tuple[str, ...] = ()) -> str:
    """sbatch a script file; returns the job id (for an array: the array's id)."""
    out = _run(["sbatch", "--parsable", *extra, str(script)], env)
    return out.strip().split(";")[0]


INVALID_JOB = "Invalid job id specified"  # squeue's answer for ids the controller no longer holds


def queue_states(job_ids: Union[str, Iterable[str]], env: Optional[dict[str, str]] = None) -> list[JobState]:
    """Jobs (or array tasks, one per index) of these job ids that squeue still shows, pending ones included.
    Ids the controller has forgotten are simply not there; any other failure raises SlurmError (the
    caller must not take a failed query for an empty queue)."""
    ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
    if not ids:
        return []
    args = ["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T|%r|%N"]
    if shutil.which("squeue") is None:
        raise SlurmError("squeue is not installed or not on PATH")
    outcome = run_bounded(args, timeout=TIMEOUT, env=env)
    if not outcome.ok:
        if outcome.returncode == 1 and INVALID_JOB in outcome.stderr:
            return []
        raise SlurmError(f"`squeue -j` {outcome.describe()}")
    states = []
    for line in outcome.stdout.splitlines():
        fields = line.split("|")
        if len(fields) == 4:
            states.append(JobState(fields[0], fields[1], fields[2], fields[3]))
    return states


def find_by_comment(comment: str, env: Optional[dict[str, str]] = None) -> Optional[str]:
    """The array job id of this user's queued job with this --comment (a submission whose id was not
    recorded because simdoctor died right after sbatch)."""
    out = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%F|%k"], env)
    for line in out.splitlines():
        job_id, _, text = line.partition("|")
        if text.strip() == comment:
            return job_id.strip()
    return None


def accounting_states(job_id: str, env: Optional[dict[str, str]] = None) -> list[JobState]:
    """Finished jobs (or array tasks) from sacct; raises SlurmError where accounting is off."""
    out = _run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,Reason,NodeList,ExitCode"], env)
    states = []
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) == 5:
            states.append(JobState(fields[0], fields[1].split()[0], fields[2], fields[3], fields[4]))
    if not states and "accounting storage is disabled" in out.lower():
        raise SlurmError("Slurm accounting storage is disabled")
    return states


def accounting_works(env: Optional[dict[str, str]] = None) -> Optional[str]:
    """None when sacct answers, else why not (a cluster without slurmdbd)."""
    outcome = run_bounded(["sacct", "-n", "-X", "-S", "now"], timeout=TIMEOUT, env=env)
    text = (outcome.stdout + outcome.stderr).strip()
    if not outcome.ok:
        return outcome.describe()
    if "disabled" in text.lower():
        return text.splitlines()[0]
    return None


def set_throttle(job_id: str, count: int, env: Optional[dict[str, str]] = None) -> None:
    """At most `count` tasks of the array run at once (its %N, changed while it is queued)."""
    _run(["scontrol", "update", f"JobId={job_id}", f"ArrayTaskThrottle={count}"], env)


def cancel(job_ids: Union[str, Iterable[str]], env: Optional[dict[str, str]] = None) -> None:
    """scancel these jobs (whole arrays, or single array tasks as `<id>_<index>`)."""
    _run(["scancel", *([job_ids] if isinstance(job_ids, str) else job_ids)], env)
