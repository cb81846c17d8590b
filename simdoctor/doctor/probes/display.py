"""The X display CARLA would use when it opens a window: who serves DISPLAY and who renders OpenGL there."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system import procs
from simdoctor.system.subproc import run_bounded

# X server executables by the kind of display they give (basename of argv[0]).
X_SERVERS = {
    "Xvfb": "xvfb",
    "Xorg": "xorg",
    "X": "xorg",
    "Xvnc": "vnc",
    "Xtigervnc": "vnc",
    "Xtightvnc": "vnc",
    "Xvnc-core": "vnc",
    "nxagent": "nomachine",
    "Xwayland": "xwayland",
    "Xdummy": "xorg",
}
CPU_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "lavapipe")


@dataclass(frozen=True)
class XServer:
    kind: str  # xvfb, xorg, vnc, nomachine, xwayland, ssh-forwarding, unknown
    pid: Optional[int]
    command: str


@dataclass(frozen=True)
class Glx:
    ok: bool
    renderer: Optional[str] = None
    vendor: Optional[str] = None
    version: Optional[str] = None
    accelerated: Optional[bool] = None
    direct: Optional[bool] = None
    error: Optional[str] = None

    @property
    def on_cpu(self) -> bool:
        text = (self.renderer or "").lower()
        return any(name in text for name in CPU_RENDERERS) or self.accelerated is False


@dataclass(frozen=True)
class DisplayFacts:
    display: Optional[str]
    wayland_display: Optional[str]
    server: Optional[XServer]
    socket: Optional[str]  # /tmp/.X11-unix/X<n> when it exists
    glxinfo: Optional[str]
    glx: Optional[Glx]
    vglrun: Optional[str]


def parse_display(value: str) -> tuple[str, Optional[int]]:
    """`host:N.S` -> (host, N); the host is empty for a local display."""
    match = re.match(r"^(?P<host>[^:]*):(?P<num>\d+)(\.\d+)?$", value.strip())
    if not match:
        return value, None
    return match.group("host"), int(match.group("num"))


def find_server(display: str) -> Optional[XServer]:
    host, number = parse_display(display)
    if host not in ("", "unix") or number is None:
        kind = "ssh-forwarding" if host in ("localhost", "127.0.0.1") and (number or 0) >= 10 else "unknown"
        return XServer(kind, None, f"remote display {display}")
    for proc in procs.processes():
        if not proc.cmdline:
            continue
        kind = X_SERVERS.get(os.path.basename(proc.cmdline[0]))
        if kind and f":{number}" in proc.cmdline[1:]:
            return XServer(kind, proc.pid, proc.command)
    return None


def parse_glxinfo(text: str) -> Glx:
    def grab(pattern: str) -> Optional[str]:
        match = re.search(pattern, text, re.MULTILINE)
        return match.group(1).strip() if match else None

    accelerated = grab(r"^\s*Accelerated:\s*(\w+)")
    direct = grab(r"^direct rendering:\s*(\w+)")
    return Glx(
        ok=True,
        renderer=grab(r"^OpenGL renderer string:\s*(.+)$"),
        vendor=grab(r"^OpenGL vendor string:\s*(.+)$"),
        version=grab(r"^OpenGL version string:\s*(.+)$"),
        accelerated=None if accelerated is None else accelerated.lower() == "yes",
        direct=None if direct is None else direct.lower() == "yes",
    )


@probe("display", DisplayFacts, timeout=3.0, description="DISPLAY, its X server and OpenGL renderer")
def probe_display(ctx: ProbeContext) -> DisplayFacts:
    display = os.environ.get("DISPLAY") or None
    glxinfo = shutil.which("glxinfo")
    server = socket = glx = None
    if display:
        server = find_server(display)
        _, number = parse_display(display)
        candidate = Path(f"/tmp/.X11-unix/X{number}")
        socket = str(candidate) if number is not None and candidate.exists() else None
        if glxinfo:
            outcome = run_bounded([glxinfo, "-B"], timeout=2.5)
            glx = parse_glxinfo(outcome.stdout) if outcome.ok else Glx(False, error=f"glxinfo {outcome.describe()}")
    return DisplayFacts(
        display=display,
        wayland_display=os.environ.get("WAYLAND_DISPLAY") or None,
        server=server,
        socket=socket,
        glxinfo=glxinfo,
        glx=glx,
        vglrun=shutil.which("vglrun"),
    )
