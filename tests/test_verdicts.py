"""Verdicts from hand-built facts: each test breaks one fact of the healthy machine (tests/healthy.py)
and checks the finding's status, that its summary names the problem, and the exact fix commands.

Tests marked xfail(strict=True) state the behaviour a check should have and does not yet; their
reasons say what is wrong, for the check's owner to fix.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import replace

import pytest
from healthy import (
    DRIVER_PACKAGES,
    GPU_NAME,
    NVIDIA_ICD,
    VK_UUID,
    agent_python,
    breaking,
    context,
    gpu_device,
    healthy_facts,
    icd,
    lavapipe_icd,
    llvmpipe,
    settings_fixture,  # noqa: F401  (the `settings` fixture)
    vk_device,
)

from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings
from simdoctor.doctor import rootfix
from simdoctor.doctor.checking import CHECKS, CheckContext
from simdoctor.doctor.diagnosis import (
    Selection,
    applicable,
    diagnose,
    needed_probes,
    probe_failure_finding,
    select,
)
from simdoctor.doctor.findings import Finding, Status, exit_code
from simdoctor.doctor.probes.agent import DeepFacts, HubResolution, ModuleState, TorchBuild
from simdoctor.doctor.probes.display import Glx, XServer
from simdoctor.doctor.probes.gpu import GpuProcess
from simdoctor.doctor.probes.servers import RecordedServer
from simdoctor.doctor.probes.slurm import SlurmIntent
from simdoctor.doctor.probes.system import OsRelease
from simdoctor.doctor.probes.vulkan import Enumeration
from simdoctor.doctor.probes.window import Presentation, WindowFacts
from simdoctor.doctor.probing import (
    REGISTRY,
    Facts,
    Probe,
    ProbeContext,
    ProbeFailure,
    dump_facts,
    load_facts,
    run_probes,
)

GIB = 2**30
VK_UUID_2 = "0c4d9a7b-61e2-4f38-8d15-b7a9e3c2f106"
GPU_UUID_2 = f"GPU-{VK_UUID_2}"
ALL_IDS = [c.id for c in CHECKS]
# The recipe's driver guide for Ubuntu (the healthy machine's distribution), as a normal user with sudo.
UBUNTU_DRIVER = ["sudo apt-get install -y ubuntu-drivers-common", "sudo ubuntu-drivers install", "sudo reboot"]
# The docker group speaks only with --backend docker, the slurm group only with --executor slurm, viz only with --viz.
PROCESS_IDS = [c.id for c in CHECKS if c.group not in ("docker", "slurm", "viz") and c.id != "display.window"]


@pytest.fixture
def facts(settings: Settings) -> Facts:
    return healthy_facts(settings)


@pytest.fixture
def ctx(settings: Settings) -> CheckContext:
    return context(settings)


def verdict(check_id: str, facts: Facts, ctx: CheckContext) -> Finding:
    """The finding of one check, through diagnose (so a check whose probe failed is skipped, as in `check`)."""
    found = [f for f in diagnose(facts, select(Selection(only=(check_id,))), ctx) if f.id == check_id]
    assert len(found) == 1, found
    return found[0]


def commands(finding: Finding) -> list[str]:
    assert finding.fix is not None, finding
    return finding.fix.commands


def named(finding: Finding, *words: str) -> None:
    """The summary names every one of `words`."""
    for word in words:
        assert word in finding.summary, (word, finding.summary)


# ---------------------------------------------------------------- the healthy machine

SKIPPED_WHEN_HEALTHY = {
    "display.renderer": "no display",  # DISPLAY unset: off-screen rendering uses none
    "display.virtualgl": "vglrun not installed",  # only useful for windows on a CPU display
    "carla.server": "no server on localhost:2000",  # nothing runs yet
    "carla.client_version": "no server version to compare",  # follows from no server
    "agent.deep": "run with --deep",  # the real import runs only with --deep
}


def test_healthy_machine_is_ok_or_skip(facts: Facts, ctx: CheckContext) -> None:
    findings = diagnose(facts, select(Selection()), ctx)
    assert [f.id for f in findings] == PROCESS_IDS
    skipped = {f.id: f.summary for f in findings if f.status is Status.SKIP}
    assert sorted(skipped) == sorted(SKIPPED_WHEN_HEALTHY)
    for check_id, why in SKIPPED_WHEN_HEALTHY.items():
        assert why in skipped[check_id]
    assert {f.id for f in findings if f.status is Status.OK} == set(PROCESS_IDS) - set(SKIPPED_WHEN_HEALTHY)
    assert all(f.fix is None for f in findings)
    assert exit_code(findings, strict=True) == 0


def _replayed(facts: Facts, path) -> Facts:
    dump_facts(facts, path)
    return load_facts(path)


def test_healthy_facts_survive_a_dump_and_replay(facts: Facts, ctx: CheckContext, tmp_path) -> None:
    """The hand-built facts have the probes' exact types: a facts dump reads back to the same verdicts."""
    checks = select(Selection())
    replayed = diagnose(_replayed(facts, tmp_path / "facts.json"), checks, ctx)
    assert [(f.id, f.status) for f in replayed] == [(f.id, f.status) for f in diagnose(facts, checks, ctx)]


def test_replayed_facts_give_the_same_findings_word_for_word(facts: Facts, ctx: CheckContext, tmp_path) -> None:
    checks = select(Selection())
    assert diagnose(_replayed(facts, tmp_path / "facts.json"), checks, ctx) == diagnose(facts, checks, ctx)


def test_every_finding_has_a_breaking_test() -> None:
    """Each check id has a test of its own here (test_<group>_<name>_...), not counting xfail ones."""
    ids = sorted(ALL_IDS, key=len, reverse=True)  # vulkan.icd_duplicates before vulkan.icd
    covered = set()
    for name, fn in globals().items():
        if not name.startswith("test_") or any(m.name == "xfail" for m in getattr(fn, "pytestmark", [])):
            continue
        hit = next((i for i in ids if name.startswith(f"test_{i.replace('.', '_')}_")), None)
        if hit:
            covered.add(hit)
    assert sorted(set(ALL_IDS) - covered) == []


# ---------------------------------------------------------------- system


def test_system_os_arm_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("system.os", breaking(facts, "system", arch="aarch64"), ctx)
    assert f.status is Status.FAIL
    named(f, "aarch64", "x86-64 only")


def test_system_os_old_glibc_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("system.os", breaking(facts, "system", glibc="2.17"), ctx)
    assert f.status is Status.FAIL
    named(f, "glibc 2.17 is older than 2.27")


