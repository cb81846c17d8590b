"""display: off-screen rendering needs no display; a window needs one the GPU's Vulkan can present to.

CARLA 0.9.15 draws a window only through Vulkan, so `--window` is decided by `display.window`: the device
`-graphicsadapter` names must present to DISPLAY (a surface and a swapchain). The OpenGL renderer is only
informative: on Xvfb it is llvmpipe, and yet a Vulkan window there does not fall back to the CPU, it crashes
(reference §9)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from simdoctor.config.recipe import GLXINFO
from simdoctor.doctor.checking import CheckContext, check, fail, ok, skip, warn
from simdoctor.doctor.distro import install_fix, os_of
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.gpumap import adapter_map
from simdoctor.doctor.probes.display import DisplayFacts
from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probes.vulkan import VulkanFacts
from simdoctor.doctor.probing import Facts

if TYPE_CHECKING:  # names for annotations: the window probe's module loads only for `check --window`
    from simdoctor.doctor.probes.window import Presentation, WindowFacts

SERVER_NAMES = {
    "xvfb": "Xvfb (a virtual framebuffer: OpenGL on the CPU)",
    "xorg": "Xorg",
    "vnc": "a VNC server",
    "nomachine": "NoMachine (nxagent virtual desktop)",
    "xwayland": "Xwayland",
    "ssh-forwarding": "SSH X11 forwarding",
    "unknown": "an unknown server",
}
XORG_CONF = "xorg-simdoctor.conf"


def window_fix(ctx: CheckContext, gpus: Optional[GpuFacts]) -> Fix:
    """Off-screen rendering watched in a browser, or an X server of the GPU's own, as exact commands."""
    out = ctx.settings.recipe.run.out_dir
    device = next((g for g in (gpus.gpus if gpus else []) if g.index == ctx.gpu), None)
    bus = f"--busid={xorg_bus_id(device.pci_bus_id)} " if device else ""
    return Fix(
        "A window cannot come from this display. Either render off-screen and watch SimLingo drive in a browser "
        "(the first three commands, `watch` in a second terminal; from your machine, `ssh -L 8765:localhost:8765` "
        "to this one), or give the GPU an X server of its own on the NVIDIA driver with a virtual screen, mirrored "
        "by x11vnc (the last five; NoMachine shows it as its physical display :1). nvidia-xconfig comes with "
        "NVIDIA's driver.",
        [
            "unset DISPLAY",
            f"simdoctor run --viz --out {out}",
            f"simdoctor watch {out}",
            f"sudo nvidia-xconfig {bus}--allow-empty-initial-configuration --virtual=1920x1080 "
            f"--output-xconfig=/etc/X11/{XORG_CONF}",
            f"sudo Xorg :1 -config {XORG_CONF} -noreset &",
            "x11vnc -display :1 -localhost -forever -shared &",
            "export DISPLAY=:1",
            f"simdoctor carla start --window --gpu {'none' if ctx.gpu is None else ctx.gpu}",
        ],
    )


def xorg_bus_id(pci_bus_id: str) -> str:
    """NVML's `00000000:17:00.0` (hex) as Xorg's BusID `PCI:23:0:0` (decimal bus:device:function)."""
    try:
        _, bus, rest = pci_bus_id.split(":")
        device, function = rest.split(".")
        return f"PCI:{int(bus, 16)}:{int(device, 16)}:{int(function, 16)}"
    except ValueError:
        return pci_bus_id


@check("display.server", "Display", needs=("display",))
def server(facts: Facts, ctx: CheckContext):
    d: DisplayFacts = facts.get("display")
    if not d.display:
        if ctx.window:
            return fail(
                "a visual session was asked for but DISPLAY is unset",
                Fix("Run from a desktop session, or drop --window to render off-screen.", ["echo $DISPLAY"]),
            )
        return ok("DISPLAY is unset: CARLA renders off-screen on the GPU with -RenderOffScreen (recommended)")
    if d.server is None:
        if d.socket is None:
            return warn(
                f"DISPLAY={d.display} but no X server serves it",
                Fix("Unset DISPLAY to render off-screen, or start the X server.", ["unset DISPLAY"]),
            )
        return ok(f"DISPLAY={d.display} is served through {d.socket} (server process not visible)")
    where = f" (pid {d.server.pid})" if d.server.pid else ""
    return ok(
        f"DISPLAY={d.display} is served by {SERVER_NAMES.get(d.server.kind, d.server.kind)}{where}",
        [d.server.command],
    )


