"""Several GPUs of one machine, without the hardware: the mapping, plan, slot and Slurm code driven with the
facts of a 4-GPU node whose orders all differ. NVML numbers the GPUs in PCI order (0-3, what nvidia-smi and
`--gpus` show, and what CUDA shows under CUDA_DEVICE_ORDER=PCI_BUS_ID); the driver gave the /dev/nvidiaN
files in another order (Slurm's global GPU ids follow those); Vulkan lists them in a third order, with Mesa's
lavapipe in between. Each route's evaluator must then get a CUDA_VISIBLE_DEVICES and a --gpu-rank that name
the same GPU. tests/device/multi_gpu.sh proves the same on a real multi-GPU machine."""

from __future__ import annotations

import dataclasses
import json

import builders
import pytest
from healthy import breaking, gpu_device, healthy_facts, llvmpipe, vk_device
from test_cli import simdoctor

from simdoctor.config.recipe import ConfigError
from simdoctor.doctor import diagnosis
from simdoctor.doctor.checking import CheckContext
from simdoctor.doctor.findings import Status
from simdoctor.doctor.gpumap import vulkan_uuid
from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probes.vulkan import Enumeration
from simdoctor.doctor.probing import dump_facts
from simdoctor.run import runplan
from simdoctor.run.slurm.node import task_gpu

UUIDS = [f"GPU-{i}{i}{i}{i}aaaa-0000-4000-8000-00000000000{i}" for i in range(4)]
MINORS = [2, 3, 0, 1]  # /dev/nvidia<minor> of NVML GPU 0..3
VULKAN_ORDER = [3, 1, None, 0, 2]  # the NVML GPU at each Vulkan index; None: lavapipe
ADAPTER = {0: 3, 1: 1, 2: 4, 3: 0}  # NVML index -> Vulkan index, read off VULKAN_ORDER
ANY_PORT = {"is_free": lambda port: True}


def node(free_gib: float = 139.0) -> GpuFacts:
    gpus = [
        dataclasses.replace(gpu_device(i, UUIDS[i]), minor_number=MINORS[i], memory_free_bytes=int(free_gib * 2**30))
        for i in range(4)
    ]
    return GpuFacts(None, "580.159.04", "13.0", gpus, {})


def vulkan(order: list = VULKAN_ORDER) -> list:
    return [llvmpipe(v) if g is None else vk_device(v, vulkan_uuid(UUIDS[g])) for v, g in enumerate(order)]


def same_gpu(env: dict[str, str], argv: list[str], gpus: GpuFacts, devices: list) -> bool:
    """CUDA_VISIBLE_DEVICES (in PCI order, i.e. NVML's) and --gpu-rank (Vulkan's) name one GPU."""
    rank = int(next(a for a in argv if a.startswith("--gpu-rank=")).split("=", 1)[1])
    cuda = gpus.gpus[int(env["CUDA_VISIBLE_DEVICES"])]
    return env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and devices[rank].uuid == vulkan_uuid(cuda.uuid)


def test_check_shows_every_gpu_with_its_vulkan_index(make_settings, tmp_path):
    settings = make_settings()
    facts = breaking(breaking(healthy_facts(settings), "gpu", gpus=node().gpus), "vulkan",
                     enumeration=Enumeration(True, vulkan()))  # fmt: skip
    finding = next(f for f in diagnosis.diagnose(facts, diagnosis.select(diagnosis.Selection(only=("vulkan",))),
                                               CheckContext(settings)) if f.id == "vulkan.adapter_map")  # fmt: skip
    assert finding.status is Status.OK
    assert finding.summary.startswith("GPU 0 -> 3, GPU 1 -> 1, GPU 2 -> 4, GPU 3 -> 0 (Vulkan order differs")
    assert finding.details == [f"GPU {i} ({UUIDS[i]}) -> -graphicsadapter={ADAPTER[i]}" for i in range(4)]
    dump_facts(facts, tmp_path / "facts.json")  # and as `check -v` prints it
    shown = simdoctor("check", "--facts", str(tmp_path / "facts.json"), "--only", "gpu,vulkan", "-v").stdout
    for i in range(4):
        assert f"GPU {i} ({UUIDS[i]}) -> -graphicsadapter={ADAPTER[i]}" in shown


