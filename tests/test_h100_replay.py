"""The facts gathered on the lent H100 machine (tests/data/h100/collect.sh), replayed through the checks.

bare: the machine as it comes (NVIDIA ICD present, no Vulkan loader); loader: with Debian's loader
unpacked; deep: the same with the machine's Python 3.12 + torch 2.11.0+cu130 as the agent, --deep.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from healthy import context, settings_fixture  # noqa: F401  (the `settings` fixture)

from simdoctor.config.settings import Settings
from simdoctor.doctor.diagnosis import Selection, diagnose, select
from simdoctor.doctor.findings import Finding, Status
from simdoctor.doctor.probing import load_facts

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "h100"
H100 = "NVIDIA H100 80GB HBM3"
H100_UUID = "GPU-aea960cf-1259-aa8a-ee7e-6cf5f3902a2e"
NVIDIA_ICD = "/usr/share/vulkan/icd.d/nvidia_icd.json"
GLX_NVIDIA = "/usr/local/nvidia/lib64/libGLX_nvidia.so.0"
# What `simdoctor check` said on the machine with the loader unpacked (the same for the bare run,
# except the vulkan lines): root, and nothing of CARLA, the agent or the weights installed yet.
LOADER_STATUSES = {
    "system.os": "ok", "system.cpu": "ok", "system.memory": "ok", "system.disk": "ok", "system.user": "fail",
    "gpu.driver": "ok", "gpu.devices": "ok", "gpu.processes": "ok", "gpu.stale_carla": "ok",
    "gpu.graphics_libs": "ok",
    "vulkan.loader": "ok", "vulkan.icd": "ok", "vulkan.icd_duplicates": "ok", "vulkan.devices": "ok",
    "vulkan.adapter_map": "ok",
    "display.server": "ok", "display.renderer": "skip", "display.virtualgl": "skip",
    "carla.root": "fail", "carla.binaries": "skip", "carla.version": "skip", "carla.maps": "skip",
    "carla.ports": "ok", "carla.server": "skip", "carla.client_version": "skip",
    "agent.python": "fail", "agent.carla_client": "skip", "agent.imports": "skip", "agent.module": "skip",
    "agent.torch": "skip", "agent.packages": "skip", "agent.deep": "skip",
    # recorded before the packages and checkout probes existed: their checks have no facts to judge
    "system.packages": "skip", "agent.checkout": "skip", "weights.hub_cache": "skip",
    "weights.checkpoint": "fail", "weights.config": "fail", "weights.base_model": "fail",
    "network.hf": "warn",
}  # fmt: skip


def replay(name: str, settings: Settings, deep: bool = False) -> dict[str, Finding]:
    facts = load_facts(DATA / f"facts-{name}.json")
    return {f.id: f for f in diagnose(facts, select(Selection()), context(settings, deep=deep))}


def test_bare_machine_needs_the_vulkan_loader(settings: Settings) -> None:
    found = replay("bare", settings)
    loader = found["vulkan.loader"]
    assert loader.status is Status.FAIL
    assert "libvulkan.so.1" in loader.summary
    assert loader.fix is not None and loader.fix.commands == ["apt-get install -y libvulkan1"]  # root: no sudo
    icd = found["vulkan.icd"]
    assert icd.status is Status.OK
    assert icd.summary == f"{NVIDIA_ICD} -> {GLX_NVIDIA}"
    assert found["vulkan.devices"].status is Status.SKIP
    assert found["vulkan.adapter_map"].status is Status.SKIP
    assert {i: f.status.value for i, f in found.items() if not i.startswith("vulkan.")} == {
        i: s for i, s in LOADER_STATUSES.items() if not i.startswith("vulkan.")
    }


def test_with_the_loader_the_h100_is_vulkan_device_zero(settings: Settings) -> None:
    found = replay("loader", settings)
    assert {i: f.status.value for i, f in found.items()} == LOADER_STATUSES
    devices = found["vulkan.devices"]
    assert devices.summary == f"1 GPU device: {H100} (DISCRETE_GPU)"
    assert devices.details[0].startswith(f"[0] {H100} (DISCRETE_GPU, vendor 0x10de, uuid {H100_UUID[4:]}")
    adapters = found["vulkan.adapter_map"]
    assert adapters.summary == "GPU 0 -> 0"
    assert adapters.details == [f"GPU 0 ({H100_UUID}) -> -graphicsadapter=0"]
    assert found["gpu.driver"].summary == "driver 580.159.04, CUDA 13.0"
    assert found["vulkan.icd"].summary == f"{NVIDIA_ICD} -> {GLX_NVIDIA}"


def test_deep_run_imports_torch_on_the_h100(settings: Settings) -> None:
    gathered = load_facts(DATA / "facts-deep.json").get("agent").deep
    assert (gathered.cuda_available, gathered.device_count, gathered.op_ok) == (True, 1, True)
    assert "sm_90" in gathered.arch_list
    found = replay("deep", settings, deep=True)
    deep = found["agent.deep"]
    # torch ran on the GPU; the agent module was not there to import (no SimLingo checkout on the machine).
    cuda, took = deep.details
    assert cuda.startswith("cuda available: True, devices: 1, archs: [")
    assert "'sm_90'" in cuda
    assert took == "took 8.56s"
    # torch's CUDA operation ran on the H100; there was no SimLingo checkout, so no agent import was tried
    assert deep.status is Status.OK
    assert deep.summary == "torch runs on the GPU (the agent module was not imported: see agent.module)"
    torch = found["agent.torch"]
    assert torch.status is Status.WARN
    assert torch.summary == "torch 2.11.0+cu130, CUDA 13.0; SimLingo pins torch 2.2.0"
    assert found["agent.python"].status is Status.WARN
    assert "Python 3.12.3" in found["agent.python"].summary


def test_deep_facts_are_ignored_without_deep(settings: Settings) -> None:
    assert replay("deep", settings)["agent.deep"].status is Status.SKIP


@pytest.mark.usefixtures("home")
def test_cli_replays_the_loader_facts() -> None:
    """`simdoctor check --facts ... --json` as a user runs it: exit 1 (root, nothing installed yet)."""
    out = subprocess.run(
        [sys.executable, "-m", "simdoctor", "check", "--facts", str(DATA / "facts-loader.json"), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["schema_version"] == 1
    assert {r["id"]: r["status"] for r in report["results"]} == LOADER_STATUSES
    adapters = next(r for r in report["results"] if r["id"] == "vulkan.adapter_map")
    assert adapters["details"] == [f"GPU 0 ({H100_UUID}) -> -graphicsadapter=0"]
    summary = report["summary"]
    assert (summary["ok"], summary["warn"], summary["fail"], summary["skip"]) == (16, 1, 6, 16)
    assert summary["exit_code"] == 1
