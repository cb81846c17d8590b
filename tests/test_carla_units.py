"""The pieces of `simdoctor carla` on their own: diagnosis, rendering verdicts, the command line, ports,
state records, process trees, and the checks that read their facts."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from simdoctor.carla import command, rendering
from simdoctor.carla.diagnose import PATTERNS, diagnose, first_cause
from simdoctor.carla.errors import Refusal
from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings
from simdoctor.doctor.gpumap import adapter_index
from simdoctor.doctor.probes.gpu import GpuDevice, GpuProcess
from simdoctor.doctor.probes.vulkan import VkDevice
from simdoctor.system import procs, proctree, serverstate
from tests.conftest import free_port

H100_LOG = """4.26.2-0+++UE4+Release-4.26 522 0
Disabling core dumps.
LogVulkanRHI: Display: Found 2 device(s)
LogVulkanRHI: Display: Device 0: llvmpipe (LLVM 15.0.6, 256 bits)
LogVulkanRHI: Display: - API 1.3.255(0x4030ff) Driver 0x5c0000a VendorId 0x10005
LogVulkanRHI: Display: - DeviceID 0x0 Type CPU
LogVulkanRHI: Display: Device 1: NVIDIA H100 80GB HBM3
LogVulkanRHI: Display: - API 1.3.277(0x4031bd) Driver 0x91264000 VendorId 0x10de
LogVulkanRHI: Display: - DeviceID 0x2330 Type Discrete GPU
LogVulkanRHI: Display: Using Device {using}: Geometry 1 Tessellation 1
"""


def gpu_device(index: int, pids: dict[int, int]) -> GpuDevice:
    processes = [GpuProcess(pid, "graphics", used, "CarlaUE4-Linux-Shipping CarlaUE4", "CarlaUE4-Linux-Shipping")
                 for pid, used in pids.items()]  # fmt: skip
    return GpuDevice(index, "NVIDIA H100 80GB HBM3", f"GPU-0000000{index}-aaaa", "00:06.0", 80 << 30, 1 << 30,
                     79 << 30, "9.0", processes)  # fmt: skip


# ---- diagnosis ----

LINES = {
    "root": "Refusing to run with the root privileges.",
    "icd_missing": "Cannot find a compatible Vulkan driver (ICD). Please look at the Getting Started guide",
    "no_device": "Cannot find a compatible Vulkan device or driver. Try updating your video driver",
    "no_surface": "Cannot find a compatible Vulkan device that supports surface presentation.",
    "address_in_use": "Exception thrown: bind: Address already in use",
    "out_of_memory": " with error VK_ERROR_OUT_OF_DEVICE_MEMORY",
    "x_error": "X Error of failed request:  BadDrawable (invalid Pixmap or Window parameter)",
    "lavapipe": "WARNING: lavapipe is not a conformant vulkan implementation, testing use only.",
    "signal11": "Signal 11 caught.",
    "xdg": "sh: 1: xdg-user-dir: not found",
}


def test_every_pattern_has_a_sample_and_sources() -> None:
    assert {p.key for p in PATTERNS} == set(LINES)
    assert all(p.sources and (p.fix.commands or p.fix.text) for p in PATTERNS)


@pytest.mark.parametrize("key", sorted(LINES))
def test_each_failure_string_is_recognised(key: str) -> None:
    found = diagnose(f"Disabling core dumps.\n{LINES[key]}\n")
    assert found[0].key == key
    assert LINES[key] in found[0].lines


def test_signal11_is_reported_with_the_line_before_and_after_the_cause() -> None:
    log = "LogInit: ok\nLowLevelFatalError [File:Unknown] [Line: 102]\nException thrown: bind: Address already in use\n"
    log += "Signal 11 caught.\nMalloc Size=65538\nCommonUnixCrashHandler: Signal=11\n"
    found = diagnose(log)
    assert [d.key for d in found] == ["address_in_use", "signal11"]
    assert found[1].lines[0] == "Exception thrown: bind: Address already in use"
    assert first_cause(found).key == "address_in_use"


def test_harmless_noise_never_leads_and_silent_exit() -> None:
    found = diagnose("sh: 1: xdg-user-dir: not found\nDisabling core dumps.\n")
    assert [d.key for d in found] == ["silent_exit", "xdg"]
    assert first_cause(diagnose("sh: 1: xdg-user-dir: not found\nall fine\n")) is None
    assert diagnose("Disabling core dumps.\n", exited=False) == []  # still running: not a silent exit


def test_a_diagnosis_fix_is_printed_runnable_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """CARLA's log fixes are written as `sudo CMD`; as root (or without sudo) they print without it."""
    import io

    from simdoctor.carla import output

    root_refusal = diagnose(f"{LINES['root']}\n")[0]
    monkeypatch.setattr("os.geteuid", lambda: 0)
    printed = io.StringIO()
    output._diagnosis(root_refusal, printed, cause_known=True)
    commands = [line.strip()[2:] for line in printed.getvalue().splitlines() if line.strip().startswith("$ ")]
    assert commands and not any(c.startswith("sudo") for c in commands)
    assert any(c.startswith("su - carla -c ") for c in commands)


