"""Vulkan as CARLA's UE4 sees it: the loader, the ICD files it would read, and the devices it lists."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor import scripts
from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system import libs
from simdoctor.system.subproc import run_bounded

LOADER = "libvulkan.so.1"
NVIDIA_VENDOR_ID = 0x10DE
# Variables that change which drivers the loader reads (Vulkan-Loader LoaderInterfaceArchitecture.md).
LOADER_VARIABLES = ("VK_DRIVER_FILES", "VK_ICD_FILENAMES", "VK_ADD_DRIVER_FILES", "VK_LOADER_DRIVERS_SELECT")


@dataclass(frozen=True)
class IcdFile:
    path: str
    real_path: str
    library_path: Optional[str]
    library_resolved: Optional[str]
    api_version: Optional[str]
    is_nvidia: bool
    error: Optional[str] = None


@dataclass(frozen=True)
class VkDevice:
    index: int
    name: str
    type: str  # DISCRETE_GPU, INTEGRATED_GPU, VIRTUAL_GPU, CPU, OTHER
    vendor_id: int
    device_id: int
    api_version: str
    driver_version: int
    uuid: Optional[str]
    driver_name: Optional[str] = None
    driver_info: Optional[str] = None

    @property
    def is_cpu(self) -> bool:
        return self.type == "CPU"

    @property
    def is_nvidia(self) -> bool:
        return self.vendor_id == NVIDIA_VENDOR_ID


@dataclass(frozen=True)
class Enumeration:
    """The outcome of listing devices in an isolated process."""

    ok: bool
    devices: list[VkDevice]
    error: Optional[str] = None  # e.g. "vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER" or "crashed (SIGSEGV)"
    stderr_tail: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VulkanFacts:
    loader: Optional[str]
    variables: dict[str, str]
    search_dirs: list[str]
    icds: list[IcdFile]
    enumeration: Optional[Enumeration]  # None when there is no loader to ask


def icd_search_dirs(env: dict[str, str]) -> list[str]:
    """The directories the Linux loader reads driver manifests from, in its order."""
    home = env.get("HOME", str(Path.home()))
    config_home = env.get("XDG_CONFIG_HOME") or f"{home}/.config"
    config_dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")
    data_home = env.get("XDG_DATA_HOME") or f"{home}/.local/share"
    data_dirs = (env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")
    bases = [config_home, *config_dirs, "/etc", data_home, *data_dirs]
    return [f"{b.rstrip('/')}/vulkan/icd.d" for b in bases if b]


def _manifests(entries: list[str], explicit: bool) -> list[Path]:
    """JSON manifests in the given dirs; explicit entries (VK_DRIVER_FILES) are kept even when missing."""
    found: list[Path] = []
    for entry in filter(None, entries):
        path = Path(entry)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix == ".json"))
        elif explicit or path.is_file():
            found.append(path)
    return found


def read_icd(path: Path, env: dict[str, str]) -> IcdFile:
    try:
        data = json.loads(path.read_text())
        icd = data["ICD"]
        library = icd.get("library_path")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return IcdFile(str(path), os.path.realpath(path), None, None, None, False, f"{type(exc).__name__}: {exc}")
    resolved = None
    if library:
        if "/" in library and not library.startswith("/"):  # relative to the manifest
            library = str(path.parent / library)
        resolved = libs.resolve(library, env)
    return IcdFile(
        path=str(path),
        real_path=os.path.realpath(path),
        library_path=library,
        library_resolved=resolved,
        api_version=icd.get("api_version"),
        is_nvidia="nvidia" in (library or "").lower(),
    )


def discover_icds(env: dict[str, str]) -> tuple[list[str], list[IcdFile]]:
    """VK_DRIVER_FILES (or the older VK_ICD_FILENAMES) replaces the search; otherwise walk the dirs."""
    forced = env.get("VK_DRIVER_FILES") or env.get("VK_ICD_FILENAMES")
    added = env.get("VK_ADD_DRIVER_FILES", "").split(":")
    if forced:
        name = "VK_DRIVER_FILES" if env.get("VK_DRIVER_FILES") else "VK_ICD_FILENAMES"
        search, manifests = [f"{name}={forced}"], _manifests(forced.split(":") + added, explicit=True)
    else:
        search = icd_search_dirs(env)
        manifests = _manifests(search, explicit=False) + _manifests(added, explicit=True)
    return search, [read_icd(p, env) for p in manifests]


def enumerate_devices(timeout: float) -> Enumeration:
    """Ask the loader for physical devices in a child process, so a crashing driver stays there."""
    outcome = run_bounded([sys.executable, "-I", "-S", scripts.path("vulkan_devices.py")], timeout=timeout)
    tail = [line for line in outcome.stderr.splitlines() if line.strip()][-5:]
    try:
        data = outcome.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Enumeration(False, [], f"device enumeration {outcome.describe()}", tail)
    if not data.get("ok"):
        return Enumeration(False, [], f"{data.get('stage')}: {data.get('error')}", tail)
    return Enumeration(True, [VkDevice(**d) for d in data["devices"]], None, tail)


@probe("vulkan", VulkanFacts, timeout=4.0, description="Vulkan loader, ICD files, physical devices")
def probe_vulkan(ctx: ProbeContext) -> VulkanFacts:
    env = dict(os.environ)
    loader = libs.resolve(LOADER, env)
    search, icds = discover_icds(env)
    return VulkanFacts(
        loader=loader,
        variables={k: env[k] for k in LOADER_VARIABLES if env.get(k)},
        search_dirs=search,
        icds=icds,
        enumeration=enumerate_devices(timeout=3.5) if loader else None,
    )
