"""The Slurm backend's pieces on their own: what a task that left the queue leaves of its route (settle), the
reason slurmstepd writes, the GPU a task was given as NVML and Vulkan know it (from hand-built facts and from
the facts gathered on the real H100), the node's port claims, and the job script and command `--dry-run`
prints."""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
from pathlib import Path

import pytest
from healthy import gpu_device, llvmpipe, vk_device

from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probing import load_facts
from simdoctor.run.results import Attempt, Kind, ResultsFile, RouteRecord, TaskRecord
from simdoctor.run.runplan import vulkan_devices
from simdoctor.run.slurm.backend import CANCELLED_BY_US, Outcome, settle, stepd_state
from simdoctor.run.slurm.node import NodeError, PortClaims, task_gpu
from simdoctor.system.sbatch import array

REPO = Path(__file__).resolve().parents[1]
LABEL = "41_3"
WHY = "array task 41_3 was stopped by Slurm: CANCELLED"
NO_RESULTS = ResultsFile("res/3.json", [], None, None, "no results file written")


def perfect() -> ResultsFile:
    record = RouteRecord("RouteScenario_3_rep0", "Perfect", 0, "Town01", "Accident_1", None, 100.0, 100.0, 1.0, {},
                         10.0, 2.0, 1.0)  # fmt: skip
    return ResultsFile("res/3.json", [record], [1, 1], "Finished")


def attempt(number=1, job=LABEL, ended=10.0, kind=Kind.RETRY, reason="no route record written", **kw) -> Attempt:
    return Attempt(number, 0, {"rpc": 20000}, 1.0, ended=ended, kind=kind, reason=reason, job=job, **kw)


def decide(record, cancelled=False, retries=1, stopped=False, found=NO_RESULTS):
    return settle(record, LABEL, cancelled, retries, WHY, stopped, found, 0.5, 20.0)


def test_a_decided_route_stands() -> None:
    record = TaskRecord("3", [attempt(kind=Kind.RESULT, reason="Perfect")], final="result")
    assert decide(record, stopped=True) == (record, Outcome.DECIDED)


def test_an_infrastructure_failure_is_resubmitted_while_retries_last() -> None:
    record = TaskRecord("3", [attempt()])
    assert decide(record) == (record, Outcome.AGAIN)
    twice = TaskRecord("3", [attempt(job="40_3"), attempt(2)])
    settled, outcome = decide(twice)
    assert outcome is Outcome.DECIDED and settled.final == "crashed"


def test_a_task_stopped_by_slurm_costs_a_retry_and_says_why() -> None:
    interrupted = TaskRecord("3", [attempt(kind=None, reason="interrupted; stopped 2 process(es)")])
    settled, outcome = decide(interrupted, stopped=True)
    assert outcome is Outcome.AGAIN and settled.last.kind is Kind.RETRY
    assert settled.last.reason == f"{WHY} (interrupted; stopped 2 process(es))"
    assert decide(settled, stopped=True) == (settled, Outcome.AGAIN)  # idempotent: a rerun settles it again
    killed = TaskRecord("3", [attempt(reason="no route record written; the evaluator killed by SIGTERM")])
    settled, _ = decide(killed, stopped=True)
    assert settled.last.reason.startswith(WHY)


def test_a_task_simdoctor_cancelled_costs_nothing() -> None:
    record = TaskRecord("3", [attempt(reason="no route record written; the evaluator killed by SIGTERM")])
    settled, outcome = decide(record, cancelled=True, retries=0)
    assert outcome is Outcome.CANCELLED and settled.final is None
    assert settled.last.kind is None and settled.last.reason.startswith(CANCELLED_BY_US)
    assert decide(settled, cancelled=True) == (settled, Outcome.CANCELLED)
    pending = TaskRecord("3", [attempt(job="40_3", kind=Kind.RESULT)])  # the cancelled task never started
    assert decide(pending, cancelled=True) == (pending, Outcome.CANCELLED)


def test_a_task_killed_outright_is_judged_on_what_it_left() -> None:
    running = TaskRecord("3", [attempt(ended=None, kind=None, reason=None)])
    settled, outcome = decide(running, stopped=True)
    assert outcome is Outcome.AGAIN and settled.last.ended == 20.0 and settled.last.kind is Kind.RETRY
    assert settled.last.reason == (f"{WHY}; the task ended while its attempt ran (its simdoctor was killed); "
                                   "no results file written; the evaluator ended in an unknown way")  # fmt: skip
    settled, outcome = decide(running, found=perfect())  # it wrote its result just before the node died
    assert outcome is Outcome.DECIDED and settled.final == "result" and settled.last.status == "Perfect"