def test_two_workers_on_each_of_four_gpus(make_settings):
    gpus = node()
    slots, notes = runplan.plan_slots(make_settings(), None, 2, gpus, vulkan(), **ANY_PORT)
    assert [(s.index, s.gpu, s.graphics_adapter) for s in slots] == [
        (i, i % 4, ADAPTER[i % 4]) for i in range(8)
    ]  # worker-major: the first four routes start on four different GPUs
    assert [s.gpu_uuid for s in slots] == UUIDS * 2 and notes == []
    ports = [p for s in slots for p in s.ports.values()]
    assert len(ports) == len(set(ports)) == 32


@pytest.mark.parametrize(
    ("gpus", "workers", "expected"),
    [
        ("1,0", "1", [1, 0]),
        ("1,0", "2", [1, 0, 1, 0]),
        ("3,1", "2", [3, 1, 3, 1]),
        ("2", "2", [2, 2]),
        ("all", "auto", [0, 1, 2, 3]),  # 13 GiB free each: one 12 GiB worker per GPU
    ],
)
def test_a_subset_out_of_order_keeps_its_order_and_mapping(make_settings, gpus, workers, expected):
    slots, _ = runplan.plan_slots(make_settings(), runplan.parse_gpus(gpus), runplan.parse_workers(workers, 16),
                                  node(free_gib=13), vulkan(), **ANY_PORT)  # fmt: skip
    assert [(s.gpu, s.graphics_adapter, s.gpu_uuid) for s in slots] == [(g, ADAPTER[g], UUIDS[g]) for g in expected]


def test_every_launch_names_one_gpu_for_cuda_and_for_carla(make_settings, tmp_path, agent_python, monkeypatch):
    """What `run --dry-run --json` prints for --gpus all and --gpus 1,0, two workers each; simdoctor's own
    CUDA variables (a shell that exported others) do not reach the evaluator."""
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    work = builders.bench2drive_standin(tmp_path / "simlingo")
    settings = make_settings(work_dir=str(work), carla_root=str(tmp_path / "carla"), agent_python=agent_python)
    source = builders.routes_xml(tmp_path / "routes.xml", [builders.standin_route(str(i)) for i in range(8)])
    gpus, devices = node(), vulkan()
    for selected, on in ((None, [0, 1, 2, 3] * 2), ((1, 0), [1, 0] * 4)):
        slots, _ = runplan.plan_slots(settings, selected, 2, gpus, devices, **ANY_PORT)
        plan, _ = runplan.build(settings, runplan.Options(routes=source, out=tmp_path / "out"), slots)
        launches = json.loads(runplan.plan_json(plan))["launches"]
        assert [int(x["env"]["CUDA_VISIBLE_DEVICES"]) for x in launches] == on
        assert all(same_gpu(x["env"], x["argv"], gpus, devices) for x in launches), launches


def test_an_unmapped_gpu_stops_only_the_runs_that_select_it(make_settings):
    """Vulkan does not list NVML's GPU 2 (its ICD cannot open it): runs on the other GPUs go on."""
    settings = make_settings()
    gpus, devices = node(), vulkan([3, 1, None, 0])
    facts = breaking(breaking(healthy_facts(settings), "gpu", gpus=gpus.gpus), "vulkan",
                     enumeration=Enumeration(True, devices))  # fmt: skip
    checks = diagnosis.select(diagnosis.Selection(only=runplan.GPU_CHECKS))
    findings = diagnosis.diagnose(facts, checks, CheckContext(settings))
    for selected, fatal in (((1, 0), []), ((3,), []), ((2,), ["vulkan.adapter_map"]), (None, ["vulkan.adapter_map"])):
        assert [f.id for f in runplan.gpu_gate(findings, gpus, devices, selected)] == fatal
    slots, _ = runplan.plan_slots(settings, (1, 0), 1, gpus, devices, **ANY_PORT)
    assert [(s.gpu, s.graphics_adapter) for s in slots] == [(1, 1), (0, 3)]
    with pytest.raises(runplan.RunError, match="Vulkan does not list GPU 2"):
        runplan.plan_slots(settings, (0, 2), 1, gpus, devices, **ANY_PORT)
    with pytest.raises(ConfigError, match="no GPU 4"):
        runplan.plan_slots(settings, (1, 4), 1, gpus, devices, **ANY_PORT)