def test_a_refusal_fix_is_printed_runnable_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """`carla start`/`stop`/`logs` refusals printed `simdoctor carla status` (not on PATH when simdoctor is in a
    venv) and `sudo ...` to root on a machine without sudo; now as check prints them, text and JSON alike."""
    import io
    import json

    from simdoctor.carla import output
    from simdoctor.carla.errors import Refusal
    from simdoctor.doctor.findings import Fix

    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("simdoctor.doctor.distro.simdoctor_command", lambda: "/opt/venv/bin/simdoctor")
    refused = Refusal(
        "no server 2000", Fix("See what runs.", ["simdoctor carla status", "sudo systemctl start docker"])
    )
    err, out = io.StringIO(), io.StringIO()
    output.refusal(refused, False, err=err)
    output.refusal(refused, True, out=out)
    expected = ["/opt/venv/bin/simdoctor carla status", "systemctl start docker"]
    assert [line.strip()[2:] for line in err.getvalue().splitlines() if line.strip().startswith("$ ")] == expected
    assert json.loads(out.getvalue())["fix"]["commands"] == expected


# ---- rendering ----


def test_rendering_proven_on_the_intended_gpu() -> None:
    gpus = [gpu_device(0, {}), gpu_device(1, {42: 2 << 30})]
    verdict = rendering.judge(1, {41, 42}, gpus, None, H100_LOG.format(using=1))
    assert verdict.verdict == rendering.GPU
    assert "GPU 1" in verdict.summary and "the log agrees (NVIDIA H100 80GB HBM3)" in verdict.summary
    assert verdict.log_device.is_nvidia and verdict.log_device.type == "Discrete GPU"


def test_rendering_on_another_gpu_or_the_cpu_is_said() -> None:
    gpus = [gpu_device(0, {42: 1 << 30}), gpu_device(1, {})]
    other = rendering.judge(1, {42}, gpus, None, H100_LOG.format(using=1))
    assert other.verdict == rendering.OTHER_GPU and "not on GPU 1 as asked" in other.summary
    cpu = rendering.judge(1, {42}, gpus, None, H100_LOG.format(using=0))
    assert cpu.verdict == rendering.CPU and "llvmpipe" in cpu.summary
    nothing = rendering.judge(0, {42}, [gpu_device(0, {})], None, "")
    assert nothing.verdict == rendering.NO_GPU
    hidden = GpuDevice(0, "H100", "GPU-0", "0", 1, 1, 0, "9.0", [GpuProcess(7777, "compute", 1 << 30, None, None)])
    namespaced = rendering.judge(0, {42}, [hidden], None, "")  # NVML pids from another PID namespace
    assert namespaced.verdict == rendering.UNVERIFIED and "another PID namespace" in namespaced.summary