def test_a_task_that_never_started_its_route_is_an_attempt_of_its_own() -> None:
    earlier = TaskRecord("3", [attempt(job="40_3")])
    settled, outcome = decide(earlier, retries=2)
    assert outcome is Outcome.AGAIN and len(settled.attempts) == 2
    added = settled.last
    assert (added.number, added.job, added.kind, added.tree, added.started) == (2, LABEL, Kind.RETRY, None, 0.5)
    assert added.reason == f"{WHY}; it never started the route"
    assert decide(settled, retries=2) == (settled, Outcome.AGAIN)


@pytest.mark.parametrize(
    ("line", "state"),
    [
        ("slurmstepd-vm: error: *** JOB 13 ON vm CANCELLED AT 2026-11-24T00:26:38 ***", "CANCELLED"),
        ("slurmstepd: error: *** JOB 6 ON n1 CANCELLED AT 2026-11-24T00:17:16 DUE TO TIME LIMIT ***", "TIMEOUT"),
        ("slurmstepd: error: *** JOB 6 ON n1 CANCELLED AT 2026-11-24T00:17:16 DUE TO PREEMPTION ***", "PREEMPTED"),
        (
            "slurmstepd: error: *** JOB 6 ON n1 CANCELLED AT 2026-11-24T00:17:16 DUE TO NODE FAILURE, SEE SLURMCTLD "
            "LOG FOR DETAILS ***",
            "NODE_FAIL",
        ),
        ("slurmstepd: error: *** JOB 6 CANCELLED AT 2019-11-24T00:17:16 DUE TO NODE FAILURE ***", "NODE_FAIL"),
        ("[0:00:01] route 3: Perfect in 1.0 s", None),
    ],
)
def test_the_reason_slurmstepd_writes(line: str, state) -> None:
    assert stepd_state(f"simdoctor: array task 41_3 on vm: route 3\n{line}\n") == state


def two_gpus(minors=(None, None)) -> GpuFacts:
    gpus = [dataclasses.replace(gpu_device(i, f"GPU-0000000{i}-aaaa"), minor_number=m) for i, m in enumerate(minors)]
    return GpuFacts(None, "580.159.04", "13.0", gpus, {})


# Vulkan lists the GPUs in another order than NVML, with lavapipe first: the index must come from the UUID.
DEVICES = [llvmpipe(0), vk_device(1, "00000001-aaaa"), vk_device(2, "00000000-aaaa")]


