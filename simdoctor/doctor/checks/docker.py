"""docker: what the docker backend needs (only with `--backend docker`): a reachable daemon, the NVIDIA
Container Toolkit for the GPU request, the `graphics` capability's files on the host, the image."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simdoctor.doctor.checking import CheckContext, check, fail, ok, skip, warn
from simdoctor.doctor.checks.gpu import graphics_fix
from simdoctor.doctor.distro import guide, os_of
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.gpu import GRAPHICS_LIBS, GpuFacts
from simdoctor.doctor.probes.vulkan import VulkanFacts
from simdoctor.doctor.probing import Facts

if TYPE_CHECKING:  # the docker probe's module (http.client) loads only when --backend docker runs it
    from simdoctor.doctor.probes.docker import DockerFacts


def _guide(facts: Facts, ctx: CheckContext, topic: str, fallback: str) -> Fix:
    return guide(ctx.settings.recipe.platform, os_of(facts.get("system")), topic, fallback)


@check("docker.sdk", "Docker SDK for Python", needs=("docker",))
def sdk(facts: Facts, ctx: CheckContext):
    d: DockerFacts = facts.get("docker")
    if d.sdk_installed:
        return ok("the docker package is installed")
    from simdoctor.system import extras  # imported here, not at the top: `check` starts faster

    return fail(
        "the docker Python package is missing: `simdoctor carla start --backend docker` needs it",
        Fix("Install simdoctor's docker extra into its interpreter.", [extras.install_command("docker")]),
    )


@check("docker.daemon", "Docker daemon", needs=("docker",))
def daemon(facts: Facts, ctx: CheckContext):
    d: DockerFacts = facts.get("docker")
    if d.reachable:
        return ok(f"Docker {d.server_version} answers on {d.host}", d.warnings)
    if d.error and "ermission denied" in d.error:
        return fail(
            f"{d.host}: permission denied: this user may not use the Docker daemon",
            Fix("Join the docker group (then log in again), or run as root.", ["sudo usermod -aG docker $USER"]),
        )
    return fail(
        f"no Docker daemon answers on {d.host} ({d.error})",
        _guide(facts, ctx, "docker", "Install and start Docker."),
    )


@check("docker.nvidia", "NVIDIA Container Toolkit", needs=("docker",))
def nvidia(facts: Facts, ctx: CheckContext):
    from simdoctor.doctor.probes.docker import NVIDIA_HOOK  # imported here, not at the top: `check` starts faster

    d: DockerFacts = facts.get("docker")
    details = [f"runtimes: {', '.join(d.runtimes) or 'none'} (default {d.default_runtime or '?'})",
               f"{NVIDIA_HOOK}: {d.nvidia_hook or 'not found'}",
               f"nvidia-ctk: {d.nvidia_ctk or 'not found'}",
               f"CDI specs: {', '.join(d.cdi_specs) or 'none'}"]  # fmt: skip
    if "nvidia" in d.runtimes or d.nvidia_hook or d.cdi_specs:
        what = "the nvidia runtime" if "nvidia" in d.runtimes else d.nvidia_hook or d.cdi_specs[0]
        return ok(f"GPU requests can be served ({what})", details)
    return fail(
        "no NVIDIA Container Toolkit: a GPU request fails with "
        '`could not select device driver "" with capabilities: [[gpu]]`',
        _guide(facts, ctx, "container_toolkit", "Install the NVIDIA Container Toolkit and register it with Docker."),
        details,
    )


@check("docker.graphics", "Graphics capability", needs=("docker", "gpu"), uses=("vulkan",))
def graphics(facts: Facts, ctx: CheckContext):
    g: GpuFacts = facts.get("gpu")
    v: VulkanFacts = facts.get("vulkan")
    if g.nvml_error:
        return skip("no NVIDIA driver on the host")
    missing = [name for name in GRAPHICS_LIBS if not g.graphics_libs.get(name)]
    icd = [i.path for i in v.icds if i.is_nvidia] if v is not None else []
    details = [f"{name}: {g.graphics_libs.get(name) or 'not found'}" for name in GRAPHICS_LIBS]
    details.append(f"nvidia_icd.json: {', '.join(icd) or 'not found'}")
    if missing or (v is not None and not icd):
        return fail(
            "the `graphics` capability would give the container no Vulkan driver: the host lacks "
            + ", ".join(missing + ([] if icd else ["nvidia_icd.json"])),
            graphics_fix(g, facts, ctx),
            details,
        )
    return ok("the host has the files the `graphics` capability mounts (GLX/EGL libraries, Vulkan ICD)", details)


@check("docker.image", "CARLA image", needs=("docker",))
def image(facts: Facts, ctx: CheckContext):
    d: DockerFacts = facts.get("docker")
    if not d.reachable:
        return skip("no Docker daemon")
    if not d.image_present:
        return warn(
            f"{d.image} is not on this machine; `simdoctor carla start --backend docker` needs it",
            Fix("Pull it (about 10 GB), or build containers/carla/Dockerfile.", [f"docker pull {d.image}"]),
        )
    user = (d.image_user or "").split(":", 1)[0]
    if user in ("", "root", "0"):
        return fail(
            f"{d.image} runs as root: CARLA refuses to run as root",
            Fix("Use the upstream image (USER carla), or build containers/carla/Dockerfile."),
        )
    return ok(f"{d.image} is present and runs as user {d.image_user}")
