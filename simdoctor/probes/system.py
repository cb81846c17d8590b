"""OS, CPU, memory, disk and user: the facts every other check leans on."""

from __future__ import annotations

import os
import platform
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.probing import ProbeContext, probe


@dataclass(frozen=True)
class DiskSpace:
    purpose: str  # "carla" or "weights"
    path: str  # where things will go
    measured_at: str  # nearest existing parent, whose filesystem is measured
    device: int
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class SystemFacts:
    os_name: str
    kernel: str
    arch: str
    glibc: Optional[str]
    cpu_model: str
    cpu_count: int
    cpus_usable: int
    mem_total_bytes: int
    mem_available_bytes: int
    euid: int
    user: str
    disks: list[DiskSpace]


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} (unknown distribution)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                values[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return values


def _existing_parent(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_space(purpose: str, path: Path) -> DiskSpace:
    """Free space of the filesystem that `path` will live on, even when it does not exist yet."""
    where = _existing_parent(path)
    usage = shutil.disk_usage(where)
    return DiskSpace(purpose, str(path), str(where), os.stat(where).st_dev, usage.free, usage.total)


@probe("system", SystemFacts, timeout=1.0, description="OS, glibc, CPU, RAM, disk, user")
def probe_system(ctx: ProbeContext) -> SystemFacts:
    s = ctx.settings
    glibc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else None
    mem = _meminfo()
    euid = os.geteuid()
    try:
        user = pwd.getpwuid(euid).pw_name
    except KeyError:
        user = str(euid)
    return SystemFacts(
        os_name=_os_name(),
        kernel=platform.release(),
        arch=platform.machine(),
        glibc=glibc.split()[-1] if glibc else None,
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 0,
        cpus_usable=len(os.sched_getaffinity(0)),
        mem_total_bytes=mem.get("MemTotal", 0),
        mem_available_bytes=mem.get("MemAvailable", 0),
        euid=euid,
        user=user,
        disks=[disk_space("carla", s.carla_root), disk_space("weights", Path(s.recipe.weights.local_dir))],
    )
