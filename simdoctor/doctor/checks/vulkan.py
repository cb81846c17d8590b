"""vulkan: CARLA 0.9.15 (UE 4.26) renders only through Vulkan; these say on which device it would."""

from __future__ import annotations

from typing import Optional

from simdoctor.config.recipe import VULKAN_LOADER
from simdoctor.doctor.checking import CheckContext, check, fail, ok, plural, skip, warn
from simdoctor.doctor.checks.gpu import driver_fix, graphics_fix
from simdoctor.doctor.distro import install_fix, os_of
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.gpumap import adapter_map
from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probes.vulkan import LOADER, IcdFile, VulkanFacts
from simdoctor.doctor.probing import Facts


def _device_line(d) -> str:
    return (
        f"[{d.index}] {d.name} ({d.type}, vendor 0x{d.vendor_id:04x}, uuid {d.uuid or '?'}"
        + (f", driver {d.driver_name} {d.driver_info or ''}".rstrip() if d.driver_name else "")
        + ")"
    )


FORCING = ("VK_DRIVER_FILES", "VK_ICD_FILENAMES")


def unforce_fix(v: VulkanFacts) -> Fix:
    """VK_DRIVER_FILES/VK_ICD_FILENAMES replace the loader's own search for drivers."""
    names = [n for n in FORCING if n in v.variables]
    return Fix(
        f"{' and '.join(names)} force the loader to other drivers than NVIDIA's: unset them.",
        [f"unset {' '.join(names)}"],
    )


def loadable_nvidia_icd(v: VulkanFacts) -> Optional[IcdFile]:
    return next((i for i in v.icds if i.is_nvidia and i.library_resolved), None)


@check("vulkan.loader", "Vulkan loader", needs=("vulkan",))
def loader(facts: Facts, ctx: CheckContext):
    v: VulkanFacts = facts.get("vulkan")
    if v.loader:
        return ok(f"{LOADER} at {v.loader}")
    return fail(
        f"no Vulkan loader ({LOADER}): CARLA {ctx.settings.recipe.carla.version} renders only through Vulkan",
        install_fix(
            ctx.settings.recipe.platform, os_of(facts.get("system")), [VULKAN_LOADER], "Install the Vulkan loader."
        ),
    )


@check("vulkan.icd", "NVIDIA Vulkan driver (ICD)", needs=("vulkan",), uses=("gpu",))
def icd(facts: Facts, ctx: CheckContext):
    v: VulkanFacts = facts.get("vulkan")
    g: GpuFacts = facts.get("gpu")
    details = [f"searched: {d}" for d in v.search_dirs]
    details += [
        f"{i.path}"
        + (f" -> {i.real_path}" if i.real_path != i.path else "")
        + f": {i.library_path or i.error} ({i.library_resolved or 'unresolved'})"
        for i in v.icds
    ]
    details += [f"{k}={val}" for k, val in v.variables.items()]
    nvidia = [i for i in v.icds if i.is_nvidia]
    has_driver = g is not None and not g.nvml_error
    if not nvidia:
        if not has_driver:
            return skip("no NVIDIA driver, so no NVIDIA Vulkan driver to look for", details)
        if any(n in v.variables for n in FORCING):
            return fail("no NVIDIA Vulkan driver manifest among the ones forced on the loader", unforce_fix(v), details)
        return fail(
            "no NVIDIA Vulkan driver manifest (nvidia_icd.json) where the loader looks",
            graphics_fix(g, facts, ctx),
            details,
        )
    unresolved = [i for i in nvidia if not i.library_resolved]
    if len(unresolved) == len(nvidia):
        i = unresolved[0]
        fix = graphics_fix(g, facts, ctx) if has_driver else Fix("Install the NVIDIA driver's graphics libraries.")
        return fail(f"{i.path} names {i.library_path}, which the dynamic linker cannot find", fix, details)
    good = next(i for i in nvidia if i.library_resolved)
    return ok(f"{good.path} -> {good.library_resolved}", details)


