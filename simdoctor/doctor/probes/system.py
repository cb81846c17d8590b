"""OS, CPU, memory, disk and user: the facts every other check leans on."""

from __future__ import annotations

import os
import platform
import pwd
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor.doctor.probing import ProbeContext, probe


@dataclass(frozen=True)
class DiskSpace:
    purpose: str  # "carla" or "weights"
    path: str  # where things will go
    measured_at: str  # nearest existing parent, whose filesystem is measured
    device: int
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class OsRelease:
    """The keys of /etc/os-release that pick the package manager (os-release(5))."""

    id: str = ""
    id_like: list[str] = field(default_factory=list)
    version_id: str = ""
    pretty_name: str = ""

    @property
    def major(self) -> str:
        return self.version_id.split(".", 1)[0]


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
    os_release: Optional[OsRelease] = None  # None: no readable os-release (or facts from before it was read)
    sudo: Optional[str] = None  # sudo on PATH
    simdoctor: str = "simdoctor"  # how a fix names simdoctor on this machine


OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")  # os-release(5): the first that exists


def parse_os_release(text: str) -> OsRelease:
    """Shell-style KEY=value lines (values may be quoted and escaped); comments and junk are ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        values[key] = " ".join(words)
    return OsRelease(
        id=values.get("ID", "").lower(),
        id_like=values.get("ID_LIKE", "").lower().split(),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
    )


def read_os_release() -> Optional[OsRelease]:
    for name in OS_RELEASE_FILES:
        try:
            return parse_os_release(Path(name).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return None


def simdoctor_command() -> str:
    """`simdoctor` when that name on PATH is this program; else its absolute path (or `python -m simdoctor`)."""
    on_path = shutil.which("simdoctor")
    me = Path(sys.argv[0]) if sys.argv and Path(sys.argv[0]).name == "simdoctor" else None
    if me is None:
        return shlex.join([sys.executable, "-m", "simdoctor"]) if on_path is None else "simdoctor"
    if "/" not in str(me):
        return "simdoctor"  # found on PATH by the shell
    if on_path and Path(on_path).resolve() == me.resolve():
        return "simdoctor"
    return shlex.quote(str(me.absolute()))


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
    release = read_os_release()
    euid = os.geteuid()
    try:
        user = pwd.getpwuid(euid).pw_name
    except KeyError:
        user = str(euid)
    return SystemFacts(
        os_name=release.pretty_name if release and release.pretty_name else f"{platform.system()} (unknown)",
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
        os_release=release,
        sudo=shutil.which("sudo"),
        simdoctor=simdoctor_command(),
    )