def test_rendering_without_nvml_cannot_verify_but_reads_the_log() -> None:
    verdict = rendering.judge(0, {42}, None, "NVML: NVML Shared Library Not Found", H100_LOG.format(using=1))
    assert verdict.verdict == rendering.UNVERIFIED
    assert "cannot verify on the GPU side" in verdict.summary and "NVIDIA H100" in verdict.summary
    intel = "LogVulkanRHI: Display: Device 0: Intel(R) UHD 630\n"
    intel += "LogVulkanRHI: Display: - API 1.3 Driver 0x1 VendorId 0x8086\n"
    assert rendering.judge(0, set(), None, "x", intel).verdict == rendering.OTHER_GPU


# ---- command line, adapter, ports ----


def test_server_args_follow_the_recipe(make_settings: Callable[..., Settings]) -> None:
    carla = make_settings().recipe.carla
    assert command.server_args(carla, 2000, 1, "Epic", window=False) == [
        "-RenderOffScreen", "-nosound", "-carla-rpc-port=2000", "-graphicsadapter=1", "-quality-level=Epic"
    ]  # fmt: skip
    assert command.server_args(carla, 3000, None, "Low", window=True) == [
        "-nosound", "-carla-rpc-port=3000", "-quality-level=Low"
    ]  # fmt: skip
    assert command.check_quality(carla, "low") == "Low"
    assert command.check_quality(carla, None) == carla.quality
    with pytest.raises(ConfigError):
        command.check_quality(carla, "Ultra")


def test_the_adapter_is_mapped_by_uuid_never_assumed() -> None:
    uuid = "474c1a84-5156-f47a-27e9-632d2cfda5d3"  # the H100's, reference/carla.md §6
    devices = [VkDevice(0, "llvmpipe", "CPU", 0x10005, 0, "1.3", 1, "ffff"),
               VkDevice(1, "NVIDIA H100", "DISCRETE_GPU", 0x10DE, 0x2330, "1.3", 1, uuid)]  # fmt: skip
    assert adapter_index("GPU-474c1a84-5156-f47a-27e9-632d2cfda5d3", devices) == 1  # NVML GPU 0 -> Vulkan 1


def test_a_gpu_vulkan_does_not_list_is_refused() -> None:
    # the real loader here lists only llvmpipe, so no NVIDIA UUID can map
    with pytest.raises(Refusal, match="Vulkan does not list GPU 0"):
        command.vulkan_adapter(gpu_device(0, {}))


def test_no_nvml_is_said_plainly() -> None:
    with pytest.raises(Refusal, match="no NVIDIA GPU is visible") as caught:
        command.choose_gpu(0)
    assert "simdoctor carla start --gpu none" in caught.value.fix.commands
    assert command.choose_gpu(None) == command.NO_GPU


def test_ports_auto_explicit_and_reserved(make_settings: Callable[..., Settings]) -> None:
    carla = make_settings().recipe.carla
    base = free_port(10)
    assert command.choose_ports(carla, None, base, set())["rpc"] == base
    assert command.choose_ports(carla, None, base, {base + 2})["rpc"] == base + 3  # a recorded server's port
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 2))
        s.listen()
        ports = command.choose_ports(carla, None, base, set())
        assert ports["rpc"] == base + 3 and ports["streaming"] == base + 4
        assert ports["traffic_manager"] >= carla.traffic_manager_port
        with pytest.raises(Refusal, match=f"secondary port {base + 2} is taken by"):
            command.choose_ports(carla, base, base, set())


# ---- state ----


