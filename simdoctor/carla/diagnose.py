"""Why a CARLA server failed, read from its log: the known failure strings of reference/carla.md §4.

Each pattern names the threads it comes from. `Signal 11 caught.` is UE's generic crash trailer:
it is reported with the line before it, which is where the real cause is (carla#8043).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Optional

from simdoctor.doctor.findings import Fix

CHECK_VULKAN = "simdoctor check --only gpu,vulkan -v"


@dataclass(frozen=True)
class Pattern:
    key: str
    regex: re.Pattern
    cause: str
    fix: Fix
    sources: tuple[str, ...]
    kind: str = "cause"  # cause | trailer (only says "it crashed") | harmless


@dataclass(frozen=True)
class Diagnosis:
    key: str
    cause: str
    fix: Fix
    lines: list[str]  # the log lines that show it
    sources: list[str] = field(default_factory=list)
    kind: str = "cause"


def _p(key: str, regex: str, cause: str, fix: Fix, sources: tuple[str, ...], kind: str = "cause") -> Pattern:
    return Pattern(key, re.compile(regex), cause, fix, sources, kind)


PATTERNS: tuple[Pattern, ...] = (
    _p("root", r"Refusing to run with the root privileges",
       "CARLA refuses to run as root (UE4 checks geteuid() == 0 at start-up)",
       Fix("Run CARLA as a normal user, or use the docker backend (the image runs it as user carla).",
           ["sudo useradd -m -s /bin/bash carla", "sudo -iu carla simdoctor carla start",
            "simdoctor carla start --backend docker"]),
       ("carla#9049", "kesai-labs/lead#83")),
    _p("icd_missing", r"Cannot find a compatible Vulkan driver \(ICD\)|Incompatible Vulkan driver found"
       r"|VK_ERROR_INCOMPATIBLE_DRIVER",
       "no NVIDIA Vulkan driver (ICD) is visible: vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER",
       Fix("Install the graphics part of the NVIDIA driver, or point the loader at nvidia_icd.json; in a "
           "container, give it the `graphics` capability (NVIDIA_DRIVER_CAPABILITIES=all).",
           [CHECK_VULKAN, "export VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/nvidia_icd.json"]),
       ("carla#4687", "carla#8942", "adamrehn/ue4-runtime#10")),
    _p("no_device", r"Cannot find a compatible Vulkan device or driver|Vulkan device not available",
       "vkEnumeratePhysicalDevices failed: the Vulkan driver offers no usable device",
       Fix("Check the driver and, in a container, its capabilities (`graphics`); a driver update broke "
           "0.9.15 in one report.", [CHECK_VULKAN]),
       ("VulkanRHI.cpp", "carla#7616", "SimplerEnv#114")),
    _p("no_surface", r"compatible Vulkan device that supports surface presentation"
       r"|vkGetPhysicalDeviceSurfaceFormatsKHR",
       "CARLA tried to present to a window or display that is not there",
       Fix("Render off-screen: start without --window (simdoctor then passes -RenderOffScreen).",
           ["simdoctor carla start"]),
       ("carla#3555", "carla#2138", "carla#6543")),
    _p("address_in_use", r"bind: Address already in use",
       "a port CARLA binds (RPC P, streaming P+1, secondary P+2) is already taken, usually by another CARLA",
       Fix("Stop the other server, or let simdoctor pick free ports.",
           ["simdoctor carla status", "simdoctor carla start --port auto"]),
       ("carla#225", "carla#3557", "carla#6992")),
    _p("out_of_memory", r"VK_ERROR_OUT_OF_DEVICE_MEMORY|Out of video memory",
       "the GPU ran out of memory",
       Fix("Free GPU memory (a leftover server?), or render at low quality.",
           ["simdoctor carla status", "simdoctor carla start --quality Low"]),
       ("carla#7164", "carla#4775", "carla#5801")),
    _p("x_error", r"X Error of failed request:\s+Bad\w+",
       "an X error: the window went to the wrong GPU or X visual (an Intel iGPU, X forwarding)",
       Fix("Render off-screen, or use a display served by the NVIDIA GPU.", ["unset DISPLAY", "simdoctor carla start"]),
       ("carla#8043", "carla#7221", "carla#2703")),
    _p("lavapipe", r"lavapipe is not a conformant vulkan implementation",
       "Vulkan runs on lavapipe, i.e. on the CPU: CARLA is extremely slow and clients time out",
       Fix("Make the NVIDIA Vulkan driver visible to the loader.", [CHECK_VULKAN]),
       ("carla#5063",)),
    _p("signal11", r"Signal 11 caught|CommonUnixCrashHandler: Signal=11|Segmentation fault",
       "CARLA crashed (signal 11); that trailer says nothing by itself: the line before it is the cause",
       Fix("Read the line before the crash. Reported workaround for off-screen crashes: run under Xvfb.",
           ["Xvfb :99 -screen 0 1280x720x24 &", "DISPLAY=:99 simdoctor carla start"]),
       ("carla#7710", "carla#8043"), kind="trailer"),
    _p("xdg", r"xdg-user-dir: not found",
       "harmless: xdg-user-dirs is not installed (a red herring, not a cause)",
       Fix("Optional.", ["sudo apt-get install -y xdg-user-dirs"]),
       ("carla#3514", "carla#1892", "carla#9137"), kind="harmless"),
)  # fmt: skip

# Lines after which CARLA does not come back (it exits or crashes next): `simdoctor run` ends the attempt on
# them without waiting for the process to go. lavapipe (slow, not dead) and harmless noise are not among them.
FATAL = ("root", "icd_missing", "no_device", "no_surface", "address_in_use", "out_of_memory", "x_error", "signal11")
CORE_DUMPS = "Disabling core dumps."
SILENT_EXIT = Diagnosis(
    "silent_exit",
    "CARLA exited right after `Disabling core dumps.` without a word: Vulkan could not start "
    "(seen in Docker when the NVIDIA ICD or driver libraries are not mapped in)",
    Fix("Fix the Vulkan driver mapping (`graphics` capability, nvidia_icd.json).", [CHECK_VULKAN]),
    [],
    ["carla#8079", "carla#6234"],
)
MAX_LINES = 6


def _is_trailer(line: str) -> bool:
    return any(p.kind == "trailer" and p.regex.search(line) for p in PATTERNS)


def diagnose(log: str, exited: bool = True) -> list[Diagnosis]:
    """Every known failure in the log, causes first, then the crash trailer, then harmless noise."""
    lines = log.splitlines()
    found = []
    for pattern in PATTERNS:
        hits = [i for i, line in enumerate(lines) if pattern.regex.search(line)]
        if not hits:
            continue
        shown: list[str] = []
        for i in hits:
            if pattern.kind == "trailer":
                before = next(
                    (lines[j] for j in range(i - 1, -1, -1) if lines[j].strip() and not _is_trailer(lines[j])), None
                )
                if before is not None and before not in shown:
                    shown.append(before)
            if lines[i] not in shown:
                shown.append(lines[i])
        found.append(
            Diagnosis(pattern.key, pattern.cause, pattern.fix, shown[:MAX_LINES], list(pattern.sources), pattern.kind)
        )
    meaningful = [line for line in lines if line.strip()]
    if exited and meaningful and meaningful[-1].strip() == CORE_DUMPS and not any(d.kind == "cause" for d in found):
        found.append(replace(SILENT_EXIT, lines=meaningful[-2:]))
    order = {"cause": 0, "trailer": 1, "harmless": 2}
    return sorted(found, key=lambda d: order[d.kind])


def tail(log: str, count: int = 12) -> list[str]:
    return [line for line in log.splitlines() if line.strip()][-count:]


def first_cause(found: list[Diagnosis]) -> Optional[Diagnosis]:
    """The diagnosis to lead with: a cause, else the crash trailer; harmless noise never leads."""
    return next((d for d in found if d.kind != "harmless"), None)