@check("display.renderer", "Display OpenGL renderer", needs=("display",))
def renderer(facts: Facts, ctx: CheckContext):
    d: DisplayFacts = facts.get("display")
    if not d.display:
        return skip("no display: off-screen rendering does not use one")
    if d.glx is None:
        return warn(
            f"cannot tell who renders on {d.display}: glxinfo is not installed",
            install_fix(ctx.settings.recipe.platform, os_of(facts.get("system")), [GLXINFO], "Install glxinfo."),
        )
    if not d.glx.ok:
        return warn(
            f"OpenGL does not work on {d.display}: {d.glx.error} (CARLA 0.9.15 draws through Vulkan: "
            "`check --window` asks Vulkan)",
            Fix("Unset DISPLAY for off-screen runs.", ["unset DISPLAY"]),
        )
    summary = f"OpenGL on {d.display}: {d.glx.renderer} ({d.glx.vendor})"
    details = [f"version {d.glx.version}", f"accelerated: {d.glx.accelerated}", f"direct: {d.glx.direct}"]
    if d.glx.on_cpu:
        return warn(
            f"{summary} renders on the CPU; off-screen CARLA is unaffected (whether a window works, Vulkan "
            "decides: `check --window`)",
            Fix("Unset DISPLAY for off-screen runs.", ["unset DISPLAY"]),
            details,
        )
    return ok(summary, details)


@check("display.window", "Vulkan window on DISPLAY", needs=("display", "window"), uses=("gpu", "vulkan"))
def window(facts: Facts, ctx: CheckContext):
    """--window: the device CARLA's -graphicsadapter names presents to DISPLAY (surface and swapchain)."""
    d: DisplayFacts = facts.get("display")
    w: WindowFacts = facts.get("window")
    gpus: Optional[GpuFacts] = facts.get("gpu")
    vulkan: Optional[VulkanFacts] = facts.get("vulkan")
    if not d.display or not w.display:
        return skip("no DISPLAY to present to (see display.server)")
    if w.error:
        return fail(f"Vulkan lists no device to present with: {w.error}", window_fix(ctx, gpus))
    if d.server is None and d.socket is None:  # each device's probe fails at its X connection, nameless
        return fail(
            f"no X server serves DISPLAY={d.display}: a CARLA window has nowhere to open", window_fix(ctx, gpus)
        )
    where = f"DISPLAY={d.display}" + (f" ({SERVER_NAMES.get(d.server.kind, d.server.kind)})" if d.server else "")
    devices = vulkan.enumeration.devices if vulkan and vulkan.enumeration else []
    mapping = adapter_map(gpus.gpus, devices) if gpus and not gpus.nvml_error else {}
    adapter = mapping.get(ctx.gpu)
    nvidia = {dev.index for dev in devices if dev.is_nvidia}
    if adapter is None:  # no NVML, or a GPU Vulkan does not list: judge the NVIDIA devices Vulkan lists
        chosen = [p for p in w.devices if p.index in nvidia] if devices else []
        if not chosen:
            listed = ", ".join(f"[{p.index}] {p.name}" for p in w.devices) or "none"
            return fail(
                f"no NVIDIA GPU among the Vulkan devices ({listed}): a CARLA window on {where} would not render "
                "on the GPU",
                window_fix(ctx, gpus),
            )
        presentation = chosen[0]
    else:
        presentation = next((p for p in w.devices if p.index == adapter), None)
        if presentation is None:
            return fail(f"Vulkan device {adapter} (GPU {ctx.gpu}) was not probed", window_fix(ctx, gpus))
    details = [describe(p) for p in w.devices]
    gpu = "the NVIDIA GPU" if ctx.gpu is None else f"GPU {ctx.gpu}"
    listed = next((dev.name for dev in devices if dev.index == presentation.index), None)
    label = f"{gpu} ({presentation.name or listed or '?'}, -graphicsadapter={presentation.index})"
    if presentation.ok:
        return ok(f"{label} presents to {where}: surface and swapchain ({presentation.swapchain_images} images)",
                  details)  # fmt: skip
    return fail(
        f"a CARLA window on {where} would crash: Vulkan cannot present {label} there ({why(presentation)})",
        window_fix(ctx, gpus),
        details,
    )


def why(p: Presentation) -> str:
    if p.crashed:
        return f"the driver {p.crashed} after {p.stage or 'start-up'}"
    if p.presentation_support is False:
        return "no queue family can present to this display"
    return f"{p.stage}: {p.error}"


def describe(p: Presentation) -> str:
    verdict = f"swapchain of {p.swapchain_images} images" if p.ok else why(p)
    return f"[{p.index}] {p.name or '?'}: {verdict} (stages: {', '.join(p.stages) or 'none'})"


@check("display.virtualgl", "VirtualGL", needs=("display",))
def virtualgl(facts: Facts, ctx: CheckContext):
    d: DisplayFacts = facts.get("display")
    if d.vglrun:
        return ok(f"vglrun at {d.vglrun}: `vglrun -d egl` gives GPU OpenGL to windows on a CPU display")
    return skip("vglrun not installed (only useful for windows on a display that renders on the CPU)")