def test_records_round_trip_atomically(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    tree = proctree.Tree("abc", 123, 456, procs.boot_id())
    record = serverstate.ServerRecord("2000", serverstate.hostname(), "process", 2000, 2001, 2002, 8000, 0, "GPU-x",
                                      "H100", 1, "Epic", False, ["CarlaUE4.sh"], "/c", "/c/log", time.time(),
                                      tree)  # fmt: skip
    serverstate.save(settings, record)
    assert serverstate.find(settings, "2000") == record
    assert [p.name for p in serverstate.carla_dir(settings).iterdir()] == [f"{serverstate.hostname()}-2000.json"]
    (serverstate.carla_dir(settings) / "otherhost-3000.json").write_text("{}")  # another node's (shared home)
    (serverstate.carla_dir(settings) / f"{serverstate.hostname()}-bad.json").write_text("not json")
    assert serverstate.records(settings) == [record]
    serverstate.remove(settings, "2000")
    assert serverstate.find(settings, "2000") is None


def test_fresh_log_keeps_the_previous_one(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    first = serverstate.fresh_log(settings, "2000")
    first.write_text("old run\n")
    second = serverstate.fresh_log(settings, "2000")
    assert second == first and not second.exists()
    assert Path(str(first) + ".1").read_text() == "old run\n"


# ---- process trees ----


def test_tree_found_whole_and_stopped_whole(tmp_path: Path) -> None:
    script = "sleep 100 & setsid sleep 101 & (trap '' TERM; sleep 102) & wait"
    popen, tree = proctree.start(["sh", "-c", script], tmp_path / "log")
    deadline = time.monotonic() + 5
    while len(proctree.members(tree)) < 4:  # sh and the three sleeps
        assert time.monotonic() < deadline, [p.command for p in proctree.members(tree)]
        time.sleep(0.02)
    members = proctree.members(tree)
    escaped = [p for p in members if p.sid != tree.pid]
    assert [p.cmdline for p in escaped] == [["sleep", "101"]]  # found through the cookie
    result = proctree.stop(tree, grace=0.3, popen=popen)
    assert result.clean and result.terminated
    assert result.killed  # the subshell ignoring TERM needed KILL
    assert not any(procs.is_alive(p.pid) for p in members)


def test_a_reused_pid_is_not_mistaken_for_the_tree(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        info = procs.process(other.pid)
        stale = proctree.Tree("not-its-cookie", other.pid, info.start_ticks - 1, procs.boot_id())
        assert proctree.members(stale) == []  # same pid, another process: not ours
        assert proctree.members(proctree.Tree("x", other.pid, info.start_ticks, "another-boot")) == []
        assert [p.pid for p in proctree.members(proctree.Tree("x", other.pid, info.start_ticks, procs.boot_id()))] == [
            other.pid
        ]
    finally:
        other.kill()
        other.wait()


def test_stop_processes_not_started_by_us() -> None:
    other = subprocess.Popen(["sh", "-c", "sleep 100 & wait"], start_new_session=True)
    time.sleep(0.2)
    result = proctree.stop_processes([procs.process(other.pid)], grace=2)
    other.wait(timeout=5)
    assert result.clean and len(result.terminated) == 2


def test_servers_probe_lists_recorded_servers_with_their_live_pids(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    from simdoctor.doctor.probes.servers import probe_servers
    from simdoctor.doctor.probing import ProbeContext

    settings = make_settings()
    popen, tree = proctree.start(["sh", "-c", "sleep 30 & wait"], tmp_path / "log")
    try:
        record = serverstate.ServerRecord("2000", serverstate.hostname(), "process", 2000, 2001, 2002, 8000, None,
                                          None, None, None, "Epic", False, ["x"], "/c", "/c/log", time.time(),
                                          tree)  # fmt: skip
        serverstate.save(settings, record)
        deadline = time.monotonic() + 5
        while len(proctree.members(tree)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (found,) = probe_servers(ProbeContext(settings)).servers
        assert found.id == "2000" and set(found.pids) == {p.pid for p in proctree.members(tree)}
    finally:
        assert proctree.stop(tree, grace=1, popen=popen).clean
    assert probe_servers(ProbeContext(settings)).servers[0].pids == []