@pytest.mark.parametrize(
    ("env", "minors", "nvml", "adapter"),
    [
        ({"CUDA_VISIBLE_DEVICES": "GPU-00000001-aaaa", "SLURM_JOB_GPUS": "1"}, (None, None), 1, 1),
        ({"CUDA_VISIBLE_DEVICES": "1", "SLURM_JOB_GPUS": "1"}, (None, None), 1, 1),  # NVML index
        ({"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "0"}, (1, 0), 1, 1),  # /dev/nvidia0 is NVML's GPU 1
        ({"CUDA_VISIBLE_DEVICES": "0", "SLURM_STEP_GPUS": "1", "SLURM_JOB_GPUS": "0,1"}, (0, 1), 1, 1),
    ],
)
def test_the_gpu_slurm_gave_as_nvml_and_vulkan_know_it(env, minors, nvml, adapter) -> None:
    gpu = task_gpu(env, 1, two_gpus(minors), DEVICES)
    assert (gpu.index, gpu.uuid, gpu.adapter) == (nvml, f"GPU-0000000{nvml}-aaaa", adapter), gpu.how


def test_a_job_that_sees_only_its_gpu() -> None:
    """ConstrainDevices: NVML lists only the task's GPU, whatever its global id."""
    facts = GpuFacts(None, "580", "13.0", [gpu_device(0, "GPU-00000001-aaaa")], {})
    gpu = task_gpu({"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "5"}, 1, facts, DEVICES)
    assert (gpu.index, gpu.adapter) == (0, 1) and "the only GPU(s) NVML sees" in gpu.how


def test_the_gpu_mapping_on_the_real_h100() -> None:
    facts = load_facts(REPO / "tests" / "data" / "h100" / "facts-loader.json")
    gpu = task_gpu({"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "0"}, 1, facts.get("gpu"), vulkan_devices(facts))
    assert (gpu.index, gpu.uuid, gpu.adapter) == (0, "GPU-aea960cf-1259-aa8a-ee7e-6cf5f3902a2e", 0)


@pytest.mark.parametrize(
    ("env", "facts", "devices", "says"),
    [
        ({}, two_gpus(), DEVICES, "Slurm gave this task no GPU"),
        ({"SLURM_JOB_GPUS": "0"}, GpuFacts("NVML: Driver Not Loaded", None, None, [], {}), DEVICES,
         "NVML cannot be read there (NVML: Driver Not Loaded)"),
        ({"SLURM_JOB_GPUS": "7"}, two_gpus(), DEVICES, "that NVML does not list"),
        ({"SLURM_JOB_GPUS": "0"}, two_gpus(), [llvmpipe(0)], "Vulkan on"),
    ],
)  # fmt: skip
def test_a_node_that_cannot_run_the_task_says_why(env, facts, devices, says) -> None:
    with pytest.raises(NodeError, match=says.replace("(", r"\(").replace(")", r"\)")):
        task_gpu(env, 1, facts, devices)


def test_no_gpu_asked_for() -> None:
    gpu = task_gpu({"CUDA_VISIBLE_DEVICES": "0"}, 0, None, [])
    assert (gpu.index, gpu.adapter) == (None, None)


def test_port_claims_keep_tasks_on_one_node_apart() -> None:
    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    with PortClaims() as first, PortClaims() as second:
        assert first.take(port) and first.take(port)  # its own claim
        assert not second.take(port)  # another task's (abstract sockets are per node, not per process)
        first.keep_only(set())
        assert second.take(port)
    with socket.socket() as busy, PortClaims() as claims:
        busy.bind(("", 0))
        busy.listen()
        assert not claims.take(busy.getsockname()[1]) and claims.held == {}  # claimed but in use: let go


def test_array_specs() -> None:
    assert (array(1), array(6), array(6, 2)) == ("0", "0-5", "0-5%2")


def test_dry_run_prints_the_script_and_the_submission(simdoctor, tmp_path: Path) -> None:
    import builders

    source = builders.routes_xml(tmp_path / "routes.xml", [{"id": str(i), "town": "Town01", "type": "Accident"}
                                                            for i in range(3)])  # fmt: skip
    out = tmp_path / "out"
    args = ("run", "--executor", "slurm", "--dry-run", "--routes", str(source), "--out", str(out),
            "--agent-python", sys.executable, "--partition", "gpu", "--account", "lab", "--max-concurrent", "2",
            "--time", "3-00:00", "--route-timeout", "600")  # fmt: skip
    done = simdoctor(*args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    script = lines[lines.index("#!/bin/sh") : lines.index("submission:") - 1]
    assert script[1:12] == [
        "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --job-name=simdoctor", "#SBATCH --array=0-2%2",
        "#SBATCH --ntasks=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=40G", "#SBATCH --gres=gpu:1",
        "#SBATCH --time=3-00:00", f"#SBATCH --output={out}/slurm/1/%A_%a.log", f"#SBATCH --chdir={out}",
    ]  # fmt: skip
    assert script[-1] == f"exec {sys.executable} -m simdoctor run-task {out}/slurm/1/spec.json"
    assert "unset HF_TOKEN HUGGING_FACE_HUB_TOKEN" in script  # the login shell's token stays off the nodes
    assert lines[lines.index("submission:") + 1] == f"sbatch --parsable {out}/slurm/1/job.sh"
    assert "  2: 2 (Town01, Accident)" in lines
    assert not out.exists()  # nothing written, nothing submitted
    as_json = json.loads(simdoctor(*args, "--json").stdout)
    assert as_json["submit"] == ["sbatch", "--parsable", f"{out}/slurm/1/job.sh"]
    assert as_json["routes"] == ["0", "1", "2"]
    default = simdoctor(*args[:-6], "--route-timeout", "600", "--gpus-per-task", "0")
    assert "#SBATCH --time=21\n" in default.stdout and "--gres" not in default.stdout  # 600 s + 2 x 10 s + 600 s


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--executor", "slurm", "--gpus", "0"), "--gpus: with --executor slurm, Slurm gives each task its GPU"),
        (("--time", "10"), "--time: only with --executor slurm"),
        (("--executor", "slurm", "--gpus-per-task", "2"), "--gpus-per-task 2: a route's evaluator runs CARLA"),
        (("--executor", "slurm", "--on-interrupt", "kill"), "'kill' is not one of 'cancel', 'leave'"),
        (("--executor", "slurm", "--out", "/tmp/with space"), "cannot hold spaces"),
        (("--executor", "pbs",), "'pbs' is not one of 'local', 'slurm'"),
    ],
)  # fmt: skip
def test_options_that_do_not_fit_the_backend(simdoctor, args, says) -> None:
    done = simdoctor("run", "--dry-run", *args)
    assert done.returncode == 2 and says in done.stderr, done.stderr