def test_system_cpu_few_cores_warns(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("system.cpu", breaking(facts, "system", cpus_usable=4), ctx)
    assert f.status is Status.WARN
    named(f, "4 of 32 cores usable", "wants 8")


def test_system_memory_small_warns(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("system.memory", breaking(facts, "system", mem_total_bytes=32 * GIB), ctx)
    assert f.status is Status.WARN
    named(f, "32.0 GiB RAM", "40 GiB")


def _disks_free(facts: Facts, free: int) -> Facts:
    return breaking(facts, "system", disks=[replace(d, free_bytes=free) for d in facts.get("system").disks])


def test_system_disk_little_space_is_fine_once_everything_is_installed(facts: Facts, ctx: CheckContext) -> None:
    assert verdict("system.disk", _disks_free(facts, 1 * GIB), ctx).status is Status.OK


def test_system_disk_short_for_carla_still_to_install(facts: Facts, ctx: CheckContext) -> None:
    home = facts.get("system").disks[0].measured_at
    fresh = breaking(_disks_free(facts, 30 * GIB), "carla", version=None)
    f = verdict("system.disk", fresh, ctx)
    assert f.status is Status.FAIL
    named(f, f"30.0 GiB free on the filesystem of {home}", "40 GiB are needed")
    assert commands(f) == [f"df -h {home}"]


def test_system_disk_needs_add_up_on_one_filesystem(facts: Facts, ctx: CheckContext) -> None:
    """CARLA (40 GiB) and the weights (12 GiB) both go on /home: 45 GiB free is not enough."""
    w = facts.get("weights")
    fresh = breaking(_disks_free(facts, 45 * GIB), "carla", version=None)
    fresh = breaking(fresh, "weights", files=[replace(x, exists=False, size=None) for x in w.files])
    f = verdict("system.disk", fresh, ctx)
    assert f.status is Status.FAIL
    named(f, "45.0 GiB free", "52 GiB are needed")


def test_system_user_root_fails_for_a_process_backend(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("system.user", breaking(facts, "system", euid=0, user="root"), ctx)
    assert f.status is Status.FAIL
    named(f, "running as root", "Refusing to run with the root privileges")
    # the same path as `setup` as root: hand the stack to carla, then continue as carla with its own simdoctor
    home = rootfix.home_of("carla")
    assert commands(f) == ["simdoctor setup --user carla", f"su - carla -c '{home}/.local/bin/simdoctor run'"]


def test_system_user_root_is_fine_with_docker(facts: Facts, settings: Settings) -> None:
    f = verdict("system.user", breaking(facts, "system", euid=0, user="root"), context(settings, backend="docker"))
    assert f.status is Status.OK
    named(f, "docker backend")


# ---------------------------------------------------------------- gpu


def test_gpu_driver_not_loaded_fails_and_the_rest_of_gpu_skips(facts: Facts, ctx: CheckContext) -> None:
    broken = breaking(
        facts, "gpu", nvml_error="NVML: Driver Not Loaded", driver_version=None, cuda_driver_version=None, gpus=[]
    )
    f = verdict("gpu.driver", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "Driver Not Loaded")
    assert commands(f) == UBUNTU_DRIVER
    for check_id in ("gpu.devices", "gpu.processes", "gpu.stale_carla", "gpu.graphics_libs"):
        assert verdict(check_id, broken, ctx).status is Status.SKIP


def test_gpu_driver_without_nvml_binding_fails(facts: Facts, ctx: CheckContext) -> None:
    broken = breaking(facts, "gpu", nvml_error="the nvidia-ml-py package is not installed", gpus=[])
    f = verdict("gpu.driver", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "nvidia-ml-py")
    assert commands(f) == ["pip install nvidia-ml-py"]


def test_gpu_driver_ok_names_versions(facts: Facts, ctx: CheckContext) -> None:
    named(verdict("gpu.driver", facts, ctx), "driver 580.95.05", "CUDA 13.0")


def test_gpu_devices_none_seen_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("gpu.devices", breaking(facts, "gpu", gpus=[]), ctx)
    assert f.status is Status.FAIL
    named(f, "NVML sees no GPU")
    assert commands(f) == ["nvidia-smi -L"]


def test_gpu_devices_without_free_memory_warns(facts: Facts, ctx: CheckContext) -> None:
    full = replace(gpu_device(), memory_free_bytes=4 * GIB, memory_used_bytes=75 * GIB)
    f = verdict("gpu.devices", breaking(facts, "gpu", gpus=[full]), ctx)
    assert f.status is Status.WARN
    named(f, GPU_NAME, "12 GiB")
    assert commands(f) == ["nvidia-smi"]


def _holding(*processes: GpuProcess) -> list:
    return [replace(gpu_device(), processes=list(processes))]


TRAINER = GpuProcess(5120, "compute", 30 * GIB, "python train.py --config big.yaml", "python")


def test_gpu_processes_lists_who_holds_memory(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("gpu.processes", breaking(facts, "gpu", gpus=_holding(TRAINER)), ctx)
    assert f.status is Status.OK
    named(f, "30.0 GiB")
    assert f.details == ["GPU 0: pid 5120 (compute) 30.0 GiB: python train.py --config big.yaml"]


def test_gpu_processes_from_another_pid_namespace(facts: Facts, ctx: CheckContext) -> None:
    hidden = GpuProcess(77, "compute", None, None, None)
    f = verdict("gpu.processes", breaking(facts, "gpu", gpus=_holding(hidden)), ctx)
    assert f.status is Status.OK
    assert f.details == ["GPU 0: pid 77 (compute) ? GiB: not visible here (another PID namespace)"]


def test_gpu_processes_plural_of_process(facts: Facts, ctx: CheckContext) -> None:
    other = GpuProcess(5121, "compute", 2 * GIB, "python eval.py", "python")
    f = verdict("gpu.processes", breaking(facts, "gpu", gpus=_holding(TRAINER, other)), ctx)
    named(f, "2 processes")


STALE_CARLA = GpuProcess(
    41234,
    "graphics",
    3 * GIB,
    "/home/researcher/software/carla0915/CarlaUE4/Binaries/Linux/CarlaUE4-Linux-Shipping CarlaUE4 "
    "-RenderOffScreen -nosound -carla-rpc-port=2000",
    "CarlaUE4-Linux-Shipping",
)


def test_gpu_stale_carla_warns_with_its_pid(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("gpu.stale_carla", breaking(facts, "gpu", gpus=_holding(STALE_CARLA, TRAINER)), ctx)
    assert f.status is Status.WARN
    named(f, "not started by simdoctor", "pid 41234", "3.0 GiB")
    assert commands(f) == ["simdoctor carla status", "simdoctor carla stop --orphans"]


def test_gpu_stale_carla_found_by_command_line(facts: Facts, ctx: CheckContext) -> None:
    """A shipping binary started through a wrapper has another argv[0] name; its command line still says it."""
    wrapped = replace(STALE_CARLA, pid=41300, name="bash")
    f = verdict("gpu.stale_carla", breaking(facts, "gpu", gpus=_holding(wrapped)), ctx)
    assert f.status is Status.WARN
    named(f, "pid 41300")
    assert commands(f) == ["simdoctor carla status", "simdoctor carla stop --orphans"]


def test_gpu_stale_carla_own_server_is_not_a_leftover(facts: Facts, ctx: CheckContext) -> None:
    """A server simdoctor started (its state records name the pid) holds memory by right."""
    held = breaking(facts, "gpu", gpus=_holding(STALE_CARLA))
    ours = breaking(held, "carla_servers", servers=[RecordedServer("2000", "process", 2000, [41230, 41234])])
    f = verdict("gpu.stale_carla", ours, ctx)
    assert f.status is Status.OK
    named(f, "simdoctor's own", "2000")
    both = breaking(facts, "gpu", gpus=_holding(STALE_CARLA, replace(STALE_CARLA, pid=50000)))
    both = breaking(both, "carla_servers", servers=[RecordedServer("2000", "process", 2000, [41234])])
    f = verdict("gpu.stale_carla", both, ctx)
    assert f.status is Status.WARN
    named(f, "1 CARLA server not started by simdoctor", "pid 50000")
    assert any("simdoctor's server 2000" in d for d in f.details)


def _no_graphics(facts: Facts, packages: list[str]) -> Facts:
    return breaking(facts, "gpu", graphics_libs={"libGLX_nvidia.so.0": None, "libEGL_nvidia.so.0": None},
                    driver_packages=packages)  # fmt: skip


def test_gpu_graphics_libs_missing_names_the_desktop_package(facts: Facts, ctx: CheckContext) -> None:
    packages = [p for p in DRIVER_PACKAGES if p != "libnvidia-gl-580"]
    f = verdict("gpu.graphics_libs", _no_graphics(facts, packages), ctx)
    assert f.status is Status.FAIL
    named(f, "libGLX_nvidia.so.0", "libEGL_nvidia.so.0")
    assert commands(f) == ["sudo apt-get install -y libnvidia-gl-580"]


def test_gpu_graphics_libs_missing_on_a_server_driver(facts: Facts, ctx: CheckContext) -> None:
    """A headless -server install (the usual on data-centre GPUs) needs the -server graphics package."""
    server = ["libnvidia-compute-580-server", "nvidia-headless-no-dkms-580-server", "nvidia-utils-580-server"]
    f = verdict("gpu.graphics_libs", _no_graphics(facts, server), ctx)
    assert f.status is Status.FAIL
    assert commands(f) == ["sudo apt-get install -y libnvidia-gl-580-server"]


def test_gpu_graphics_libs_one_missing(facts: Facts, ctx: CheckContext) -> None:
    libs = {**facts.get("gpu").graphics_libs, "libEGL_nvidia.so.0": None}
    f = verdict("gpu.graphics_libs", breaking(facts, "gpu", graphics_libs=libs), ctx)
    assert f.status is Status.FAIL
    named(f, "libEGL_nvidia.so.0 missing")
    assert "libGLX_nvidia.so.0" not in f.summary


def test_gpu_graphics_libs_driver_not_from_apt_gets_no_apt_command(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("gpu.graphics_libs", _no_graphics(facts, []), ctx)
    assert f.status is Status.FAIL
    assert not any("apt-get" in c for c in commands(f))


# ---------------------------------------------------------------- vulkan


def test_vulkan_loader_missing_fails_with_the_package(facts: Facts, ctx: CheckContext) -> None:
    no_loader = breaking(facts, "vulkan", loader=None, enumeration=None)  # no loader, nothing to enumerate with
    f = verdict("vulkan.loader", no_loader, ctx)
    assert f.status is Status.FAIL
    named(f, "libvulkan.so.1")
    assert commands(f) == ["sudo apt-get install -y libvulkan1"]
    assert verdict("vulkan.devices", no_loader, ctx).status is Status.SKIP
    assert verdict("vulkan.adapter_map", no_loader, ctx).status is Status.SKIP
    assert verdict("vulkan.icd", no_loader, ctx).status is Status.OK  # the ICD does not need the loader


def test_vulkan_icd_missing_fails_with_the_graphics_package(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("vulkan.icd", breaking(facts, "vulkan", icds=[lavapipe_icd()]), ctx)
    assert f.status is Status.FAIL
    named(f, "nvidia_icd.json")
    assert commands(f) == ["sudo apt-get install -y libnvidia-gl-580"]


def test_vulkan_icd_library_unresolved_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("vulkan.icd", breaking(facts, "vulkan", icds=[icd(resolved=False)]), ctx)
    assert f.status is Status.FAIL
    named(f, NVIDIA_ICD, "libGLX_nvidia.so.0", "cannot find")
    assert commands(f) == ["sudo apt-get install -y libnvidia-gl-580"]


def test_vulkan_icd_one_good_of_two_is_ok(facts: Facts, ctx: CheckContext) -> None:
    stale = icd("/etc/vulkan/icd.d/nvidia_icd.json", resolved=False)
    f = verdict("vulkan.icd", breaking(facts, "vulkan", icds=[stale, icd()]), ctx)
    assert f.status is Status.OK
    named(f, NVIDIA_ICD)


def test_vulkan_icd_skips_without_a_driver(facts: Facts, ctx: CheckContext) -> None:
    broken = breaking(facts, "vulkan", icds=[lavapipe_icd()])
    broken = breaking(broken, "gpu", nvml_error="NVML: Driver Not Loaded", driver_version=None, gpus=[])
    assert verdict("vulkan.icd", broken, ctx).status is Status.SKIP


def _forced_to_lavapipe(facts: Facts) -> Facts:
    """VK_DRIVER_FILES left pointing at Mesa's lavapipe: the loader reads nothing else."""
    forced = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
    return breaking(
        facts,
        "vulkan",
        variables={"VK_DRIVER_FILES": forced},
        search_dirs=[f"VK_DRIVER_FILES={forced}"],
        icds=[lavapipe_icd()],
        enumeration=Enumeration(True, [llvmpipe()]),
    )


@pytest.mark.parametrize("check_id", ["vulkan.icd", "vulkan.devices"])
def test_vulkan_driver_files_forcing_another_driver_is_unset(facts: Facts, ctx: CheckContext, check_id) -> None:
    f = verdict(check_id, _forced_to_lavapipe(facts), ctx)
    assert f.status is Status.FAIL
    assert "unset VK_DRIVER_FILES" in commands(f)


def test_vulkan_icd_duplicates_warns_and_keeps_one(facts: Facts, ctx: CheckContext) -> None:
    extra = icd("/etc/vulkan/icd.d/nvidia_icd.json")
    f = verdict("vulkan.icd_duplicates", breaking(facts, "vulkan", icds=[extra, icd()]), ctx)
    assert f.status is Status.WARN
    named(f, "2 NVIDIA ICD files", "-graphicsadapter")
    assert commands(f) == ["export VK_DRIVER_FILES=/etc/vulkan/icd.d/nvidia_icd.json"]
    assert f.details == ["/etc/vulkan/icd.d/nvidia_icd.json", NVIDIA_ICD]


def test_vulkan_icd_duplicates_skips_without_nvidia(facts: Facts, ctx: CheckContext) -> None:
    assert verdict("vulkan.icd_duplicates", breaking(facts, "vulkan", icds=[lavapipe_icd()]), ctx).status is Status.SKIP


def test_vulkan_icd_duplicates_keeps_the_one_that_loads(facts: Facts, ctx: CheckContext) -> None:
    stale = icd("/etc/vulkan/icd.d/nvidia_icd.json", library="libGLX_nvidia.so.0", resolved=False)
    f = verdict("vulkan.icd_duplicates", breaking(facts, "vulkan", icds=[stale, icd()]), ctx)
    assert commands(f) == [f"export VK_DRIVER_FILES={NVIDIA_ICD}"]


def test_vulkan_devices_only_llvmpipe_fails_naming_it(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("vulkan.devices", breaking(facts, "vulkan", enumeration=Enumeration(True, [llvmpipe()])), ctx)
    assert f.status is Status.FAIL
    named(f, "llvmpipe", "CPU")
    assert commands(f) == [f"export VK_DRIVER_FILES={NVIDIA_ICD}"]


def test_vulkan_devices_only_llvmpipe_and_no_nvidia_icd(facts: Facts, ctx: CheckContext) -> None:
    broken = breaking(facts, "vulkan", icds=[lavapipe_icd()], enumeration=Enumeration(True, [llvmpipe()]))
    f = verdict("vulkan.devices", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "llvmpipe")
    assert commands(f) == ["sudo apt-get install -y libnvidia-gl-580"]


def test_vulkan_devices_llvmpipe_with_a_broken_nvidia_icd(facts: Facts, ctx: CheckContext) -> None:
    broken = breaking(facts, "vulkan", icds=[icd(resolved=False)], enumeration=Enumeration(True, [llvmpipe()]))
    assert commands(verdict("vulkan.devices", broken, ctx)) == ["sudo apt-get install -y libnvidia-gl-580"]


def test_vulkan_devices_enumeration_error_fails(facts: Facts, ctx: CheckContext) -> None:
    failed = Enumeration(False, [], "vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER", ["ERROR: loader"])
    f = verdict("vulkan.devices", breaking(facts, "vulkan", enumeration=failed), ctx)
    assert f.status is Status.FAIL
    named(f, "VK_ERROR_INCOMPATIBLE_DRIVER")
    assert commands(f) == ["sudo apt-get install -y libnvidia-gl-580"]
    assert f.details == ["ERROR: loader"]


def test_vulkan_devices_crashed_enumeration_without_driver(facts: Facts, ctx: CheckContext) -> None:
    crashed = breaking(facts, "vulkan", enumeration=Enumeration(False, [], "device enumeration crashed (SIGSEGV)"))
    crashed = breaking(crashed, "gpu", nvml_error="NVML: Driver Not Loaded", driver_version=None, gpus=[])
    f = verdict("vulkan.devices", crashed, ctx)
    assert f.status is Status.FAIL
    named(f, "SIGSEGV")
    assert commands(f) == UBUNTU_DRIVER


def test_vulkan_devices_empty_list_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("vulkan.devices", breaking(facts, "vulkan", enumeration=Enumeration(True, [])), ctx)
    assert f.status is Status.FAIL
    named(f, "lists no device")


def test_vulkan_devices_gpu_beside_llvmpipe_is_ok(facts: Facts, ctx: CheckContext) -> None:
    both = Enumeration(True, [vk_device(0), llvmpipe(1)])
    f = verdict("vulkan.devices", breaking(facts, "vulkan", enumeration=both), ctx)
    assert f.status is Status.OK
    assert f.summary == f"1 GPU device: {GPU_NAME} (DISCRETE_GPU)"
    assert f.details[1].startswith("[1] llvmpipe (LLVM 15.0.6, 256 bits) (CPU, vendor 0x10005")


def _two_gpus(facts: Facts, vulkan_devices: list) -> Facts:
    gpus = [gpu_device(0), gpu_device(1, uuid=GPU_UUID_2)]
    return breaking(breaking(facts, "gpu", gpus=gpus), "vulkan", enumeration=Enumeration(True, vulkan_devices))


def test_vulkan_adapter_map_order_differs_from_nvml_is_mapped(facts: Facts, ctx: CheckContext) -> None:
    swapped = _two_gpus(facts, [vk_device(0, VK_UUID_2), vk_device(1, VK_UUID)])
    f = verdict("vulkan.adapter_map", swapped, ctx)
    assert f.status is Status.OK
    named(f, "GPU 0 -> 1, GPU 1 -> 0", "Vulkan order differs from nvidia-smi")
    assert f.details == [
        f"GPU 0 (GPU-{VK_UUID}) -> -graphicsadapter=1",
        f"GPU 1 ({GPU_UUID_2}) -> -graphicsadapter=0",
    ]


def test_vulkan_adapter_map_cpu_device_listed_first_shifts_the_index(facts: Facts, ctx: CheckContext) -> None:
    shifted = breaking(facts, "vulkan", enumeration=Enumeration(True, [llvmpipe(0), vk_device(1)]))
    f = verdict("vulkan.adapter_map", shifted, ctx)
    assert f.status is Status.OK
    named(f, "GPU 0 -> 1")


def test_vulkan_adapter_map_gpu_missing_from_vulkan_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("vulkan.adapter_map", _two_gpus(facts, [vk_device(0, VK_UUID)]), ctx)
    assert f.status is Status.FAIL
    named(f, "Vulkan does not list GPU 1")
    assert commands(f) == ["nvidia-smi -L"]
    assert f.details[1] == f"GPU 1 ({GPU_UUID_2}) -> not listed by Vulkan"


def test_vulkan_adapter_map_duplicate_icds_map_to_the_first_listing(facts: Facts, ctx: CheckContext) -> None:
    """Two NVIDIA ICDs list each GPU twice; UE4 takes the first index that is the GPU."""
    twice = _two_gpus(facts, [vk_device(0), vk_device(1, VK_UUID_2), vk_device(2), vk_device(3, VK_UUID_2)])
    f = verdict("vulkan.adapter_map", twice, ctx)
    assert f.status is Status.OK
    assert f.summary == "GPU 0 -> 0, GPU 1 -> 1"


def test_vulkan_adapter_map_skips_without_a_device_list(facts: Facts, ctx: CheckContext) -> None:
    failed = breaking(
        facts, "vulkan", enumeration=Enumeration(False, [], "vkCreateInstance: VK_ERROR_INITIALIZATION_FAILED")
    )
    assert verdict("vulkan.adapter_map", failed, ctx).status is Status.SKIP


# ---------------------------------------------------------------- display

XVFB_LLVMPIPE = dict(
    display=":99",
    server=XServer("xvfb", 812, "Xvfb :99 -screen 0 1280x720x24"),
    socket="/tmp/.X11-unix/X99",
    glxinfo="/usr/bin/glxinfo",
    glx=Glx(True, "llvmpipe (LLVM 15.0.6, 256 bits)", "Mesa", "4.5 (Compatibility Profile) Mesa 22.3.6", False, True),
)


def test_display_server_unset_with_window_fails(facts: Facts, settings: Settings) -> None:
    f = verdict("display.server", facts, context(settings, window=True))
    assert f.status is Status.FAIL
    named(f, "DISPLAY is unset")


def test_display_server_unset_recommends_off_screen(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("display.server", facts, ctx)
    assert f.status is Status.OK
    named(f, "-RenderOffScreen")


def test_display_server_xvfb_is_named(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("display.server", breaking(facts, "display", **XVFB_LLVMPIPE), ctx)
    assert f.status is Status.OK
    named(f, "DISPLAY=:99", "Xvfb", "pid 812")


def test_display_server_nobody_serves_it_warns(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("display.server", breaking(facts, "display", display=":5"), ctx)
    assert f.status is Status.WARN
    named(f, "DISPLAY=:5", "no X server")
    assert commands(f) == ["unset DISPLAY"]


def test_display_server_socket_without_visible_process(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("display.server", breaking(facts, "display", display=":1", socket="/tmp/.X11-unix/X1"), ctx)
    assert f.status is Status.OK
    named(f, "/tmp/.X11-unix/X1")


def test_display_renderer_llvmpipe_with_window_only_warns(facts: Facts, settings: Settings) -> None:
    """OpenGL on the CPU says nothing about a Vulkan window: display.window decides."""
    f = verdict("display.renderer", breaking(facts, "display", **XVFB_LLVMPIPE), context(settings, window=True))
    assert f.status is Status.WARN
    named(f, "llvmpipe", "renders on the CPU", "Vulkan decides")


def test_display_renderer_llvmpipe_without_window_warns(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("display.renderer", breaking(facts, "display", **XVFB_LLVMPIPE), ctx)
    assert f.status is Status.WARN
    named(f, "llvmpipe", "off-screen CARLA is unaffected")
    assert commands(f) == ["unset DISPLAY"]


def test_display_renderer_nvidia_is_ok(facts: Facts, settings: Settings) -> None:
    nvidia = Glx(True, f"{GPU_NAME}/PCIe/SSE2", "NVIDIA Corporation", "4.6.0 NVIDIA 580.95.05", True, True)
    on_gpu = {**XVFB_LLVMPIPE, "server": XServer("xorg", 700, "/usr/lib/xorg/Xorg :0"), "display": ":0", "glx": nvidia}
    f = verdict("display.renderer", breaking(facts, "display", **on_gpu), context(settings, window=True))
    assert f.status is Status.OK
    named(f, GPU_NAME, "NVIDIA Corporation")


def test_display_renderer_without_glxinfo_warns(facts: Facts, ctx: CheckContext) -> None:
    without = {**XVFB_LLVMPIPE, "glxinfo": None, "glx": None}
    f = verdict("display.renderer", breaking(facts, "display", **without), ctx)
    assert f.status is Status.WARN
    named(f, "glxinfo is not installed")
    assert commands(f) == ["sudo apt-get install -y mesa-utils"]


@pytest.mark.parametrize("window", [True, False])
def test_display_renderer_glx_broken(facts: Facts, settings: Settings, window: bool) -> None:
    broken = {**XVFB_LLVMPIPE, "glx": Glx(False, error="glxinfo exited 1: unable to open display")}
    f = verdict("display.renderer", breaking(facts, "display", **broken), context(settings, window=window))
    assert f.status is Status.WARN
    named(f, "unable to open display")
    assert commands(f) == ["unset DISPLAY"]


WINDOW_XVFB = {"display": ":99"}
H200_ON_XVFB = Presentation(0, "NVIDIA H100 80GB HBM3", False, "presentation_support",
                            "no queue family of this device can present to this display", presentation_support=False,
                            stages=["x_window", "device", "presentation_support"])  # fmt: skip


def window_facts(facts: Facts, *presentations: Presentation) -> Facts:
    with_display = breaking(facts, "display", **XVFB_LLVMPIPE)
    return Facts({**with_display.by_probe, "window": WindowFacts(":99", list(presentations))})


def test_display_window_only_with_window(facts: Facts, ctx: CheckContext, settings: Settings) -> None:
    assert "display.window" not in {f.id for f in diagnose(facts, select(Selection()), ctx)}
    f = verdict("display.window", facts, context(settings, window=True))
    assert f.status is Status.SKIP  # DISPLAY unset: display.server fails instead


def test_display_window_xvfb_without_presentation_fails_with_both_ways_out(facts: Facts, settings: Settings) -> None:
    f = verdict("display.window", window_facts(facts, H200_ON_XVFB), context(settings, window=True))
    assert f.status is Status.FAIL
    named(f, "a CARLA window on DISPLAY=:99 (Xvfb", "would crash", "GPU 0 (NVIDIA H100 80GB HBM3, -graphicsadapter=0)",
          "no queue family can present")  # fmt: skip
    out = settings.recipe.run.out_dir
    assert commands(f) == [
        "unset DISPLAY",
        f"simdoctor run --viz --out {out}",
        f"simdoctor watch {out}",
        "sudo nvidia-xconfig --busid=PCI:24:0:0 --allow-empty-initial-configuration --virtual=1920x1080 "
        "--output-xconfig=/etc/X11/xorg-simdoctor.conf",
        "sudo Xorg :1 -config xorg-simdoctor.conf -noreset &",
        "x11vnc -display :1 -localhost -forever -shared &",
        "export DISPLAY=:1",
        "simdoctor carla start --window --gpu 0",
    ]


def test_display_window_a_driver_crash_is_a_finding(facts: Facts, settings: Settings) -> None:
    """The driver killed the probe before it could name the device: the name comes from the Vulkan listing."""
    crashed = Presentation(0, None, False, "x_window", "the probe crashed (SIGSEGV)", crashed="crashed (SIGSEGV)",
                           stages=["x_window"])  # fmt: skip
    f = verdict("display.window", window_facts(facts, crashed), context(settings, window=True))
    assert f.status is Status.FAIL
    named(f, "would crash", "GPU 0 (NVIDIA H100 80GB HBM3, -graphicsadapter=0)",
          "the driver crashed (SIGSEGV) after x_window")  # fmt: skip


def test_display_window_on_a_display_nothing_serves_says_so(facts: Facts, settings: Settings) -> None:
    """DISPLAY=:99 left over with no X server: each device's probe fails to open the display and names nothing;
    the finding said `no NVIDIA GPU among the Vulkan devices ([0] None)` on a machine whose GPU is fine."""
    unopened = Presentation(0, None, False, "x_window", "cannot open display :99", stages=[])
    dead = Facts({**breaking(facts, "display", display=":99").by_probe, "window": WindowFacts(":99", [unopened])})
    f = verdict("display.window", dead, context(settings, window=True))
    assert f.status is Status.FAIL
    assert f.summary == "no X server serves DISPLAY=:99: a CARLA window has nowhere to open"
    assert commands(f)[0] == "unset DISPLAY"


def test_display_window_nvidia_presenting_is_ok(facts: Facts, settings: Settings) -> None:
    presenting = Presentation(0, "NVIDIA H100 80GB HBM3", True, "vkCreateSwapchainKHR", None,
                              presentation_support=True, swapchain_images=3)  # fmt: skip
    f = verdict("display.window", window_facts(facts, presenting), context(settings, window=True))
    assert f.status is Status.OK
    named(f, "GPU 0 (NVIDIA H100 80GB HBM3, -graphicsadapter=0) presents to DISPLAY=:99", "3 images")


def test_display_window_gpu_none_judges_the_nvidia_devices(facts: Facts, settings: Settings) -> None:
    """`carla start --gpu none --window`: CARLA picks its device itself, so the NVIDIA device Vulkan lists decides."""
    f = verdict("display.window", window_facts(facts, H200_ON_XVFB), context(settings, window=True, gpu=None))
    assert f.status is Status.FAIL
    assert commands(f)[-1] == "simdoctor carla start --window --gpu none"


def test_display_virtualgl_present(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("display.virtualgl", breaking(facts, "display", vglrun="/opt/VirtualGL/bin/vglrun"), ctx)
    assert f.status is Status.OK
    named(f, "/opt/VirtualGL/bin/vglrun", "vglrun -d egl")


# ---------------------------------------------------------------- carla


def install_commands(settings: Settings) -> list[str]:
    return ["simdoctor setup --only carla", f"export CARLA_ROOT={settings.carla_root}"]


def test_carla_root_set_but_missing_fails(make_settings) -> None:
    settings = make_settings(carla_root="/data/CARLA_0.9.15")
    broken = breaking(healthy_facts(settings), "carla", setting="/data/CARLA_0.9.15", setting_source="flag",
                      root=None, searched=["/data/CARLA_0.9.15"], launcher=None, binary=None, version=None,
                      maps=[])  # fmt: skip
    f = verdict("carla.root", broken, context(settings))
    assert f.status is Status.FAIL
    named(f, "CARLA_ROOT=/data/CARLA_0.9.15 (from flag) does not exist")
    assert commands(f) == ["simdoctor setup --only carla", "export CARLA_ROOT=/data/CARLA_0.9.15"]
    for check_id in ("carla.binaries", "carla.version", "carla.maps"):
        assert verdict(check_id, broken, context(settings)).status is Status.SKIP


def test_carla_root_not_found_anywhere(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    searched = [str(settings.carla_root), *settings.recipe.carla.search[1:]]
    broken = breaking(facts, "carla", root=None, searched=searched, launcher=None, binary=None, version=None, maps=[])
    f = verdict("carla.root", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "CARLA 0.9.15 not found", ", ".join(searched))
    assert commands(f) == install_commands(settings)


def test_carla_root_without_launcher_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    launcher = facts.get("carla").launcher
    f = verdict("carla.root", breaking(facts, "carla", launcher=replace(launcher, exists=False, executable=False)), ctx)
    assert f.status is Status.FAIL
    named(f, "has no CarlaUE4.sh")
    assert commands(f) == install_commands(settings)


def test_carla_root_found_only_by_search_warns(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.root", breaking(facts, "carla", root="/opt/carla-simulator", found_by_search=True), ctx)
    assert f.status is Status.WARN
    named(f, "CARLA_ROOT is not set", "/opt/carla-simulator")
    assert commands(f) == ["export CARLA_ROOT=/opt/carla-simulator"]


def test_carla_binaries_shipping_binary_missing(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    binary = facts.get("carla").binary
    f = verdict("carla.binaries", breaking(facts, "carla", binary=replace(binary, exists=False, executable=False)), ctx)
    assert f.status is Status.FAIL
    named(f, binary.path, "not fully extracted")
    assert commands(f) == install_commands(settings)


def test_carla_binaries_not_executable(facts: Facts, ctx: CheckContext) -> None:
    binary = facts.get("carla").binary
    f = verdict("carla.binaries", breaking(facts, "carla", binary=replace(binary, executable=False)), ctx)
    assert f.status is Status.FAIL
    named(f, binary.path)
    assert commands(f) == [f"chmod +x {binary.path}"]


def test_carla_version_mismatch_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("carla.version", breaking(facts, "carla", version="0.9.14"), ctx)
    assert f.status is Status.FAIL
    named(f, "is 0.9.14", "needs 0.9.15")
    assert commands(f) == install_commands(settings)


def test_carla_version_file_missing_warns(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.version", breaking(facts, "carla", version=None), ctx)
    assert f.status is Status.WARN
    named(f, "no VERSION file")


def _without(facts: Facts, *towns: str, **changes) -> Facts:
    maps = [t for t in facts.get("carla").maps if t not in towns]
    return breaking(facts, "carla", maps=maps, **changes)


def test_carla_maps_additional_maps_not_imported(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.maps", _without(facts, "Town06", "Town07", "Town11", "Town12", "Town13", "Town15"), ctx)
    assert f.status is Status.FAIL
    named(f, "Town06, Town07, Town11, Town12, Town13, Town15 missing", "AdditionalMaps_0.9.15 is not imported")
    assert commands(f) == ["simdoctor setup --only maps"]


def test_carla_maps_archive_waiting_in_import(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    root = settings.carla_root
    f = verdict("carla.maps", _without(facts, "Town12", "Town13", import_pending=["AdditionalMaps_0.9.15.tar.gz"]), ctx)
    assert f.status is Status.FAIL
    named(f, "Town12, Town13 missing", "AdditionalMaps_0.9.15.tar.gz waits in", f"{root}/Import")
    assert commands(f) == [f"cd {root} && ./ImportAssets.sh"]


def test_carla_maps_base_town_missing_means_a_broken_package(facts: Facts, settings: Settings, ctx) -> None:
    f = verdict("carla.maps", _without(facts, "Town01"), ctx)
    assert f.status is Status.FAIL
    named(f, "Town01 missing from the CARLA package")
    assert commands(f) == install_commands(settings)


def test_carla_maps_without_routes_file_uses_recipe_towns(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.maps", breaking(facts, "carla", routes_towns=None), ctx)
    assert f.status is Status.OK
    named(f, "12 towns of the recipe's town list")
    f = verdict("carla.maps", _without(facts, "Town15", routes_towns=["Town12", "Town13"]), ctx)
    assert f.status is Status.OK  # the routes file in use does not drive in Town15


def _held(facts: Facts, role: str, **state) -> Facts:
    ports = [replace(p, listening=True, **state) if p.role == role else p for p in facts.get("ports").ports]
    return breaking(facts, "ports", ports=ports)


def test_carla_ports_held_by_another_program_fails(facts: Facts, ctx: CheckContext) -> None:
    held = _held(facts, "rpc", pids=[3131], owner="python3 -m http.server 2000")
    f = verdict("carla.ports", held, ctx)
    assert f.status is Status.FAIL
    named(f, "rpc port 2000", "`python3 -m http.server 2000` (pid 3131)", "Address already in use")
    assert commands(f) == ["kill 3131"]


def test_carla_ports_held_by_another_user(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.ports", _held(facts, "traffic_manager"), ctx)
    assert f.status is Status.FAIL
    named(f, "traffic_manager port 8000", "another user's process")
    assert commands(f) == ["ss -ltnp 'sport = :8000'"]


def test_carla_ports_held_by_carla_is_ok(facts: Facts, ctx: CheckContext) -> None:
    ports = [
        replace(p, listening=True, pids=[41234], owner=STALE_CARLA.command, owner_is_carla=True)
        if p.role != "traffic_manager"
        else p
        for p in facts.get("ports").ports
    ]
    f = verdict("carla.ports", breaking(facts, "ports", ports=ports), ctx)
    assert f.status is Status.OK
    named(f, "running CARLA server")
    assert f.details[0] == "rpc 2000: held by CARLA (pid 41234)"


def test_carla_ports_remote_host_skips(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.ports", breaking(facts, "ports", host="10.0.0.7", local=False, ports=[]), ctx)
    assert f.status is Status.SKIP
    named(f, "10.0.0.7")


def _server(facts: Facts, version, error=None) -> Facts:
    return breaking(facts, "server", listening=True, version=version, via="carla client 0.9.15", error=error)


def test_carla_server_matching_version_is_ok(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.server", _server(facts, "0.9.15"), ctx)
    assert f.status is Status.OK
    named(f, "CARLA 0.9.15 answers on localhost:2000")


def test_carla_server_version_mismatch_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.server", _server(facts, "0.9.14"), ctx)
    assert f.status is Status.FAIL
    named(f, "localhost:2000 is CARLA 0.9.14", "needs 0.9.15")


def test_carla_server_not_answering_version_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.server", _server(facts, None, "time-out of 1000ms while waiting for the simulator"), ctx)
    assert f.status is Status.FAIL
    named(f, "does not answer", "time-out of 1000ms")


def test_carla_server_version_mismatch_says_how_to_stop_it(facts: Facts, ctx: CheckContext) -> None:
    running = _held(_server(facts, "0.9.14"), "rpc", pids=[41234], owner=STALE_CARLA.command, owner_is_carla=True)
    assert "kill 41234" in commands(verdict("carla.server", running, ctx))


def test_carla_client_version_mismatch_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    a = facts.get("agent")
    older = breaking(_server(facts, "0.9.15"), "agent", packages={**a.packages, "carla": "0.9.14"})
    f = verdict("carla.client_version", older, ctx)
    assert f.status is Status.FAIL
    named(f, "client is 0.9.14", "server is 0.9.15", "Version mismatch detected")
    assert commands(f) == [f"{agent_python(settings)} -m pip install carla==0.9.15"]


def test_carla_client_version_matching_is_ok(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("carla.client_version", _server(facts, "0.9.15"), ctx)
    assert f.status is Status.OK
    named(f, "client 0.9.15 matches server 0.9.15")


def test_carla_client_version_skips_without_client(facts: Facts, ctx: CheckContext) -> None:
    a = facts.get("agent")
    broken = breaking(_server(facts, "0.9.15"), "agent", packages={**a.packages, "carla": None})
    assert verdict("carla.client_version", broken, ctx).status is Status.SKIP


def test_carla_client_version_source_build_server(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    a = facts.get("agent")
    older = breaking(_server(facts, "0.9.15-dirty"), "agent", packages={**a.packages, "carla": "0.9.14"})
    assert commands(verdict("carla.client_version", older, ctx)) == [
        f"{agent_python(settings)} -m pip install carla==0.9.15"
    ]


def test_system_packages_missing_fails_with_the_install_of_only_those(facts: Facts, ctx: CheckContext) -> None:
    p = facts.get("packages")
    broken = breaking(facts, "packages", installed={**p.installed, "libomp5": False, "git-lfs": False})
    f = verdict("system.packages", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "libomp5", "git-lfs")
    assert commands(f) == ["sudo apt-get install -y libomp5 git-lfs"]


def test_system_packages_unknown_distribution_warns_with_the_names(facts: Facts, ctx: CheckContext) -> None:
    broken = breaking(breaking(facts, "packages", family=None, database=None, installed={}), "system",
                      os_release=OsRelease("arch", [], "", "Arch Linux"))  # fmt: skip
    f = verdict("system.packages", broken, ctx)
    assert f.status is Status.WARN
    assert commands(f) == [] and "libsdl2-2.0-0 / SDL2" in f.fix.text


def test_agent_checkout_missing_fails_with_setup(facts: Facts, ctx: CheckContext) -> None:
    c = facts.get("checkout")
    f = verdict("agent.checkout", breaking(facts, "checkout", exists=False, entries=[], git=False, head=None), ctx)
    assert f.status is Status.FAIL
    named(f, f"no SimLingo checkout at {c.path}")
    assert commands(f) == ["simdoctor setup --only checkout"]


def test_agent_checkout_foreign_folder_fails_with_the_way_out(facts: Facts, ctx: CheckContext) -> None:
    c = facts.get("checkout")
    f = verdict("agent.checkout", breaking(facts, "checkout", entries=["notes.txt"], git=False, head=None), ctx)
    assert f.status is Status.FAIL
    named(f, "is not a git checkout of SimLingo")
    assert commands(f) == [f"mv {c.path} {c.path}.old", "simdoctor setup --only checkout"]


def test_agent_checkout_only_downloads_inside_fails_with_setup(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("agent.checkout", breaking(facts, "checkout", entries=["outputs"], git=False, head=None), ctx)
    assert f.status is Status.FAIL
    named(f, "holds only downloads")
    assert commands(f) == ["simdoctor setup --only checkout"]


def test_agent_checkout_interrupted_clone_fails_with_setup(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("agent.checkout", breaking(facts, "checkout", head=None), ctx)
    assert f.status is Status.FAIL
    named(f, "unfinished clone")


def test_agent_checkout_other_commit_warns_and_is_left_alone(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("agent.checkout", breaking(facts, "checkout", head="0" * 40), ctx)
    assert f.status is Status.WARN
    named(f, "is at 0000000", "743b243")
    assert commands(f)[1].endswith(f"checkout --detach {ctx.settings.recipe.agent.commit}")


# ---------------------------------------------------------------- agent


def env_commands(settings: Settings) -> list[str]:
    return ["simdoctor setup --only checkout,agent_env"]


AGENT_CHECKS = ("agent.carla_client", "agent.imports", "agent.module", "agent.torch", "agent.packages")


def test_agent_python_none_found_fails_and_the_rest_skips(facts: Facts, settings: Settings, ctx) -> None:
    tried = settings.recipe.agent.python_candidates
    none = breaking(facts, "agent", python=None, tried=tried, error="no interpreter found", version=None,
                    executable=None, packages=None, carla=None, modules=None, agent=None, torch=None)  # fmt: skip
    f = verdict("agent.python", none, ctx)
    assert f.status is Status.FAIL
    named(f, "no agent interpreter", tried[0], tried[-1])
    assert commands(f) == env_commands(settings)
    for check_id in (*AGENT_CHECKS, "agent.deep"):
        assert verdict(check_id, none, ctx).status is Status.SKIP


def test_agent_python_given_but_missing(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    given = breaking(facts, "agent", requested="/opt/envs/simlingo/bin/python", source="flag", python=None,
                     tried=["/opt/envs/simlingo/bin/python"], error="no interpreter found")  # fmt: skip
    f = verdict("agent.python", given, ctx)
    assert f.status is Status.FAIL
    named(f, "/opt/envs/simlingo/bin/python (from flag) is not an executable Python")
    assert commands(f) == env_commands(settings)


def test_agent_python_probe_timed_out(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    python = agent_python(settings)
    f = verdict("agent.python", breaking(facts, "agent", error=f"{python} timed out after 7.5s", version=None), ctx)
    assert f.status is Status.FAIL
    named(f, "could not be probed", "timed out after 7.5s")
    for check_id in AGENT_CHECKS:
        assert verdict(check_id, breaking(facts, "agent", error="timed out"), ctx).status is Status.SKIP


def test_agent_python_other_version_warns(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.python", breaking(facts, "agent", version="3.10.14"), ctx)
    assert f.status is Status.WARN
    named(f, "Python 3.10.14", "pins Python 3.8")
    assert commands(f) == env_commands(settings)


def _packages(facts: Facts, **versions) -> Facts:
    return breaking(facts, "agent", packages={**facts.get("agent").packages, **versions})


def test_agent_carla_client_wrong_version_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.carla_client", _packages(facts, carla="0.9.14"), ctx)
    assert f.status is Status.FAIL
    named(f, "carla 0.9.14")
    assert commands(f) == [f"{agent_python(settings)} -m pip install carla==0.9.15"]


def test_agent_carla_client_not_importable_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    """The PythonAPI egg is built for Python 3.7: on 3.8 `import carla` finds no libcarla."""
    error = "ModuleNotFoundError: No module named 'libcarla'"
    broken = _packages(breaking(facts, "agent", carla=replace(facts.get("agent").carla, ok=False, error=error)),
                       carla=None)  # fmt: skip
    f = verdict("agent.carla_client", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "does not import", "libcarla")
    assert commands(f) == [f"{agent_python(settings)} -m pip install carla==0.9.15"]


def test_agent_carla_client_without_metadata_warns(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.carla_client", _packages(facts, carla=None), ctx)
    assert f.status is Status.WARN
    named(f, "without package metadata", facts.get("agent").carla.file)
    assert commands(f) == [f"{agent_python(settings)} -m pip install carla==0.9.15"]


def _module(facts: Facts, name: str, **state) -> Facts:
    modules = dict(facts.get("agent").modules)
    modules[name] = replace(modules[name], **state)
    return breaking(facts, "agent", modules=modules)


def test_agent_imports_srunner_missing_names_its_entry(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.imports", _module(facts, "srunner", found=False, origin=None), ctx)
    assert f.status is Status.FAIL
    named(f, "`srunner` is not importable", settings.recipe.agent.scenario_runner)
    assert commands(f) == [f"git clone https://github.com/RenzKa/simlingo {settings.work_dir}"]
    assert "srunner: NOT FOUND" in f.details


def test_agent_imports_several_missing(facts: Facts, ctx: CheckContext) -> None:
    broken = _module(_module(facts, "srunner", found=False, origin=None), "leaderboard", found=False, origin=None)
    f = verdict("agent.imports", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "`srunner`", "(also missing: leaderboard)")


def test_agent_imports_agents_navigation_comes_from_carla(facts: Facts, ctx: CheckContext) -> None:
    error = "ModuleNotFoundError: No module named 'agents'"
    f = verdict("agent.imports", _module(facts, "agents.navigation", found=False, origin=None, error=error), ctx)
    assert "simdoctor setup --only carla" in commands(f)


def test_agent_module_file_missing_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    agent = ModuleState(False, None, None, file_exists=False)
    f = verdict("agent.module", breaking(facts, "agent", agent=agent), ctx)
    assert f.status is Status.FAIL
    named(f, settings.recipe.agent.file, "does not exist")
    assert commands(f) == [f"cd {settings.work_dir} && git pull"]


def test_agent_module_not_importable_has_a_fix(facts: Facts, ctx: CheckContext) -> None:
    agent = ModuleState(False, None, "ImportError: cannot import name 'LingoAgent'", file_exists=True)
    f = verdict("agent.module", breaking(facts, "agent", agent=agent), ctx)
    assert f.status is Status.FAIL
    assert f.fix is not None


def test_agent_module_not_importable_fails(facts: Facts, ctx: CheckContext) -> None:
    agent = ModuleState(False, None, "ImportError: cannot import name 'LingoAgent'", file_exists=True)
    f = verdict("agent.module", breaking(facts, "agent", agent=agent), ctx)
    assert f.status is Status.FAIL
    named(f, "not importable", "LingoAgent")


def _torch(facts: Facts, version, cuda) -> Facts:
    site_torch = facts.get("agent").torch.path
    return breaking(facts, "agent", torch=TorchBuild(site_torch, version, cuda))


def torch_commands(settings: Settings, index: str = "https://download.pytorch.org/whl/cu121") -> list[str]:
    """Replace torch outright: a plain `pip install torch==2.2.0` is a no-op when 2.2.0+<other> is there."""
    return [f"{agent_python(settings)} -m pip install --force-reinstall torch==2.2.0 --index-url {index}"]


def test_agent_torch_missing_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.torch", breaking(facts, "agent", torch=None), ctx)
    assert f.status is Status.FAIL
    named(f, "torch is not installed")
    assert commands(f) == [f"{agent_python(settings)} -m pip install torch==2.2.0"]


def test_agent_torch_cpu_build_with_gpus_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("agent.torch", _torch(facts, "2.2.0+cpu", None), ctx)
    assert f.status is Status.FAIL
    named(f, "torch 2.2.0+cpu", "CPU-only build", "the agent would run on the CPU")


def test_agent_torch_cpu_build_fix_replaces_it(facts: Facts, ctx: CheckContext) -> None:
    [command] = commands(verdict("agent.torch", _torch(facts, "2.2.0+cpu", None), ctx))
    assert "--force-reinstall" in command
    assert "--index-url https://download.pytorch.org/whl/cu" in command


def test_agent_torch_cpu_build_without_gpus_warns(facts: Facts, ctx: CheckContext) -> None:
    cpu_only = breaking(_torch(facts, "2.2.0+cpu", None), "gpu", nvml_error="NVML: Driver Not Loaded", gpus=[])
    f = verdict("agent.torch", cpu_only, ctx)
    assert f.status is Status.WARN
    named(f, "no GPU here either")


def test_agent_torch_too_old_for_the_gpu(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    """sm_90 (H100) needs CUDA 11.8; a cu117 build has no kernels for it."""
    f = verdict("agent.torch", _torch(facts, "2.0.1+cu117", "11.7"), ctx)
    assert f.status is Status.FAIL
    named(f, "torch 2.0.1+cu117", f"GPU 0 ({GPU_NAME}, sm_90) needs CUDA 11.8 or newer", "built for 11.7")
    assert commands(f) == torch_commands(settings)


def test_agent_torch_driver_cuda_older_same_major_warns(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.torch", breaking(facts, "gpu", cuda_driver_version="12.0"), ctx)
    assert f.status is Status.WARN
    named(f, "the driver supports CUDA 12.0, older than torch's CUDA 12.1", "minor-version compatibility only")
    assert commands(f) == UBUNTU_DRIVER


def test_agent_torch_driver_cuda_older_major_fails(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("agent.torch", breaking(facts, "gpu", cuda_driver_version="11.8"), ctx)
    assert f.status is Status.FAIL
    named(f, "the driver supports CUDA 11.8, older than torch's CUDA 12.1")
    assert "minor-version" not in f.summary


def test_agent_torch_driver_cuda_older_major_fix_changes_something(facts: Facts, settings: Settings, ctx) -> None:
    f = verdict("agent.torch", breaking(facts, "gpu", cuda_driver_version="11.8"), ctx)
    assert commands(f) == torch_commands(settings, "https://download.pytorch.org/whl/cu118")


def test_agent_torch_off_pin_warns(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.torch", _torch(facts, "2.5.1+cu124", "12.4"), ctx)
    assert f.status is Status.WARN
    named(f, "torch 2.5.1+cu124, CUDA 12.4", "SimLingo pins torch 2.2.0")
    assert commands(f) == [f"{agent_python(settings)} -m pip install torch==2.2.0"]


def test_agent_packages_off_pin_warns(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("agent.packages", _packages(facts, transformers="4.21.2"), ctx)
    assert f.status is Status.WARN
    named(f, "not at SimLingo's pin: transformers 4.21.2 (pin 4.46.3)")
    assert commands(f) == [f"{agent_python(settings)} -m pip install transformers==4.46.3"]


def test_agent_packages_names_every_missing_one_in_one_command(facts: Facts, settings: Settings, ctx) -> None:
    """The evaluator's imports that find_spec("leaderboard") does not see (requests, pexpect, ...) and an off pin:
    all named, one pip command for all of them."""
    f = verdict("agent.packages", _packages(facts, requests=None, pexpect=None, numpy="1.24.4"), ctx)
    assert f.status is Status.FAIL
    named(f, "missing: requests, pexpect", "numpy 1.24.4 (pin 1.23.0)")
    assert commands(f) == [f"{agent_python(settings)} -m pip install requests==2.31.0 pexpect==4.9.0 numpy==1.23.0"]
    assert "requests: NOT INSTALLED (pin 2.31.0)" in f.details


def test_agent_packages_at_their_pins_pass(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("agent.packages", _packages(facts, torch="2.2.0+cu121"), ctx)
    assert f.status is Status.OK and f.summary.endswith("pinned packages at SimLingo's versions")


GOOD_DEEP = DeepFacts(
    torch_error=None,
    cuda_available=True,
    device_count=1,
    arch_list=["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"],
    op_ok=True,
    op_error=None,
    agent_import_ok=True,
    agent_import_error=None,
    seconds=9.8,
    module_errors={"leaderboard.leaderboard_evaluator": None, "leaderboard.scenarios.route_scenario": None},
    hub={"OpenGVLab/InternVL2-1B": HubResolution(True, "transformers 4.46.3", "InternVLChatConfig")},
)


def _deep(facts: Facts, **changes) -> Facts:
    return breaking(facts, "agent", deep=replace(GOOD_DEEP, **changes))


def test_agent_deep_all_good(facts: Facts, settings: Settings) -> None:
    f = verdict("agent.deep", _deep(facts), context(settings, deep=True))
    assert f.status is Status.OK
    named(f, "torch runs on the GPU")
    assert "sm_90" in f.details[0]


def test_agent_deep_evaluator_import_fails(facts: Facts, settings: Settings) -> None:
    error = "ModuleNotFoundError: No module named 'pexpect' (at <frozen importlib._bootstrap>:973)"
    errors = {**GOOD_DEEP.module_errors, "leaderboard.leaderboard_evaluator": error}
    f = verdict("agent.deep", _deep(facts, module_errors=errors), context(settings, deep=True))
    assert f.status is Status.FAIL
    named(f, "`import leaderboard.leaderboard_evaluator` fails: ModuleNotFoundError: No module named 'pexpect'")


def test_agent_deep_base_model_not_resolving_by_name_fails(facts: Facts, settings: Settings) -> None:
    error = "OSError: We couldn't connect to 'https://huggingface.co' to load this file"
    hub = {"OpenGVLab/InternVL2-1B": HubResolution(False, "transformers", error)}
    f = verdict("agent.deep", _deep(facts, hub=hub), context(settings, deep=True))
    assert f.status is Status.FAIL
    named(f, "OpenGVLab/InternVL2-1B does not resolve by name offline with the agent's transformers")
    assert commands(f) == ["simdoctor setup --only base_model"]


def test_agent_deep_cuda_unavailable_fails(facts: Facts, settings: Settings) -> None:
    f = verdict(
        "agent.deep", _deep(facts, cuda_available=False, device_count=0, op_ok=None), context(settings, deep=True)
    )
    assert f.status is Status.FAIL
    named(f, "torch sees no CUDA device")


def test_agent_deep_cuda_op_fails(facts: Facts, settings: Settings) -> None:
    error = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    f = verdict("agent.deep", _deep(facts, op_ok=False, op_error=error), context(settings, deep=True))
    assert f.status is Status.FAIL
    named(f, "no kernel image is available")


def test_agent_deep_torch_import_fails(facts: Facts, settings: Settings) -> None:
    error = "OSError: libcudnn.so.8: cannot open shared object file: No such file or directory"
    f = verdict("agent.deep", _deep(facts, torch_error=error), context(settings, deep=True))
    assert f.status is Status.FAIL
    named(f, "`import torch` fails", "libcudnn.so.8")


def test_agent_deep_agent_import_fails(facts: Facts, settings: Settings) -> None:
    error = "ModuleNotFoundError: No module named 'hydra' (at team_code/agent_simlingo.py:21)"
    f = verdict(
        "agent.deep", _deep(facts, agent_import_ok=False, agent_import_error=error), context(settings, deep=True)
    )
    assert f.status is Status.FAIL
    named(f, "importing the agent fails", "No module named 'hydra'")


def test_agent_deep_does_not_claim_an_import_it_did_not_try(facts: Facts, settings: Settings) -> None:
    missing = breaking(_deep(facts, agent_import_ok=None), "agent", agent=ModuleState(False, None, None, False))
    f = verdict("agent.deep", missing, context(settings, deep=True))
    assert "agent module imports" not in f.summary


def test_agent_deep_results_are_ignored_without_deep(facts: Facts, ctx: CheckContext) -> None:
    assert verdict("agent.deep", _deep(facts, cuda_available=False), ctx).status is Status.SKIP


# ---------------------------------------------------------------- weights


def _weight(facts: Facts, relpath_end: str, **changes) -> Facts:
    files = [replace(f, **changes) if f.relpath.endswith(relpath_end) else f for f in facts.get("weights").files]
    return breaking(facts, "weights", files=files)


def download_command(settings: Settings, base: bool = False) -> str:
    w = settings.recipe.base_model if base else settings.recipe.weights
    return f"simdoctor download {w.repo} --revision {w.revision} --local-dir {w.local_dir}"


def test_weights_hub_cache_resolving_by_name_passes(facts: Facts, ctx: CheckContext) -> None:
    f = verdict("weights.hub_cache", facts, ctx)
    assert f.status is Status.OK and f.summary.startswith("OpenGVLab/InternVL2-1B resolves offline to ")


def test_weights_hub_cache_missing_fails_with_the_setup_step(facts: Facts, ctx: CheckContext) -> None:
    """A copy in pretrained/ only: from_pretrained("OpenGVLab/InternVL2-1B") with HF_HUB_OFFLINE=1 cannot find it."""
    hub = replace(facts.get("weights").hub, commit=None, missing=["config.json"])
    f = verdict("weights.hub_cache", breaking(facts, "weights", hub=hub), ctx)
    assert f.status is Status.FAIL
    named(f, "OpenGVLab/InternVL2-1B does not resolve by name offline", "refs/main")
    assert commands(f) == ["simdoctor setup --only base_model"]


def test_weights_hub_cache_lacking_a_file_or_on_another_commit(facts: Facts, ctx: CheckContext) -> None:
    hub = facts.get("weights").hub
    lacking = breaking(facts, "weights", hub=replace(hub, missing=["conversation.py"]))
    lacking = verdict("weights.hub_cache", lacking, ctx)
    assert lacking.status is Status.FAIL and "lacks conversation.py" in lacking.summary
    other = verdict("weights.hub_cache", breaking(facts, "weights", hub=replace(hub, downloaded_commit="a" * 40)), ctx)
    assert other.status is Status.WARN and "the verified download is aaaaaaaaaaaa" in other.summary


def test_weights_checkpoint_lfs_pointer_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    f = verdict("weights.checkpoint", _weight(facts, "pytorch_model.pt", size=134, lfs_pointer=True, verified=False,
                                              in_manifest=False), ctx)  # fmt: skip
    assert f.status is Status.FAIL
    named(f, "pytorch_model.pt is a Git LFS pointer (134 bytes)")
    assert commands(f) == [download_command(settings)]


def test_weights_checkpoint_unfinished_download_beside(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    w = settings.recipe.weights
    partial = f"{w.local_dir}/{w.checkpoint}.incomplete"
    f = verdict("weights.checkpoint", _weight(facts, "pytorch_model.pt", partials=[partial]), ctx)
    assert f.status is Status.WARN
    named(f, "unfinished downloads lie beside them")
    assert partial in f.details
    assert commands(f) == [download_command(settings)]


def test_weights_config_missing_fails(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    w = settings.recipe.weights
    missing = _weight(facts, "config.yaml", exists=False, size=None, verified=False, in_manifest=False)
    f = verdict("weights.config", missing, ctx)
    assert f.status is Status.FAIL
    named(f, f"{w.local_dir}/{w.config} is missing")
    assert commands(f) == [download_command(settings)]


def test_weights_base_model_missing_with_partial(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    b = settings.recipe.base_model
    partial = f"{b.local_dir}/.simdoctor/partial/model.safetensors"
    broken = _weight(facts, "model.safetensors", exists=False, size=None, verified=False, partials=[partial])
    f = verdict("weights.base_model", broken, ctx)
    assert f.status is Status.FAIL
    named(f, "model.safetensors is missing", f"an unfinished download lies at {partial}")
    assert commands(f) == [download_command(settings, base=True)]


def test_weights_base_model_unverified_warns(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    b = settings.recipe.base_model
    f = verdict("weights.base_model", _weight(facts, "model.safetensors", in_manifest=False, verified=False), ctx)
    assert f.status is Status.WARN
    named(f, "model.safetensors is not verified against its hash")
    assert "changed" not in f.summary
    assert commands(f) == [f"simdoctor download {b.repo} --local-dir {b.local_dir} --verify-only"]


def test_weights_checkpoint_changed_since_verified_warns(facts: Facts, settings: Settings, ctx: CheckContext) -> None:
    w = settings.recipe.weights
    f = verdict("weights.checkpoint", _weight(facts, "pytorch_model.pt", verified=False), ctx)
    assert f.status is Status.WARN
    named(f, "changed since it was verified")
    assert commands(f) == [f"simdoctor download {w.repo} --local-dir {w.local_dir} --verify-only"]


# ---------------------------------------------------------------- network


def test_network_hf_unreachable_warns_never_fails(facts: Facts, ctx: CheckContext) -> None:
    offline = breaking(facts, "network", reachable=False, seconds=0.4, error="no answer within 0.4s")
    f = verdict("network.hf", offline, ctx)
    assert f.status is Status.WARN
    named(f, "https://huggingface.co is unreachable", "no answer within 0.4s")
    assert commands(f) == ["export HF_ENDPOINT=https://hf-mirror.com"]
    assert exit_code(diagnose(offline, select(Selection()), ctx)) == 0


# ---------------------------------------------------------------- diagnose and select


def test_diagnose_probe_failure_becomes_a_finding_and_skips_its_checks(facts: Facts, ctx: CheckContext) -> None:
    failed = Facts({**facts.by_probe, "vulkan": ProbeFailure("vulkan", "OSError: [Errno 5] Input/output error")})
    findings = diagnose(failed, select(Selection()), ctx)
    by_id = {f.id: f for f in findings}
    probe = by_id["probe.vulkan"]
    assert (probe.group, probe.status) == ("vulkan", Status.FAIL)
    assert "Input/output error" in probe.summary
    assert probe.fix is not None and probe.fix.commands == ["simdoctor check --only vulkan -v"]
    for check_id in ("vulkan.loader", "vulkan.icd", "vulkan.icd_duplicates", "vulkan.devices", "vulkan.adapter_map"):
        assert by_id[check_id].status is Status.SKIP
        assert "needs facts from the vulkan probe, which failed" in by_id[check_id].summary
    assert by_id["gpu.driver"].status is Status.OK  # other groups are untouched
    assert exit_code(findings) == 1


def test_diagnose_timed_out_probe_of_another_group_name(facts: Facts, ctx: CheckContext) -> None:
    """The server probe feeds the carla group: its failure is reported there, and what needs it skips."""
    failed = Facts({**facts.by_probe, "server": ProbeFailure("server", "no answer within 2.5s", timed_out=True)})
    by_id = {f.id: f for f in diagnose(failed, select(Selection()), ctx)}
    assert by_id["probe.server"].group == "carla"
    assert "no answer within 2.5s" in by_id["probe.server"].summary
    assert by_id["probe.server"].fix.commands == ["simdoctor check --only carla -v"]
    assert by_id["carla.server"].status is Status.SKIP
    assert by_id["carla.client_version"].status is Status.SKIP
    assert by_id["carla.ports"].status is Status.OK


@pytest.mark.parametrize(
    ("probe", "users"),
    [
        ("gpu", ["vulkan.icd", "vulkan.devices", "agent.torch"]),
        ("carla", ["system.disk"]),
        ("weights", ["system.disk"]),
    ],
)
def test_diagnose_check_that_uses_a_failed_probe_still_runs(facts: Facts, ctx: CheckContext, probe, users) -> None:
    failed = Facts({**facts.by_probe, probe: ProbeFailure(probe, "no answer within 3s", timed_out=True)})
    by_id = {f.id: f for f in diagnose(failed, select(Selection()), ctx)}
    assert by_id[f"probe.{probe}"].status is Status.FAIL
    for check_id in users:
        assert by_id[check_id].status is Status.OK


def test_diagnose_real_probes_that_raise_and_hang(
    facts: Facts, settings: Settings, ctx: CheckContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real probe runner: one probe raises, one hangs past its deadline."""
    release = threading.Event()

    def raising(_ctx: ProbeContext):
        raise OSError(5, "Input/output error")

    def hanging(_ctx: ProbeContext):
        release.wait(10)

    monkeypatch.setitem(REGISTRY, "gpu", replace(REGISTRY["gpu"], fn=raising))
    monkeypatch.setitem(REGISTRY, "display", Probe("display", hanging, REGISTRY["display"].facts_type, 0.05, "x"))
    try:
        gathered = run_probes(["gpu", "display"], ProbeContext(settings))
    finally:
        release.set()
    assert gathered.failure("gpu") == ProbeFailure("gpu", "OSError: [Errno 5] Input/output error")
    assert gathered.failure("display") == ProbeFailure("display", "no answer within 0.05s", timed_out=True)
    mixed = Facts({**facts.by_probe, **gathered.by_probe})
    by_id = {f.id: f for f in diagnose(mixed, select(Selection(only=("gpu", "display"))), ctx)}
    assert by_id["probe.gpu"].status is Status.FAIL
    assert by_id["probe.display"].status is Status.FAIL
    assert "no answer within 0.05s" in by_id["probe.display"].summary
    assert all(by_id[c].status is Status.SKIP for c in by_id if not c.startswith("probe."))


def ids(selection: Selection) -> list[str]:
    return [c.id for c in select(selection)]


def test_select_everything_by_default() -> None:
    assert ids(Selection()) == ALL_IDS
    assert len(ALL_IDS) == len(set(ALL_IDS))


def test_select_only_by_id_and_group() -> None:
    assert ids(Selection(only=("vulkan.loader",))) == ["vulkan.loader"]
    assert ids(Selection(only=("vulkan",))) == [
        "vulkan.loader", "vulkan.icd", "vulkan.icd_duplicates", "vulkan.devices", "vulkan.adapter_map"
    ]  # fmt: skip
    assert ids(Selection(only=("gpu.driver", "network"))) == ["gpu.driver", "network.hf"]


def test_select_skip_by_id_and_group() -> None:
    assert ids(Selection(skip=("agent",))) == [i for i in ALL_IDS if not i.startswith("agent.")]
    assert ids(Selection(only=("gpu",), skip=("gpu.processes",))) == [
        "gpu.driver", "gpu.devices", "gpu.stale_carla", "gpu.graphics_libs"
    ]  # fmt: skip


def test_select_needs_only_the_probes_of_the_selection() -> None:
    assert needed_probes(select(Selection(only=("vulkan.icd",)))) == ["vulkan", "gpu"]
    assert needed_probes(select(Selection(only=("network",)))) == ["network"]


@pytest.mark.parametrize("selection", [Selection(only=("vulkn",)), Selection(skip=("gpu.driverr",))])
def test_select_unknown_name_is_a_usage_error(selection: Selection) -> None:
    with pytest.raises(ConfigError, match="unknown check or group") as raised:
        select(selection)
    assert (selection.only or selection.skip)[0] in str(raised.value)


# ---------------------------------------------------------------- docker (only with --backend docker)


@pytest.fixture
def dctx(settings: Settings) -> CheckContext:
    return context(settings, backend="docker")


def test_docker_findings_only_with_the_docker_backend(facts: Facts, ctx: CheckContext, dctx: CheckContext) -> None:
    assert not [f for f in diagnose(facts, select(Selection()), ctx) if f.group == "docker"]
    found = {f.id: f.status for f in diagnose(facts, select(Selection(only=("docker",))), dctx)}
    assert found == {i: Status.OK for i in ALL_IDS if i.startswith("docker.")}


def test_docker_sdk_missing_fails(facts: Facts, dctx: CheckContext) -> None:
    f = verdict("docker.sdk", breaking(facts, "docker", sdk_installed=False), dctx)
    assert f.status is Status.FAIL
    # this interpreter's pip and the extra's own requirement: `pip` on PATH may be another Python's, and
    # `simdoctor[docker]` from an index would replace a simdoctor installed from a checkout
    assert commands(f) == [f"{sys.executable} -m pip install 'docker>=7'"]


def test_docker_daemon_permission_denied_fails(facts: Facts, dctx: CheckContext) -> None:
    f = verdict("docker.daemon", breaking(facts, "docker", reachable=False, error="Permission denied"), dctx)
    assert f.status is Status.FAIL
    named(f, "permission denied")
    assert commands(f) == ["sudo usermod -aG docker $USER"]


def test_docker_daemon_absent_fails(facts: Facts, dctx: CheckContext) -> None:
    f = verdict("docker.daemon", breaking(facts, "docker", reachable=False, error="No such file or directory"), dctx)
    assert f.status is Status.FAIL
    named(f, "no Docker daemon answers on unix:///var/run/docker.sock")


def test_docker_nvidia_without_the_toolkit_fails(facts: Facts, dctx: CheckContext) -> None:
    bare = breaking(facts, "docker", runtimes=["runc"], nvidia_hook=None, nvidia_ctk=None)
    f = verdict("docker.nvidia", bare, dctx)
    assert f.status is Status.FAIL
    named(f, "could not select device driver")
    assert "sudo nvidia-ctk runtime configure --runtime=docker" in commands(f)


def test_docker_nvidia_a_cdi_spec_is_enough(facts: Facts, dctx: CheckContext) -> None:
    cdi = breaking(facts, "docker", runtimes=["runc"], nvidia_hook=None, cdi_specs=["/etc/cdi/nvidia.yaml"])
    f = verdict("docker.nvidia", cdi, dctx)
    assert f.status is Status.OK
    named(f, "/etc/cdi/nvidia.yaml")


def test_docker_graphics_headless_driver_fails(facts: Facts, dctx: CheckContext) -> None:
    headless = breaking(facts, "gpu", graphics_libs={"libGLX_nvidia.so.0": None, "libEGL_nvidia.so.0": None})
    headless = breaking(headless, "vulkan", icds=[])
    f = verdict("docker.graphics", headless, dctx)
    assert f.status is Status.FAIL
    named(f, "libGLX_nvidia.so.0", "nvidia_icd.json")


def test_docker_image_absent_warns(facts: Facts, dctx: CheckContext) -> None:
    f = verdict("docker.image", breaking(facts, "docker", image_present=False, image_user=None), dctx)
    assert f.status is Status.WARN
    assert commands(f) == ["docker pull carlasim/carla:0.9.15"]


def test_docker_image_running_as_root_fails(facts: Facts, dctx: CheckContext) -> None:
    f = verdict("docker.image", breaking(facts, "docker", image_user="0:0"), dctx)
    assert f.status is Status.FAIL
    named(f, "runs as root")


# ---------------------------------------------------------------- slurm (check --executor slurm)


@pytest.fixture
def sctx(settings: Settings) -> CheckContext:
    return context(settings, slurm=SlurmIntent("/shared/eval", probe_job=True))


def test_slurm_findings_only_with_slurm(facts: Facts, ctx: CheckContext, sctx: CheckContext) -> None:
    assert not [f for f in diagnose(facts, select(Selection()), ctx) if f.group == "slurm"]
    found = {f.id: f.status for f in diagnose(facts, select(Selection(only=("slurm",))), sctx)}
    assert found == {i: Status.OK for i in ALL_IDS if i.startswith("slurm.")}
    no_probe = context(sctx.settings, slurm=SlurmIntent("/shared/eval"))
    assert "slurm.probe_job" not in {f.id for f in diagnose(facts, select(Selection()), no_probe)}


def test_slurm_tools_missing_fails(facts: Facts, sctx: CheckContext) -> None:
    tools = {**facts.get("slurm").tools, "sbatch": None, "sacct": None}
    f = verdict("slurm.tools", breaking(facts, "slurm", tools=tools), sctx)
    assert f.status is Status.FAIL
    named(f, "sbatch, sacct")
    assert commands(f) == ["module load slurm", "sudo apt-get install -y slurm-client"]


def test_slurm_controller_down_fails_and_the_rest_skips(facts: Facts, sctx: CheckContext) -> None:
    down = breaking(facts, "slurm", error="Slurmctld(primary) at slurm-head is DOWN", version=None,
                    controller=None, partitions=[])  # fmt: skip
    f = verdict("slurm.controller", down, sctx)
    assert f.status is Status.FAIL
    named(f, "is DOWN")
    assert commands(f) == ["scontrol ping"]
    for check_id in ("slurm.partition", "slurm.gpus", "slurm.accounting"):
        assert verdict(check_id, down, sctx).status is Status.SKIP


def test_slurm_partition_missing_names_the_gpu_one(facts: Facts, sctx: CheckContext) -> None:
    f = verdict("slurm.partition", breaking(facts, "slurm", requested_partition="a100"), sctx)
    assert f.status is Status.FAIL
    named(f, "'a100' does not exist", "gpu*, cpu")
    assert commands(f) == ["export SIMDOCTOR_SLURM_PARTITION=gpu"]


def test_slurm_partition_down_fails(facts: Facts, sctx: CheckContext) -> None:
    s = facts.get("slurm")
    down = [replace(s.partitions[0], available="down"), s.partitions[1]]
    f = verdict("slurm.partition", breaking(facts, "slurm", partitions=down), sctx)
    assert f.status is Status.FAIL
    named(f, "partition gpu is down")


def test_slurm_partition_without_a_default(facts: Facts, sctx: CheckContext) -> None:
    no_default = [replace(p, default=False) for p in facts.get("slurm").partitions]
    f = verdict("slurm.partition", breaking(facts, "slurm", partitions=no_default), sctx)
    assert f.status is Status.FAIL
    named(f, "no default partition")


def test_slurm_gpus_partition_without_gpus_fails(facts: Facts, sctx: CheckContext) -> None:
    f = verdict("slurm.gpus", breaking(facts, "slurm", requested_partition="cpu"), sctx)
    assert f.status is Status.FAIL
    named(f, "partition cpu has no node with `gpu` GRES")
    assert commands(f) == ["export SIMDOCTOR_SLURM_PARTITION=gpu"]


def test_slurm_gpus_small_nodes_warn(facts: Facts, sctx: CheckContext) -> None:
    s = facts.get("slurm")
    small = [replace(s.partitions[0], cpus_per_node=[64, 4]), s.partitions[1]]
    f = verdict("slurm.gpus", breaking(facts, "slurm", partitions=small), sctx)
    assert f.status is Status.WARN
    named(f, "8 GPUs in all", "gpu-node-02 below one worker's 8 CPUs / 40 GiB")


def test_slurm_out_dir_local_warns(facts: Facts, sctx: CheckContext) -> None:
    local = breaking(facts, "slurm", out_dir="/home/me/eval", out_mount="/", out_fstype="ext4")
    f = verdict("slurm.out_dir", local, sctx)
    assert f.status is Status.WARN
    named(f, "/home/me/eval (ext4 at /) is local to this host")
    assert commands(f) == ["df -hT /home/me/eval", "simdoctor run --executor slurm --out /shared/path ..."]


def test_slurm_out_dir_local_on_a_one_node_cluster_of_this_host_is_fine(facts: Facts, sctx: CheckContext) -> None:
    s = facts.get("slurm")
    here = [replace(s.partitions[0], nodes=["login-01"], gpus_per_node=[2], cpus_per_node=[16],
                    memory_mb_per_node=[128000])]  # fmt: skip
    local = breaking(facts, "slurm", partitions=here, out_mount="/", out_fstype="xfs")
    assert verdict("slurm.out_dir", local, sctx).status is Status.OK


def test_slurm_accounting_off_warns(facts: Facts, sctx: CheckContext) -> None:
    f = verdict("slurm.accounting", breaking(facts, "slurm", accounting_error="Slurm accounting storage is disabled"),
                sctx)  # fmt: skip
    assert f.status is Status.WARN
    named(f, "Slurm accounting storage is disabled", "NODE_FAIL, PREEMPTED, TIMEOUT")


def test_slurm_probe_job_without_an_answer_fails(facts: Facts, sctx: CheckContext) -> None:
    lost = breaking(facts, "slurm_job", agent=None, error="still PENDING after 300s; cancelled", state="PENDING")
    f = verdict("slurm.probe_job", lost, sctx)
    assert f.status is Status.FAIL
    named(f, "job 4242 gave no answer", "still PENDING after 300s")
    assert commands(f) == ["scontrol show job 4242"]


def test_slurm_probe_job_names_what_the_node_lacks(facts: Facts, settings: Settings, sctx: CheckContext) -> None:
    job = facts.get("slurm_job")
    launcher = str(settings.carla_root / settings.recipe.carla.launcher)
    node = replace(job.agent.node, paths={**job.agent.node.paths, launcher: False}, variables={"SLURM_JOB_ID": "4242"})
    f = verdict("slurm.probe_job", breaking(facts, "slurm_job", agent=replace(job.agent, node=node)), sctx)
    assert f.status is Status.FAIL
    named(f, "ran on gpu-node-01", f"{launcher} missing there", "(and 1 more)")
    assert "Slurm gave the task no GPU (no CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS)" in f.details


# ---------------------------------------------------------------- viz (check --viz, run --viz)


@pytest.fixture
def vctx(settings: Settings) -> CheckContext:
    return context(settings, viz=True)


def test_viz_findings_only_with_viz(facts: Facts, ctx: CheckContext, vctx: CheckContext) -> None:
    assert not [f for f in diagnose(facts, select(Selection()), ctx) if f.group == "viz"]
    found = {f.id: f.status for f in diagnose(facts, select(Selection(only=("viz",))), vctx)}
    assert found == {"viz.font": Status.OK, "viz.encoder": Status.OK}


def test_viz_font_missing_fails_with_the_package_as_this_user_installs_it(facts: Facts, vctx: CheckContext) -> None:
    f = verdict("viz.font", breaking(facts, "viz", source=None), vctx)
    assert f.status is Status.FAIL
    named(f, "no font named arial.ttf", "OSError: cannot open resource", "Agent crashed")
    assert commands(f) == ["sudo apt-get install -y fonts-liberation"]  # the healthy machine's user is not root
    as_root = breaking(breaking(facts, "viz", source=None), "system", euid=0, user="root")
    assert commands(verdict("viz.font", as_root, vctx)) == ["apt-get install -y fonts-liberation"]


def test_viz_font_an_arial_the_agent_finds_is_used(facts: Facts, vctx: CheckContext) -> None:
    f = verdict("viz.font", breaking(facts, "viz", found="/home/eval/simlingo/arial.ttf", source=None), vctx)
    assert f.status is Status.OK
    named(f, "opens /home/eval/simlingo/arial.ttf")


def test_viz_encoder_missing_or_without_h264_fails(facts: Facts, vctx: CheckContext) -> None:
    f = verdict("viz.encoder", breaking(facts, "viz", encoder=None, encoder_source=None, h264=None), vctx)
    assert f.status is Status.FAIL
    named(f, "no ffmpeg")
    assert commands(f)[0].endswith(" -m pip install imageio-ffmpeg")
    f = verdict("viz.encoder", breaking(facts, "viz", encoder="/usr/bin/ffmpeg", encoder_source="system", h264=False),
                vctx)  # fmt: skip
    assert f.status is Status.FAIL
    named(f, "/usr/bin/ffmpeg has no libx264")


def test_a_failed_probe_fix_reruns_a_group_check_accepts(settings: Settings) -> None:
    """`check --only GROUP ... -v` in a failed probe's fix must run that probe again: GROUP is one `--only` knows,
    holding a check that uses it, with the opt-in options that made it run (the packages probe once named its own
    name, `--only packages`, a usage error; a docker probe's rerun lacked `--backend docker` and checked nothing)."""
    everything = CheckContext(settings, window=True, deep=True, backend="docker", viz=True,
                              slurm=SlurmIntent("/shared/out dir", probe_job=True))  # fmt: skip
    checks = select(Selection())
    for probe in needed_probes(checks):
        [command] = probe_failure_finding(ProbeFailure(probe, "boom"), everything).fix.commands
        group = command.split(" --only ")[1].split()[0]
        assert command.endswith(
            " --window --viz --deep --backend docker --executor slurm --out '/shared/out dir' --probe -v"
        )
        rerun = applicable(select(Selection(only=(group,))), everything)
        assert any(probe in (*c.needs, *c.uses) for c in rerun), (probe, command)
    plain = probe_failure_finding(ProbeFailure("packages", "boom"), CheckContext(settings))
    assert plain.fix.commands == ["simdoctor check --only system -v"]
