"""slurm (`check --executor slurm`): can this login node run the evaluation on the cluster?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from simdoctor.config.recipe import SLURM_CLIENT
from simdoctor.doctor.checking import CheckContext, check, fail, ok, plural, skip, warn
from simdoctor.doctor.distro import install_commands, os_of
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probing import Facts

if TYPE_CHECKING:  # names for annotations: the Slurm probe's module loads only when a check of the cluster runs it
    from simdoctor.doctor.probes.slurm import SlurmFacts, SlurmJobFacts
    from simdoctor.system.slurm import Partition

PARTITION_FIX_TEXT = "Name a partition with GPU nodes (flag, or once in SIMDOCTOR_SLURM_PARTITION / the config file)."


def chosen(s: SlurmFacts) -> Optional[Partition]:
    """The requested partition, or the cluster's default one when none is requested."""
    if s.requested_partition:
        return next((p for p in s.partitions if p.name == s.requested_partition), None)
    return next((p for p in s.partitions if p.default), None)


def partition_fix(s: SlurmFacts) -> Fix:
    gpu = [p.name for p in s.partitions if any(p.gpus_per_node)]
    return Fix(PARTITION_FIX_TEXT, [f"export SIMDOCTOR_SLURM_PARTITION={gpu[0]}"] if gpu else ["sinfo -o '%P %G %D'"])


@check("slurm.tools", "Slurm tools", needs=("slurm",))
def tools(facts: Facts, ctx: CheckContext):
    s: SlurmFacts = facts.get("slurm")
    missing = [name for name, path in s.tools.items() if path is None]
    if missing:
        client = install_commands(ctx.settings.recipe.platform, os_of(facts.get("system")), [SLURM_CLIENT])
        return fail(
            f"not on PATH: {', '.join(missing)}",
            Fix(
                "Run simdoctor on a login node with Slurm's client tools (or load the site's slurm module).",
                ["module load slurm", *client],
            ),
        )
    return ok(f"{', '.join(s.tools)} found", [f"{k}: {v}" for k, v in s.tools.items()])


@check("slurm.controller", "Slurm controller", needs=("slurm",))
def controller(facts: Facts, ctx: CheckContext):
    s: SlurmFacts = facts.get("slurm")
    if s.error:
        return fail(
            f"the cluster cannot be asked: {s.error}",
            Fix(
                "Check that slurmctld answers from this host (and that SLURM_CONF, if set, is right).",
                ["scontrol ping"],
            ),
        )
    return ok(f"Slurm {s.version}; {s.controller}")


@check("slurm.partition", "Slurm partition", needs=("slurm",))
def partition(facts: Facts, ctx: CheckContext):
    s: SlurmFacts = facts.get("slurm")
    if s.error:
        return skip("no answer from the cluster")
    p = chosen(s)
    names = ", ".join(f"{q.name}{'*' if q.default else ''}" for q in s.partitions) or "none"
    if p is None:
        what = (
            f"partition {s.requested_partition!r} does not exist" if s.requested_partition else "no default partition"
        )
        return fail(f"{what} (partitions: {names})", partition_fix(s))
    if p.available != "up":
        return fail(f"partition {p.name} is {p.available}", partition_fix(s), [f"partitions: {names}"])
    how = "requested" if s.requested_partition else "the cluster's default"
    return ok(f"{p.name} ({how}) is up with {plural(len(p.nodes), 'node')}", [f"partitions: {names}"])


@check("slurm.gpus", "GPU nodes", needs=("slurm",))
def gpus(facts: Facts, ctx: CheckContext):
    s: SlurmFacts = facts.get("slurm")
    p = chosen(s) if not s.error else None
    if p is None:
        return skip("no partition to look at")
    gres = ctx.settings.recipe.slurm.gres
    details = [
        f"{node}: {g} {gres}, {c} CPUs, {m} MB"
        for node, g, c, m in zip(p.nodes, p.gpus_per_node, p.cpus_per_node, p.memory_mb_per_node)
    ]
    with_gpus = [n for n, g in zip(p.nodes, p.gpus_per_node) if g]
    if not with_gpus:
        return fail(
            f"partition {p.name} has no node with `{gres}` GRES: a task could not get a GPU", partition_fix(s), details
        )
    w = ctx.settings.recipe.worker
    small = [n for n, c, m in zip(p.nodes, p.cpus_per_node, p.memory_mb_per_node) if c < w.cpus or m < w.ram_gib * 1024]
    summary = f"{plural(len(with_gpus), 'node')} with GPUs, {sum(p.gpus_per_node)} GPUs in all"
    if small:
        return warn(
            f"{summary}; {', '.join(small)} below one worker's {w.cpus} CPUs / {w.ram_gib:g} GiB",
            Fix("Ask for less per task (--cpus-per-task, --mem), or use bigger nodes."),
            details,
        )
    return ok(summary, details)


