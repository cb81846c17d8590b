"""system: OS and glibc, CPU, RAM, free disk, and the user CARLA would run as."""

from __future__ import annotations

from simdoctor.doctor import distro
from simdoctor.doctor.checking import CheckContext, check, fail, gib, ok, warn
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.carla import CarlaInstallFacts
from simdoctor.doctor.probes.packages import PackagesFacts, wanted
from simdoctor.doctor.probes.system import SystemFacts
from simdoctor.doctor.probes.weights import WeightsFacts
from simdoctor.doctor.probing import Facts

MIN_GLIBC = (2, 27)  # the carla 0.9.15 wheels are manylinux_2_27


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


@check("system.os", "Operating system", needs=("system",))
def os_check(facts: Facts, ctx: CheckContext):
    s: SystemFacts = facts.get("system")
    summary = f"{s.os_name}, kernel {s.kernel}, {s.arch}, glibc {s.glibc or 'unknown'}"
    if s.arch != "x86_64":
        return fail(
            f"{summary}: CARLA {ctx.settings.recipe.carla.version} ships Linux binaries for x86-64 only",
            Fix("Use an x86-64 machine for the simulator."),
        )
    if s.glibc and _version(s.glibc) < MIN_GLIBC:
        return fail(
            f"{summary}: glibc {s.glibc} is older than 2.27, which the carla client wheels need",
            Fix("Use a distribution with glibc 2.27 or newer (Ubuntu 18.04+, Debian 10+)."),
        )
    return ok(summary)


@check("system.cpu", "CPU", needs=("system",))
def cpu(facts: Facts, ctx: CheckContext):
    s: SystemFacts = facts.get("system")
    need = ctx.settings.recipe.worker.cpus
    summary = f"{s.cpu_model}, {s.cpus_usable} of {s.cpu_count} cores usable"
    if s.cpus_usable < need:
        return warn(
            f"{summary}; one evaluation worker wants {need}: expect a slow simulation",
            Fix(f"Run on a machine (or a Slurm allocation) with at least {need} cores per worker."),
        )
    return ok(summary)


@check("system.memory", "Memory", needs=("system",))
def memory(facts: Facts, ctx: CheckContext):
    s: SystemFacts = facts.get("system")
    need = ctx.settings.recipe.worker.ram_gib
    summary = f"{gib(s.mem_total_bytes)} RAM, {gib(s.mem_available_bytes)} available"
    if s.mem_total_bytes < need * 2**30:
        return warn(
            f"{summary}; one worker (CARLA + agent) is given {need:g} GiB by SimLingo's own job script",
            Fix("Use a machine with more memory, or run one worker at a time (`--workers-per-gpu 1`)."),
        )
    return ok(summary)


@check("system.disk", "Free disk", needs=("system",), uses=("carla", "weights"))
def disk(facts: Facts, ctx: CheckContext):
    s: SystemFacts = facts.get("system")
    carla: CarlaInstallFacts = facts.get("carla")
    weights: WeightsFacts = facts.get("weights")
    r = ctx.settings.recipe
    carla_installed = carla is not None and carla.version is not None
    weights_there = weights is not None and all(f.exists for f in weights.files if f.role == "checkpoint")
    need_by_purpose = {
        "carla": 0.0 if carla_installed else r.disk.carla_gib,
        "weights": 0.0 if weights_there else r.disk.weights_gib,
    }
    need_by_device: dict[int, float] = {}
    for d in s.disks:
        need_by_device[d.device] = need_by_device.get(d.device, 0.0) + need_by_purpose.get(d.purpose, 0.0)
    details = [
        f"{d.purpose}: {d.path} (filesystem of {d.measured_at}): {gib(d.free_bytes)} free of {gib(d.total_bytes)}"
        + (f", needs {need_by_purpose[d.purpose]:g} GiB" if need_by_purpose.get(d.purpose) else "")
        for d in s.disks
    ]
    short = [d for d in s.disks if d.free_bytes < need_by_device[d.device] * 2**30]
    if short:
        d = short[0]
        return fail(
            f"{gib(d.free_bytes)} free on the filesystem of {d.measured_at}; "
            f"{need_by_device[d.device]:g} GiB are needed there for what is not installed yet",
            Fix(
                "Free space there, or put CARLA and the weights on a larger filesystem "
                "(set CARLA_ROOT and SIMDOCTOR_WORK_DIR).",
                [f"df -h {d.measured_at}"],
            ),
            details,
        )
    free = ", ".join(f"{d.purpose} {gib(d.free_bytes)}" for d in s.disks)
    return ok(f"enough free space ({free})", details)


@check("system.user", "User", needs=("system",))
def user(facts: Facts, ctx: CheckContext):
    s: SystemFacts = facts.get("system")
    if s.euid != 0:
        return ok(f"running as {s.user} (uid {s.euid}), as CARLA requires")
    if ctx.backend == "docker":
        return ok("running as root; fine with the docker backend, whose container runs CARLA as user carla")
    from simdoctor.doctor import rootfix  # imported here, not at the top: `check` starts faster

    setup = ctx.settings.recipe.platform.setup
    return fail(
        "running as root: CARLA refuses to start (`Refusing to run with the root privileges.`)",
        Fix(
            f"Hand the stack to a normal user ({setup.user}; `setup` creates it, installs simdoctor for it and "
            "continues as it), then go on as that user; or use `--backend docker`, which runs CARLA as the "
            "image's non-root user.",
            rootfix.root_fix_commands(setup, setup.user),
        ),
    )


@check("system.packages", "System packages", needs=("packages",), uses=("system",))
def packages(facts: Facts, ctx: CheckContext):
    p: PackagesFacts = facts.get("packages")
    platform = ctx.settings.recipe.platform
    wanted_names = wanted(ctx.settings.recipe)
    text = "Install the libraries CARLA needs and the checkout's tools."
    if p.family is None:
        return warn("this distribution is none the recipe knows: its packages were not checked",
                    distro.install_fix(platform, distro.os_of(facts.get("system")), wanted_names, text))  # fmt: skip
    if p.error is not None:  # no database, or one that failed to answer: nothing is known to be missing
        return warn(f"cannot tell which packages are installed: {p.error}")
    missing = [n for n, there in p.installed.items() if not there]
    if missing:
        fam = distro.family(platform, distro.os_of(facts.get("system")))
        to_install = [n for n in wanted_names if distro.package_names(platform, fam, [n])[0] in missing]
        fix = distro.install_fix(platform, distro.os_of(facts.get("system")), to_install or wanted_names, text)
        return fail(f"not installed: {', '.join(missing)}", fix)
    return ok(f"{', '.join(p.installed)} installed")