@check("vulkan.icd_duplicates", "Duplicate NVIDIA ICDs", needs=("vulkan",))
def icd_duplicates(facts: Facts, ctx: CheckContext):
    v: VulkanFacts = facts.get("vulkan")
    nvidia = [i for i in v.icds if i.is_nvidia]
    if not nvidia:
        return skip("no NVIDIA ICD")
    if len(nvidia) == 1:
        return ok(f"one NVIDIA ICD ({nvidia[0].path})")
    keep = loadable_nvidia_icd(v) or nvidia[0]
    return warn(
        f"{plural(len(nvidia), 'NVIDIA ICD file')}: the loader may list each GPU more than once, "
        "shifting the -graphicsadapter indexes",
        Fix(
            "Keep one: point the loader at a single manifest (or remove the extra file).",
            [f"export VK_DRIVER_FILES={keep.path}"],
        ),
        [i.path for i in nvidia],
    )


@check("vulkan.devices", "Vulkan devices", needs=("vulkan",), uses=("gpu",))
def devices(facts: Facts, ctx: CheckContext):
    v: VulkanFacts = facts.get("vulkan")
    g: GpuFacts = facts.get("gpu")
    if v.enumeration is None:
        return skip("no Vulkan loader to ask")
    e = v.enumeration
    fix_driver = graphics_fix(g, facts, ctx) if g is not None and not g.nvml_error else driver_fix(facts, ctx)
    if not e.ok:
        return fail(f"the Vulkan loader could not list devices: {e.error}", fix_driver, e.stderr_tail)
    details = [_device_line(d) for d in e.devices]
    if not e.devices:
        return fail("the Vulkan loader lists no device", fix_driver, details)
    gpus = [d for d in e.devices if not d.is_cpu]
    if not gpus:
        names = ", ".join(d.name for d in e.devices)
        nvidia_json = loadable_nvidia_icd(v)
        if any(n in v.variables for n in FORCING) and nvidia_json is None:
            fix = unforce_fix(v)
        elif nvidia_json is not None:
            fix = Fix("Point the loader at the NVIDIA driver.", [f"export VK_DRIVER_FILES={nvidia_json.path}"])
        else:
            fix = fix_driver
        return fail(
            f"Vulkan sees only CPU devices ({names}): CARLA would render on the CPU, slowly or not at all",
            fix,
            details,
        )
    listed = ", ".join(f"{d.name} ({d.type})" for d in gpus)
    return ok(f"{plural(len(gpus), 'GPU device')}: {listed}", details)


@check("vulkan.adapter_map", "GPU to -graphicsadapter", needs=("vulkan", "gpu"))
def adapters(facts: Facts, ctx: CheckContext):
    v: VulkanFacts = facts.get("vulkan")
    g: GpuFacts = facts.get("gpu")
    if g.nvml_error or not g.gpus:
        return skip("no NVIDIA GPU")
    if v.enumeration is None or not v.enumeration.ok:
        return skip("no Vulkan device list")
    mapping = adapter_map(g.gpus, v.enumeration.devices)
    details = [
        f"GPU {i} ({g.gpus[i].uuid}) -> " + (f"-graphicsadapter={a}" if a is not None else "not listed by Vulkan")
        for i, a in mapping.items()
    ]
    missing = [i for i, a in mapping.items() if a is None]
    if missing:
        return fail(
            f"Vulkan does not list GPU {', '.join(map(str, missing))}: CARLA cannot render there",
            Fix(
                "Make the NVIDIA Vulkan driver visible (see vulkan.icd and vulkan.devices).",
                ["nvidia-smi -L"],
            ),
            details,
        )
    shifted = [i for i, a in mapping.items() if a != i]
    pairs = ", ".join(f"GPU {i} -> {a}" for i, a in mapping.items())
    if shifted:
        return ok(f"{pairs} (Vulkan order differs from nvidia-smi; simdoctor passes the mapped index)", details)
    return ok(pairs, details)
