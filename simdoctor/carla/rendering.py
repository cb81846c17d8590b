"""Proof that a ready CARLA renders on the GPU it was meant to, from two independent witnesses.

1. NVML: the server's processes in the process list of the intended GPU, holding memory
   (a healthy run shows CarlaUE4-Linux-Shipping in nvidia-smi with VRAM in use, carla#225).
2. The server log: UE4's VulkanRHI prints every device it found and the one it uses
   (VulkanDevice.cpp: `Device %d: %s`, `- API ... VendorId 0x%x`, `- DeviceID 0x%x Type %s`,
   `Using Device %d: ...`); NVIDIA is vendor 0x10de, lavapipe/llvmpipe has type `CPU`.
Without NVML the GPU side cannot be verified, and that is said; the log is still read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from simdoctor.doctor.checking import gib
from simdoctor.doctor.probes.display import CPU_RENDERERS
from simdoctor.doctor.probes.gpu import GpuDevice
from simdoctor.doctor.probes.vulkan import NVIDIA_VENDOR_ID

DEVICE = re.compile(r"LogVulkanRHI: \w+: Device (\d+): (.+?)\s*$")
VENDOR = re.compile(r"LogVulkanRHI: \w+: - API .*VendorId 0x([0-9a-fA-F]+)")
TYPE = re.compile(r"LogVulkanRHI: \w+: - DeviceID 0x[0-9a-fA-F]+ Type (.+?)\s*$")
USING = re.compile(r"LogVulkanRHI: \w+: Using Device (\d+)")
LAVAPIPE = "lavapipe is not a conformant vulkan implementation"

GPU = "gpu"  # proven on the intended GPU (or, with no GPU asked for, on some GPU)
UNVERIFIED = "unverified"  # nothing says otherwise, but NVML could not confirm it
CPU = "cpu"
OTHER_GPU = "other_gpu"
NO_GPU = "no_gpu"  # NVML works and the server holds no GPU memory anywhere
BAD = (CPU, OTHER_GPU, NO_GPU)


@dataclass(frozen=True)
class LogDevice:
    index: int
    name: str
    vendor_id: Optional[int] = None
    type: Optional[str] = None  # Discrete GPU, Integrated GPU, Virtual GPU, CPU, Other

    @property
    def on_cpu(self) -> bool:
        return self.type == "CPU" or any(n in self.name.lower() for n in CPU_RENDERERS)

    @property
    def is_nvidia(self) -> bool:
        return self.vendor_id == NVIDIA_VENDOR_ID

    def describe(self) -> str:
        vendor = f"vendor 0x{self.vendor_id:x}" if self.vendor_id is not None else "vendor ?"
        return f"Vulkan device {self.index}: {self.name} ({self.type or '?'}, {vendor})"


@dataclass(frozen=True)
class GpuUse:
    gpu_index: int
    gpu_name: str
    pid: int
    process: Optional[str]
    used_bytes: Optional[int]


@dataclass(frozen=True)
class Rendering:
    verdict: str
    summary: str
    nvml: list[GpuUse] = field(default_factory=list)
    nvml_error: Optional[str] = None
    log_device: Optional[LogDevice] = None
    details: list[str] = field(default_factory=list)


def log_devices(log: str) -> tuple[list[LogDevice], Optional[int]]:
    """The devices VulkanRHI listed, and the index of the one it used (None when not printed)."""
    devices: list[LogDevice] = []
    using = None
    for line in log.splitlines():
        if m := DEVICE.search(line):
            devices.append(LogDevice(int(m.group(1)), m.group(2)))
        elif (m := VENDOR.search(line)) and devices:
            devices[-1] = LogDevice(devices[-1].index, devices[-1].name, int(m.group(1), 16), devices[-1].type)
        elif (m := TYPE.search(line)) and devices:
            devices[-1] = LogDevice(devices[-1].index, devices[-1].name, devices[-1].vendor_id, m.group(1))
        elif m := USING.search(line):
            using = int(m.group(1))
    return devices, using


def used_device(log: str) -> Optional[LogDevice]:
    devices, using = log_devices(log)
    if using is not None:
        return next((d for d in devices if d.index == using), None)
    return devices[0] if len(devices) == 1 else None


def gpu_uses(gpus: list[GpuDevice], pids: set[int]) -> list[GpuUse]:
    return [GpuUse(d.index, d.name, p.pid, p.name, p.used_bytes) for d in gpus for p in d.processes if p.pid in pids]


def judge(expected: Optional[int], pids: set[int], gpus: Optional[list[GpuDevice]], nvml_error: Optional[str],
          log: str) -> Rendering:  # fmt: skip
    """Combine both witnesses into one verdict; `gpus` is None when NVML could not be read."""
    device = used_device(log)
    uses = gpu_uses(gpus, pids) if gpus is not None else []
    details = [f"NVML: GPU {u.gpu_index} ({u.gpu_name}): pid {u.pid} {u.process or ''} uses {gib(u.used_bytes)}"
               for u in uses]  # fmt: skip
    if gpus is None:
        details.append(f"NVML: cannot verify on the GPU side ({nvml_error})")
    details.append(f"log: {device.describe()}" if device else "log: names no Vulkan device (no LogVulkanRHI lines)")
    lavapipe = LAVAPIPE in log

    def result(verdict: str, summary: str) -> Rendering:
        return Rendering(verdict, summary, uses, nvml_error, device, details)

    if lavapipe or (device is not None and device.on_cpu):
        name = device.name if device is not None else "lavapipe"
        return result(CPU, f"renders on the CPU ({name}), not on a GPU: extremely slow; clients time out")
    if device is not None and not device.is_nvidia:
        return result(OTHER_GPU, f"renders on {device.name}, not on an NVIDIA GPU")
    here = [u for u in uses if (expected is None or u.gpu_index == expected) and (u.used_bytes or 0) > 0]
    if here:
        u = here[0]
        witness = f"; the log agrees ({device.name})" if device else ""
        return result(GPU, f"renders on GPU {u.gpu_index} ({u.gpu_name}): pid {u.pid} holds {gib(u.used_bytes)}"
                      + witness)  # fmt: skip
    elsewhere = [u for u in uses if u.gpu_index != expected]
    if elsewhere:
        u = elsewhere[0]
        return result(OTHER_GPU, f"renders on GPU {u.gpu_index} ({u.gpu_name}), not on GPU {expected} as asked")
    if gpus is None:
        said = f"; the log names {device.name}" if device else ""
        return result(UNVERIFIED, f"cannot verify on the GPU side ({nvml_error}){said}")
    foreign_ns = [p for d in gpus for p in d.processes if p.command is None and d.index in (expected, None)]
    if foreign_ns:
        said = f"; the log names {device.name}" if device else ""
        return result(UNVERIFIED, f"cannot attribute on the GPU side: NVML lists pid {foreign_ns[0].pid}, which is "
                      f"not visible here (another PID namespace, e.g. a container){said}")  # fmt: skip
    if expected is None and not gpus:
        return result(
            UNVERIFIED, "no NVIDIA GPU here to verify against" + (f"; the log names {device.name}" if device else "")
        )
    return result(NO_GPU, "the server holds no memory on any GPU (NVML): it is not rendering on a GPU")