@check("slurm.out_dir", "Shared output folder", needs=("slurm",))
def out_dir(facts: Facts, ctx: CheckContext):
    s: SlurmFacts = facts.get("slurm")
    shared = ctx.settings.recipe.slurm.shared_filesystems
    where = f"{s.out_dir} ({s.out_fstype or 'unknown'} at {s.out_mount or '?'})"
    if s.out_fstype in shared:
        return ok(f"{where}: shared with the nodes")
    p = chosen(s) if not s.error else None
    if p is not None and p.nodes and set(p.nodes) <= {s.login_host}:
        return ok(f"{where}: local, and the partition's only node is this host")
    return warn(
        f"{where} is local to this host: tasks on other nodes would write their results where simdoctor cannot "
        "read them",
        Fix(
            "Put --out on a filesystem every node mounts (NFS, Lustre, GPFS, BeeGFS, ...).",
            ["df -hT " + s.out_dir, "simdoctor run --executor slurm --out /shared/path ..."],
        ),
    )


@check("slurm.accounting", "Slurm accounting", needs=("slurm",))
def accounting(facts: Facts, ctx: CheckContext):
    s: SlurmFacts = facts.get("slurm")
    if s.error:
        return skip("no answer from the cluster")
    if s.accounting_error:
        return warn(
            f"sacct does not answer ({s.accounting_error}): finished jobs' states (NODE_FAIL, PREEMPTED, TIMEOUT) "
            "are unknown; simdoctor then judges a task by its own results file",
            Fix("Nothing to do for simdoctor; a cluster admin can enable slurmdbd accounting."),
        )
    return ok("sacct answers: finished jobs' states are known")


@check("slurm.probe_job", "Probe job on a node (--probe)", needs=("slurm_job",))
def probe_job(facts: Facts, ctx: CheckContext):
    j: SlurmJobFacts = facts.get("slurm_job")
    if j.error or j.agent is None:
        return fail(
            f"the probe job {j.job_id or '(not submitted)'} gave no answer: {j.error}",
            Fix("Look at the job's log and state.", [f"scontrol show job {j.job_id}"] if j.job_id else ["sinfo"]),
        )
    a, node = j.agent, j.agent.node
    details = [f"job {j.job_id} ({j.state}) on {node.hostname if node else '?'} in {j.seconds}s"]
    details += [f"{k}={v}" for k, v in (node.variables if node else {}).items()]
    details += [f"{path}: {'present' if there else 'MISSING'}" for path, there in (node.paths if node else {}).items()]
    problems = []
    if a.carla is not None and not a.carla.ok:
        problems.append(f"carla does not import there ({a.carla.error})")
    problems += [f"`{m}` not importable there" for m, st in (a.modules or {}).items() if not st.found]
    problems += [f"{p} missing there" for p, there in (node.paths if node else {}).items() if not there]
    if node is not None and not (node.variables.get("CUDA_VISIBLE_DEVICES") or node.variables.get("SLURM_JOB_GPUS")):
        problems.append("Slurm gave the task no GPU (no CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS)")
    summary = f"job {j.job_id} ran on {node.hostname if node else '?'}: Python {a.version} at {a.python}"
    if problems:
        return fail(
            f"{summary}, but {problems[0]}" + (f" (and {len(problems) - 1} more)" if problems[1:] else ""),
            Fix(
                "Install CARLA, the SimLingo checkout, the agent's environment and simdoctor (its interpreter runs "
                "each task of `run --executor slurm`) on a filesystem the nodes mount, at the same paths."
            ),
            details + problems,
        )
    return ok(summary, details)
