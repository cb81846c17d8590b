"""gpu: the NVIDIA driver, every GPU, who holds GPU memory, and the driver's graphics libraries."""

from __future__ import annotations

from simdoctor.doctor.checking import CheckContext, check, fail, gib, ok, plural, skip, warn
from simdoctor.doctor.distro import guide, os_of
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.gpu import GRAPHICS_LIBS, GpuFacts
from simdoctor.doctor.probes.servers import ServersFacts
from simdoctor.doctor.probing import Facts


def driver_branch(version: str) -> str:
    return version.split(".", 1)[0]


def package_branch(g: GpuFacts) -> str:
    """The driver branch as Ubuntu's package names carry it (`580`, or `580-server` for the server flavour)."""
    server = any(p.endswith("-server") for p in g.driver_packages)
    return f"{driver_branch(g.driver_version or '')}{'-server' if server else ''}"


def driver_fix(facts: Facts, ctx: CheckContext) -> Fix:
    """Install the NVIDIA driver the way this distribution does (the recipe's guide), then reboot."""
    return guide(
        ctx.settings.recipe.platform,
        os_of(facts.get("system")),
        "nvidia_driver",
        "Install the NVIDIA driver with its graphics libraries, then reboot.",
    )


def graphics_fix(g: GpuFacts, facts: Facts, ctx: CheckContext) -> Fix:
    """How to get libGLX_nvidia/libEGL_nvidia and nvidia_icd.json matching the running driver."""
    if g.in_container:
        return Fix(
            "The driver's libraries come from the host: restart the container with the `graphics` capability "
            "(the NVIDIA container toolkit then mounts them).",
            ["docker run --gpus all -e NVIDIA_DRIVER_CAPABILITIES=all ..."],
        )
    if not g.driver_packages:
        return Fix(
            f"The driver {g.driver_version} was not installed from distribution packages (a .run installer?): "
            "reinstall the same version with its OpenGL/Vulkan libraries (no --no-opengl-files).",
            [f"sudo sh NVIDIA-Linux-x86_64-{g.driver_version}.run --no-kernel-module --silent"],
        )
    text = f"Install the graphics part of the NVIDIA driver {g.driver_version}."
    return guide(
        ctx.settings.recipe.platform, os_of(facts.get("system")), "nvidia_graphics", text, branch=package_branch(g)
    )


@check("gpu.driver", "NVIDIA driver", needs=("gpu",))
def driver(facts: Facts, ctx: CheckContext):
    g: GpuFacts = facts.get("gpu")
    if g.nvml_error:
        if "nvidia-ml-py" in g.nvml_error:
            return fail(g.nvml_error, Fix("Install NVML's Python binding.", ["pip install nvidia-ml-py"]))
        return fail(
            f"no usable NVIDIA driver ({g.nvml_error}): CARLA and the agent need an NVIDIA GPU",
            driver_fix(facts, ctx),
        )
    return ok(f"driver {g.driver_version}, CUDA {g.cuda_driver_version}")


@check("gpu.devices", "GPUs", needs=("gpu",))
def devices(facts: Facts, ctx: CheckContext):
    g: GpuFacts = facts.get("gpu")
    if g.nvml_error:
        return skip("no NVIDIA driver")
    if not g.gpus:
        return fail(
            "NVML sees no GPU",
            Fix("Check that the GPUs are passed through (containers: --gpus all).", ["nvidia-smi -L"]),
        )
    need = ctx.settings.recipe.worker.gpu_memory_gib
    details = [
        f"GPU {d.index}: {d.name}, {d.uuid}, PCI {d.pci_bus_id}, compute {d.compute_capability or '?'}, "
        f"{gib(d.memory_free_bytes)} free of {gib(d.memory_total_bytes)}"
        for d in g.gpus
    ]
    names = sorted({d.name for d in g.gpus})
    summary = f"{plural(len(g.gpus), 'GPU')}: {', '.join(names)}"
    if all(d.memory_free_bytes < need * 2**30 for d in g.gpus):
        return warn(
            f"{summary}; none has the {need:g} GiB one worker (CARLA + agent) needs free",
            Fix("Free GPU memory (see gpu.processes), or use a GPU with more memory.", ["nvidia-smi"]),
            details,
        )
    return ok(summary, details)


@check("gpu.processes", "GPU memory holders", needs=("gpu",))
def processes(facts: Facts, ctx: CheckContext):
    g: GpuFacts = facts.get("gpu")
    if g.nvml_error:
        return skip("no NVIDIA driver")
    rows = [(d, p) for d in g.gpus for p in d.processes]
    if not rows:
        return ok("no process holds GPU memory")
    details = [
        f"GPU {d.index}: pid {p.pid} ({p.kind}) {gib(p.used_bytes) if p.used_bytes is not None else '? GiB'}: "
        f"{p.command or 'not visible here (another PID namespace)'}"
        for d, p in rows
    ]
    total = sum(p.used_bytes or 0 for _, p in rows)
    return ok(f"{plural(len(rows), 'process')} hold {gib(total)} of GPU memory", details)


@check("gpu.stale_carla", "Leftover CARLA servers", needs=("gpu",), uses=("carla_servers",))
def stale_carla(facts: Facts, ctx: CheckContext):
    g: GpuFacts = facts.get("gpu")
    recorded: ServersFacts = facts.get("carla_servers")
    if g.nvml_error:
        return skip("no NVIDIA driver")
    name = ctx.settings.recipe.carla.process_name
    rows = [(d, p) for d in g.gpus for p in d.processes if p.name == name or name in (p.command or "")]
    if not rows:
        return ok(f"no {name} process holds GPU memory")
    owner = {pid: f"simdoctor's server {s.id}" for s in (recorded.servers if recorded else []) for pid in s.pids}
    owner.update({pid: "a running simdoctor run's" for pid in (recorded.run_pids if recorded else [])})
    details = [
        f"GPU {d.index}: pid {p.pid} {gib(p.used_bytes)}: {p.command}"
        + f" ({owner.get(p.pid, 'not started by simdoctor')})"
        for d, p in rows
    ]
    orphans = [(d, p) for d, p in rows if p.pid not in owner]
    ours = sorted({owner[p.pid] for _, p in rows if p.pid in owner})
    if not orphans:
        return ok(f"only simdoctor's own CARLA servers hold GPU memory ({'; '.join(ours)})", details)
    pids = sorted({p.pid for _, p in orphans})
    total = sum(p.used_bytes or 0 for _, p in orphans)
    return warn(
        f"{plural(len(pids), 'CARLA server')} not started by simdoctor hold {gib(total)} of GPU memory "
        f"(pid {', '.join(map(str, pids))}); leftovers of a crashed evaluation keep memory and ports",
        Fix(
            "If no evaluation of yours is running, stop them (simdoctor's own servers are left alone).",
            ["simdoctor carla status", "simdoctor carla stop --orphans"],
        ),
        details,
    )


@check("gpu.graphics_libs", "Driver graphics libraries", needs=("gpu",))
def graphics_libs(facts: Facts, ctx: CheckContext):
    g: GpuFacts = facts.get("gpu")
    if g.nvml_error:
        return skip("no NVIDIA driver")
    missing = [name for name in GRAPHICS_LIBS if not g.graphics_libs.get(name)]
    details = [f"{name}: {g.graphics_libs.get(name) or 'not found'}" for name in GRAPHICS_LIBS]
    if missing:
        return fail(
            f"{', '.join(missing)} missing: the driver has no graphics part, so Vulkan cannot use the GPU",
            graphics_fix(g, facts, ctx),
            details,
        )
    return ok("libGLX_nvidia and libEGL_nvidia present", details)
