"""A Slurm cluster as seen from this login node: its tools, controller, partitions and GPUs, whether the
output folder is shared with the nodes, and (with --probe) what a one-task job sees on a node."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import simdoctor
from simdoctor import scripts
from simdoctor.config.agentenv import agent_environment, pythonpath
from simdoctor.config.settings import Settings
from simdoctor.doctor.probes.agent import AgentFacts, facts_from, probe_request, resolve_python
from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system import sbatch, slurm
from simdoctor.system.mounts import mount_of
from simdoctor.system.slurm import Partition, SlurmError


@dataclass(frozen=True)
class SlurmIntent:
    """What the user means to do on the cluster: where results go, and whether to send a probe job."""

    out_dir: str
    probe_job: bool = False


@dataclass(frozen=True)
class SlurmFacts:
    tools: dict[str, Optional[str]]
    version: Optional[str]
    controller: Optional[str]  # scontrol ping's line when UP
    error: Optional[str]  # why the cluster could not be asked
    partitions: list[Partition]
    requested_partition: str  # "" = the default one
    accounting_error: Optional[str]  # None when sacct answers
    login_host: str
    out_dir: str
    out_mount: Optional[str]
    out_fstype: Optional[str]


@dataclass(frozen=True)
class SlurmJobFacts:
    job_id: Optional[str]
    state: Optional[str]  # the job's last state seen
    reason: Optional[str]
    error: Optional[str]  # why no answer came back
    seconds: float
    agent: Optional[AgentFacts]  # what agent_probe.py saw on the node, with its node facts


def _intent(ctx: ProbeContext) -> SlurmIntent:
    return ctx.slurm or SlurmIntent(ctx.settings.recipe.run.out_dir)


@probe("slurm", SlurmFacts, timeout=30.0, description="Slurm tools, controller, partitions, shared out dir")
def probe_slurm(ctx: ProbeContext) -> SlurmFacts:
    s = ctx.settings
    intent = _intent(ctx)
    mount = mount_of(Path(intent.out_dir))
    facts = dict(
        tools=slurm.tools(),
        requested_partition=s.slurm_partition,
        login_host=socket.gethostname(),
        out_dir=intent.out_dir,
        out_mount=mount.mount_point if mount else None,
        out_fstype=mount.fstype if mount else None,
    )
    try:
        controller = slurm.ping()  # first: it answers at once when slurmctld is down; sinfo waits
        version = slurm.version()
        partitions = slurm.partitions(s.recipe.slurm.gres)
    except SlurmError as exc:
        return SlurmFacts(version=None, controller=None, error=str(exc), partitions=[], accounting_error=None, **facts)
    return SlurmFacts(
        version=version,
        controller=controller,
        error=None,
        partitions=partitions,
        accounting_error=slurm.accounting_works(),
        **facts,
    )


def probe_job_script(settings: Settings, workdir: Path, python: str) -> Path:
    """Write the one-task probe job: agent_probe.py (copied into the shared folder, since simdoctor itself
    need not be installed on the nodes) run by the agent's interpreter with the agent's environment."""
    workdir.mkdir(parents=True)
    probe_copy = workdir / "agent_probe.py"
    shutil.copyfile(scripts.path("agent_probe.py"), probe_copy)
    r = settings.recipe
    # simdoctor's own interpreter and package too: `run --executor slurm` runs them in each array task.
    own = (sys.executable, str(Path(simdoctor.__file__).resolve().parent))
    paths = (str(settings.carla_root / r.carla.launcher), r.agent.evaluator, str(workdir), *own)
    (workdir / "request.json").write_text(json.dumps(probe_request(settings, node_paths=paths)))
    directives = sbatch.directives(
        settings,
        job_name=f"{r.slurm.job_name}-probe",
        ntasks=1,
        gres=f"{r.slurm.gres}:1",
        output=str(workdir / "job.log"),
    )
    text = sbatch.render(
        directives,
        agent_environment(settings),
        [python, str(probe_copy)],
        stdin=str(workdir / "request.json"),
        stdout=str(workdir / "answer.json"),
    )
    path = workdir / "probe.sh"
    path.write_text(text)
    return path


def wait_for(job_id: str, deadline: float) -> tuple[bool, Optional[str], Optional[str]]:
    """Poll squeue until the job leaves the queue or the deadline passes: (left, last state, reason)."""
    state = reason = None
    while time.monotonic() < deadline:
        states = slurm.queue_states(job_id)
        if not states:
            return True, state, reason
        state, reason = states[0].state, states[0].reason
        time.sleep(0.5)
    return False, state, reason


def final_state(job_id: str, seen: Optional[str]) -> Optional[str]:
    """The finished job's state from accounting when the cluster keeps it, else the last one squeue showed."""
    try:
        states = slurm.accounting_states(job_id)
    except SlurmError:
        return seen
    return states[0].state if states else seen


@probe("slurm_job", SlurmJobFacts, timeout=330.0, description="a one-task Slurm probe job on a GPU node")
def probe_slurm_job(ctx: ProbeContext) -> SlurmJobFacts:
    s = ctx.settings
    start = time.monotonic()
    python, _ = resolve_python(s)
    workdir = Path(_intent(ctx).out_dir) / ".simdoctor" / "slurm-probe" / uuid.uuid4().hex[:12]

    def result(**kw) -> SlurmJobFacts:
        base = dict(job_id=None, state=None, reason=None, error=None, agent=None)
        return SlurmJobFacts(seconds=round(time.monotonic() - start, 2), **{**base, **kw})

    if python is None:
        return result(error="no agent interpreter here to name in the job (see agent.python)")
    try:
        job_id = slurm.submit(probe_job_script(s, workdir, python))
    except (SlurmError, OSError) as exc:
        return result(error=f"cannot submit the probe job: {exc}")
    try:
        left, state, reason = wait_for(job_id, start + s.recipe.slurm.probe_timeout_s)
    except SlurmError as exc:
        return result(job_id=job_id, error=str(exc))
    if not left:
        with contextlib.suppress(SlurmError):
            slurm.cancel(job_id)
        limit = s.recipe.slurm.probe_timeout_s
        return result(job_id=job_id, state=state, reason=reason, error=f"still {state} after {limit:g}s; cancelled")
    state = final_state(job_id, state)
    answer = workdir / "answer.json"
    if not answer.exists():
        log = (workdir / "job.log").read_text(errors="replace").strip() if (workdir / "job.log").exists() else ""
        why = f"the job ({state or 'finished'}) wrote no answer to {answer}"
        why += f"; its log ends: {log.splitlines()[-1]}" if log else "; no job log either (is the folder shared?)"
        return result(job_id=job_id, state=state, reason=reason, error=why)
    try:
        lines = answer.read_text().strip().splitlines()
        data = json.loads(lines[-1])
    except (OSError, ValueError, IndexError) as exc:
        return result(job_id=job_id, state=state, error=f"unreadable answer {answer}: {exc}")
    base = dict(requested=s.agent_python, source=s.source("agent_python"), python=python, tried=[python],
                pythonpath=pythonpath(s))  # fmt: skip
    return result(job_id=job_id, state=state, reason=reason, agent=facts_from(data, base))
