"""display: off-screen rendering needs no display; a window needs one that renders on the GPU."""

from __future__ import annotations

from simdoctor.checks import CheckContext, check, fail, ok, skip, warn
from simdoctor.distro import install_fix, os_of
from simdoctor.findings import Fix
from simdoctor.probes.display import DisplayFacts
from simdoctor.probing import Facts

SERVER_NAMES = {
    "xvfb": "Xvfb (a virtual framebuffer: OpenGL on the CPU)",
    "xorg": "Xorg",
    "vnc": "a VNC server",
    "nomachine": "NoMachine (nxagent virtual desktop)",
    "xwayland": "Xwayland",
    "ssh-forwarding": "SSH X11 forwarding",
    "unknown": "an unknown server",
}
GPU_DISPLAY_FIX = Fix(
    "For a window, use an X server on the NVIDIA driver (or VirtualGL); otherwise render off-screen, "
    "which needs no display.",
    [
        "sudo nvidia-xconfig -a --virtual=1920x1080 --allow-empty-initial-configuration",
        "sudo Xorg :0 &",
        "export DISPLAY=:0",
    ],
)


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
            install_fix(ctx.settings.recipe.platform, os_of(facts.get("system")), ["glxinfo"], "Install glxinfo."),
        )
    if not d.glx.ok:
        return (fail if ctx.window else warn)(
            f"OpenGL does not work on {d.display}: {d.glx.error}",
            GPU_DISPLAY_FIX,
        )
    summary = f"OpenGL on {d.display}: {d.glx.renderer} ({d.glx.vendor})"
    details = [f"version {d.glx.version}", f"accelerated: {d.glx.accelerated}", f"direct: {d.glx.direct}"]
    if d.glx.on_cpu:
        if ctx.window:
            return fail(
                f"{summary} renders on the CPU: a CARLA window here would not use the GPU",
                GPU_DISPLAY_FIX,
                details,
            )
        return warn(
            f"{summary} renders on the CPU; off-screen CARLA is unaffected, a window would be",
            Fix("Unset DISPLAY for off-screen runs (or see the fix for --window sessions).", ["unset DISPLAY"]),
            details,
        )
    return ok(summary, details)


@check("display.virtualgl", "VirtualGL", needs=("display",))
def virtualgl(facts: Facts, ctx: CheckContext):
    d: DisplayFacts = facts.get("display")
    if d.vglrun:
        return ok(f"vglrun at {d.vglrun}: `vglrun -d egl` gives GPU OpenGL to windows on a CPU display")
    return skip("vglrun not installed (only useful for windows on a display that renders on the CPU)")