def slurm_env(global_id: int, how: str) -> dict[str, str]:
    """What slurmd sets for a task given the node's GPU `global_id` (its place among /dev/nvidia0-3)."""
    if how == "gres":  # ConstrainDevices=no: CUDA_VISIBLE_DEVICES carries the global id too
        return {"SLURM_JOB_GPUS": str(global_id), "CUDA_VISIBLE_DEVICES": str(global_id)}
    if how == "step":  # srun inside a job given every GPU
        return {"SLURM_STEP_GPUS": str(global_id), "SLURM_JOB_GPUS": "0,1,2,3", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    return {"SLURM_JOB_GPUS": str(global_id), "CUDA_VISIBLE_DEVICES": UUIDS[MINORS.index(global_id)]}


@pytest.mark.parametrize("how", ["gres", "step", "uuid"])
@pytest.mark.parametrize("global_id", range(4))
def test_the_gpu_slurm_gives_on_a_four_gpu_node(make_settings, tmp_path, agent_python, global_id, how):
    """The node's array task (simdoctor/run/slurm/node.py) finds the GPU behind /dev/nvidia<id>, and its evaluator
    gets that GPU's NVML index as CUDA_VISIBLE_DEVICES and its Vulkan index as --gpu-rank."""
    gpus, devices = node(), vulkan()
    gpu = task_gpu(slurm_env(global_id, how), 1, gpus, devices)
    nvml = MINORS.index(global_id)
    assert (gpu.index, gpu.uuid, gpu.adapter) == (nvml, UUIDS[nvml], ADAPTER[nvml]), gpu.how
    work = builders.bench2drive_standin(tmp_path / "simlingo")
    settings = make_settings(work_dir=str(work), carla_root=str(tmp_path / "carla"), agent_python=agent_python)
    source = builders.routes_xml(tmp_path / "routes.xml", [builders.standin_route("1")])
    slot = runplan.Slot(0, gpu.index, gpu.uuid, gpu.name, gpu.adapter, {"rpc": 2000, "traffic_manager": 8000})
    plan, _ = runplan.build(settings, runplan.Options(routes=source, out=tmp_path / "out"), [slot])
    run = runplan.launch(plan, plan.tasks[0], slot)  # as run_task makes it on the node
    assert run.env["CUDA_VISIBLE_DEVICES"] == str(nvml) and same_gpu(run.env, run.argv, gpus, devices)


def test_a_constrained_job_on_a_four_gpu_node(make_settings):
    """ConstrainDevices=yes: NVML and Vulkan see only the job's GPU (global id 3, NVML's GPU 1 on the node),
    CUDA numbers it 0, whatever id Slurm names."""
    mine = dataclasses.replace(node().gpus[1], index=0)
    gpus = GpuFacts(None, "580.159.04", "13.0", [mine], {})
    devices = [llvmpipe(0), vk_device(1, vulkan_uuid(mine.uuid))]
    gpu = task_gpu({"SLURM_JOB_GPUS": "3", "CUDA_VISIBLE_DEVICES": "0"}, 1, gpus, devices)
    assert (gpu.index, gpu.uuid, gpu.adapter) == (0, UUIDS[1], 1) and "the only GPU(s) NVML sees" in gpu.how


def test_a_node_without_minor_numbers_takes_the_id_as_the_nvml_index():
    gpus = GpuFacts(None, "580", "13.0", [dataclasses.replace(g, minor_number=None) for g in node().gpus], {})
    gpu = task_gpu({"SLURM_JOB_GPUS": "2", "CUDA_VISIBLE_DEVICES": "2"}, 1, gpus, vulkan())
    assert (gpu.index, gpu.adapter) == (2, ADAPTER[2]) and "as the NVML index" in gpu.how
