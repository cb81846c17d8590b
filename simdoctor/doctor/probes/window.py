"""Whether each Vulkan device can show a window on DISPLAY, asked as a Vulkan window asks (a surface and a
swapchain), one device per child process: the NVIDIA driver can kill the asker (reference §9: on Xvfb without
GLX, vulkaninfo dies with SIGSEGV in libnvidia-eglcore), so a crash is a fact here, never simdoctor's."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from simdoctor import scripts
from simdoctor.doctor.probes.vulkan import enumerate_devices
from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system.subproc import run_bounded

PRESENT_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class Presentation:
    """The outcome of `vulkan_devices.py --present INDEX` on this DISPLAY."""

    index: int
    name: Optional[str]
    ok: bool  # a swapchain with images was created
    stage: Optional[str]  # the last stage reached (or the one that failed)
    error: Optional[str]
    presentation_support: Optional[bool] = None
    swapchain_images: Optional[int] = None
    crashed: Optional[str] = None  # "SIGSEGV" when the process died
    stages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WindowFacts:
    display: Optional[str]
    devices: list[Presentation]
    error: Optional[str] = None  # the devices could not be listed


def present(index: int, timeout: float = PRESENT_TIMEOUT_S) -> Presentation:
    outcome = run_bounded([sys.executable, "-I", "-S", scripts.path("vulkan_devices.py"), "--present", str(index)],
                          timeout=timeout)  # fmt: skip
    lines = []
    for line in outcome.stdout.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    stages = [entry["stage"] for entry in lines if isinstance(entry, dict) and "stage" in entry]
    last = lines[-1] if lines and isinstance(lines[-1], dict) and "ok" in lines[-1] else None
    name = next((e.get("name") for e in lines if isinstance(e, dict) and e.get("name")), None)
    if last is None:  # killed by the driver (or the timeout) before its verdict
        return Presentation(index, name, False, stages[-1] if stages else None, f"the probe {outcome.describe()}",
                            crashed=outcome.describe(), stages=stages)  # fmt: skip
    return Presentation(
        index=index,
        name=last.get("name") or name,
        ok=bool(last.get("ok")),
        stage=last.get("stage"),
        error=last.get("error"),
        presentation_support=last.get("presentation_support"),
        swapchain_images=last.get("swapchain_images"),
        stages=stages,
    )


@probe("window", WindowFacts, timeout=8.0, description="Vulkan presentation to DISPLAY: surface and swapchain")
def probe_window(ctx: ProbeContext) -> WindowFacts:
    display = os.environ.get("DISPLAY") or None
    if display is None:
        return WindowFacts(None, [])
    listing = enumerate_devices(timeout=3.0)
    if not listing.ok:
        return WindowFacts(display, [], listing.error)
    from concurrent.futures import ThreadPoolExecutor  # imported here, not at the top: `check` starts faster

    with ThreadPoolExecutor(max_workers=8) as pool:
        return WindowFacts(display, list(pool.map(present, [d.index for d in listing.devices])))
