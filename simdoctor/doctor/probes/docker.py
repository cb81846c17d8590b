"""The Docker daemon as the docker backend would use it: reachable, its runtimes, the NVIDIA Container
Toolkit, and the recipe's CARLA image. Plain HTTP on the daemon's socket (the Engine API), so `check`
never imports the docker SDK and stays fast."""

from __future__ import annotations

import glob
import http.client
import importlib.util
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import quote

from simdoctor.doctor.probing import ProbeContext, probe

DEFAULT_HOST = "unix:///var/run/docker.sock"
API_TIMEOUT_S = 1.0
# dockerd registers its `nvidia` device driver (what --gpus and DeviceRequests use) only when this
# hook is on its PATH (moby daemon/nvidia_linux.go); the toolkit's runtime and CDI specs are the others.
NVIDIA_HOOK = "nvidia-container-runtime-hook"
NVIDIA_CTK = "nvidia-ctk"
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")


@dataclass(frozen=True)
class DockerFacts:
    host: str
    reachable: bool
    error: Optional[str]
    server_version: Optional[str]
    runtimes: list[str]
    default_runtime: Optional[str]
    nvidia_hook: Optional[str]
    nvidia_ctk: Optional[str]
    cdi_specs: list[str]
    image: str
    image_present: bool
    image_user: Optional[str]
    sdk_installed: bool
    warnings: list[str] = field(default_factory=list)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def connection(host: str, timeout: float) -> http.client.HTTPConnection:
    if host.startswith("unix://"):
        return UnixConnection(host[len("unix://") :], timeout)
    if host.startswith("tcp://"):
        return http.client.HTTPConnection(host[len("tcp://") :], timeout=timeout)
    raise ValueError(f"DOCKER_HOST={host}: only unix:// and tcp:// are probed")


def get(host: str, path: str) -> tuple[int, Any]:
    conn = connection(host, API_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body) if body else None
    except ValueError:
        return response.status, body.decode("utf-8", "replace")


def cdi_specs() -> list[str]:
    found = []
    for directory in CDI_DIRS:
        for path in sorted(glob.glob(f"{directory}/*.yaml") + glob.glob(f"{directory}/*.json")):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    if "nvidia.com/gpu" in handle.read(65536):
                        found.append(path)
            except OSError:
                continue
    return found


def tool(name: str) -> Optional[str]:
    return shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin:/usr/sbin")


@probe("docker", DockerFacts, timeout=2.0, description="Docker daemon, NVIDIA Container Toolkit, CARLA image")
def probe_docker(ctx: ProbeContext) -> DockerFacts:
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    image = ctx.settings.recipe.carla.docker_image
    base = dict(
        host=host,
        nvidia_hook=tool(NVIDIA_HOOK),
        nvidia_ctk=tool(NVIDIA_CTK),
        cdi_specs=cdi_specs(),
        image=image,
        sdk_installed=importlib.util.find_spec("docker") is not None,
    )
    try:
        status, info = get(host, "/info")
        if status != 200 or not isinstance(info, dict):
            raise OSError(f"/info answered {status}: {str(info)[:200]}")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        error = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DockerFacts(reachable=False, error=error, server_version=None, runtimes=[], default_runtime=None,
                           image_present=False, image_user=None, **base)  # fmt: skip
    try:
        status, data = get(host, f"/images/{quote(image, safe='')}/json")
    except (OSError, http.client.HTTPException):
        status, data = 0, None
    present = status == 200 and isinstance(data, dict)
    user = ((data.get("Config") or {}).get("User") or "") if present else None
    return DockerFacts(
        reachable=True,
        error=None,
        server_version=info.get("ServerVersion"),
        runtimes=sorted(info.get("Runtimes") or {}),
        default_runtime=info.get("DefaultRuntime"),
        image_present=present,
        image_user=user,
        warnings=list(info.get("Warnings") or []),
        **base,
    )
