"""NVIDIA driver and GPUs through NVML: versions, devices, memory, and who holds GPU memory."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system import libs, procs

# The driver's GLX/EGL vendor libraries; the NVIDIA Vulkan ICD loads libGLX_nvidia.so.0, and
# headless driver packages (nvidia-headless-*, compute-only containers) leave both out.
GRAPHICS_LIBS = ("libGLX_nvidia.so.0", "libEGL_nvidia.so.0")
NVML_LIBRARY = "libnvidia-ml.so.1"  # what pynvml's nvmlInit dlopens on Linux
NVML_NOT_FOUND = "NVML Shared Library Not Found"  # pynvml's text for NVML_ERROR_LIBRARY_NOT_FOUND


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    kind: str  # "compute" or "graphics"
    used_bytes: Optional[int]
    command: Optional[str]  # None when the pid is not visible here (another PID namespace)
    name: Optional[str]


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    uuid: str
    pci_bus_id: str
    memory_total_bytes: int
    memory_used_bytes: int
    memory_free_bytes: int
    compute_capability: Optional[str]
    processes: list[GpuProcess] = field(default_factory=list)
    minor_number: Optional[int] = None  # N of /dev/nvidiaN: what Slurm's gres.conf File= lines name


@dataclass(frozen=True)
class GpuFacts:
    nvml_error: Optional[str]
    driver_version: Optional[str]
    cuda_driver_version: Optional[str]
    gpus: list[GpuDevice]
    graphics_libs: dict[str, Optional[str]]
    driver_packages: list[str] = field(default_factory=list)  # installed Debian/Ubuntu nvidia packages
    in_container: bool = False  # the driver then comes from the host, through the container runtime


DPKG_STATUS = "/var/lib/dpkg/status"
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")


def in_container() -> bool:
    return any(os.path.exists(p) for p in CONTAINER_MARKERS)


def installed_nvidia_packages(status_file: str = DPKG_STATUS) -> list[str]:
    """Names of installed (lib)nvidia-* packages, read from dpkg's status file (no dpkg call)."""
    try:
        with open(status_file, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return []
    names = []
    for stanza in text.split("\n\n"):
        if "\nStatus: install ok installed" not in stanza:
            continue
        name = stanza.split("\n", 1)[0].removeprefix("Package: ")
        if name.startswith(("nvidia-", "libnvidia-")):
            names.append(name)
    return sorted(names)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _processes(nvml: Any, handle: Any) -> list[GpuProcess]:
    found: dict[tuple[int, str], GpuProcess] = {}
    for kind, getter in (
        ("compute", "nvmlDeviceGetComputeRunningProcesses"),
        ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
    ):
        try:
            entries = getattr(nvml, getter)(handle)
        except nvml.NVMLError:
            continue
        for entry in entries:
            used = entry.usedGpuMemory
            info = procs.process(entry.pid)
            found[(entry.pid, kind)] = GpuProcess(
                pid=entry.pid,
                kind=kind,
                used_bytes=int(used) if isinstance(used, int) and used >= 0 else None,
                command=info.command if info else None,
                name=(info.cmdline[0].rsplit("/", 1)[-1] if info and info.cmdline else info.comm) if info else None,
            )
    return list(found.values())


def read_gpus(nvml: Any) -> list[GpuDevice]:
    """Every GPU NVML sees, in NVML index order (the nvidia-smi order)."""
    devices = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            capability: Optional[str] = f"{major}.{minor}"
        except nvml.NVMLError:
            capability = None
        try:
            minor: Optional[int] = int(nvml.nvmlDeviceGetMinorNumber(handle))
        except nvml.NVMLError:
            minor = None
        devices.append(
            GpuDevice(
                index=index,
                name=_text(nvml.nvmlDeviceGetName(handle)),
                uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                pci_bus_id=_text(nvml.nvmlDeviceGetPciInfo(handle).busId),
                memory_total_bytes=int(memory.total),
                memory_used_bytes=int(memory.used),
                memory_free_bytes=int(memory.free),
                compute_capability=capability,
                processes=_processes(nvml, handle),
                minor_number=minor,
            )
        )
    return devices


def nvml_session() -> Any:
    """Import and initialise NVML; raises RuntimeError with the reason when there is no usable driver.

    Where the dynamic linker has no NVML library, pynvml's nvmlInit could only fail to load it: that same dlopen
    is tried first, so a machine without the driver does not import pynvml (a large module) for that answer."""
    if importlib.util.find_spec("pynvml") is None:
        raise RuntimeError("the nvidia-ml-py package is not installed")
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(NVML_LIBRARY)
        except OSError:
            raise RuntimeError(f"NVML: {NVML_NOT_FOUND}") from None
    try:
        import pynvml as nvml
    except ImportError:
        raise RuntimeError("the nvidia-ml-py package is not installed") from None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise RuntimeError(f"NVML: {exc}") from None
    return nvml


@probe("gpu", GpuFacts, timeout=3.0, description="NVIDIA driver, GPUs and GPU processes through NVML")
def probe_gpu(ctx: ProbeContext) -> GpuFacts:
    graphics = {name: libs.resolve(name) for name in GRAPHICS_LIBS}
    packages = installed_nvidia_packages()
    container = in_container()
    try:
        nvml = nvml_session()
    except RuntimeError as exc:
        return GpuFacts(str(exc), None, None, [], graphics, packages, container)
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = nvml.nvmlSystemGetCudaDriverVersion_v2()
        cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}"
        return GpuFacts(None, driver, cuda_version, read_gpus(nvml), graphics, packages, container)
    finally:
        nvml.nvmlShutdown()
