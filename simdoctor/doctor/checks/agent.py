"""agent: the agent's interpreter, its CARLA client, its imports, torch and the pinned packages."""

from __future__ import annotations

from typing import Optional

from simdoctor.config.recipe import torch_index
from simdoctor.doctor.checking import CheckContext, check, fail, ok, skip, warn
from simdoctor.doctor.checks.gpu import driver_fix
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.agent import AgentFacts
from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probing import Facts

# The oldest CUDA toolkit that can build kernels for each compute capability (CUDA release notes).
MIN_CUDA_FOR_CAPABILITY = {
    "12.0": "12.8", "10.0": "12.8", "9.0": "11.8", "8.9": "11.8", "8.7": "11.4", "8.6": "11.1",
    "8.0": "11.0", "7.5": "10.0", "7.0": "9.0",
}  # fmt: skip


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+", 1)[0].split(".") if p.isdigit())


def _no_interpreter(a: AgentFacts) -> Optional[str]:
    return "no agent interpreter" if a.python is None or a.error else None


def env_fix(ctx: CheckContext) -> Fix:
    r = ctx.settings.recipe.agent
    return Fix(
        f"Create SimLingo's Python {r.python_version} environment (`setup` clones SimLingo when needed, then uses "
        "conda with its environment.yaml, or uv with the pins), or point simdoctor at one with --agent-python.",
        ["simdoctor setup --only checkout,agent_env"],
    )


def torch_fix(a: AgentFacts, ctx: CheckContext, driver_cuda: Optional[str]) -> Fix:
    """Replace torch by the pinned version built for the driver's CUDA; a plain `pip install torch==2.2.0`
    would do nothing, since `2.2.0+cpu` or `2.2.0+cu121` already satisfies `==2.2.0`."""
    r = ctx.settings.recipe.agent
    index = torch_index(r, driver_cuda)
    return Fix(
        f"Reinstall torch {r.packages['torch']} built for the driver's CUDA {driver_cuda or ''}".rstrip() + ".",
        [f"{a.python} -m pip install --force-reinstall torch=={r.packages['torch']} --index-url {index}"],
    )


def pip_fix(a: AgentFacts, package: str, version: str) -> Fix:
    return Fix(
        f"Install the pinned {package} into the agent's environment.",
        [f"{a.python} -m pip install {package}=={version}"],
    )


@check("agent.python", "Agent interpreter", needs=("agent",))
def python(facts: Facts, ctx: CheckContext):
    a: AgentFacts = facts.get("agent")
    want = ctx.settings.recipe.agent.python_version
    if a.python is None:
        what = f"{a.requested} (from {a.source})" if a.requested else f"none of {', '.join(a.tried)}"
        return fail(f"no agent interpreter: {what} is not an executable Python", env_fix(ctx))
    if a.error or a.version is None:
        return fail(f"the agent interpreter {a.python} could not be probed: {a.error}", env_fix(ctx))
    summary = f"Python {a.version} at {a.python}"
    if _v(a.version)[:2] != _v(want)[:2]:
        return warn(f"{summary}; SimLingo pins Python {want}", env_fix(ctx))
    return ok(summary)


@check("agent.carla_client", "CARLA client in the agent env", needs=("agent",))
def carla_client(facts: Facts, ctx: CheckContext):
    a: AgentFacts = facts.get("agent")
    want = ctx.settings.recipe.agent.packages["carla"]
    if _no_interpreter(a):
        return skip("no agent interpreter")
    installed = (a.packages or {}).get("carla")
    wheels = ctx.settings.recipe.agent.carla_wheel_pythons
    if installed != want and a.version and ".".join(a.version.split(".")[:2]) not in wheels:
        return fail(
            f"carla {want} has no wheel for Python {a.version} (only {', '.join(wheels)})",
            env_fix(ctx),
        )
    if a.carla is not None and not a.carla.ok:
        what = f"carla {installed}" if installed else "carla"
        return fail(f"{what} does not import in the agent env: {a.carla.error}", pip_fix(a, "carla", want))
    if installed is None:
        return warn(
            f"carla imports from {a.carla.file if a.carla else '?'} without package metadata; cannot tell its version",
            pip_fix(a, "carla", want),
        )
    if installed != want:
        return fail(f"carla {installed} in the agent env; the server is {want}", pip_fix(a, "carla", want))
    return ok(f"carla {installed}")


@check("agent.imports", "Evaluator imports", needs=("agent",))
def imports(facts: Facts, ctx: CheckContext):
    a: AgentFacts = facts.get("agent")
    if _no_interpreter(a) or a.modules is None:
        return skip("no agent interpreter")
    provider = ctx.settings.recipe.agent.modules
    details = [f"PYTHONPATH: {':'.join(a.pythonpath)}"]
    missing = []
    for name, state in a.modules.items():
        details.append(
            f"{name}: {state.origin if state.found else 'NOT FOUND'}" + (f" ({state.error})" if state.error else "")
        )
        if not state.found:
            missing.append(name)
    if missing:
        name = missing[0]
        entry = provider.get(name, "")
        why = (
            f"`{name}` is not importable: the PYTHONPATH entry {entry} is not there"
            if entry and entry not in a.pythonpath
            else f"`{name}` is not importable with the PYTHONPATH simdoctor computes (expected under {entry})"
        )
        others = f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""
        from_carla = entry.startswith(str(ctx.settings.carla_root))
        fix = (
            Fix(
                f"`{name}` ships with CARLA's PythonAPI: install CARLA where CARLA_ROOT points.",
                ["simdoctor setup --only carla", f"export CARLA_ROOT={ctx.settings.carla_root}"],
            )
            if from_carla
            else Fix(
                "Clone SimLingo (it carries Bench2Drive's leaderboard and scenario_runner) into the work dir.",
                [f"git clone {ctx.settings.recipe.agent.repo_url} {ctx.settings.work_dir}"],
            )
        )
        return fail(why + others, fix, details)
    return ok(f"{', '.join(a.modules)} importable", details)


@check("agent.module", "Agent module", needs=("agent",))
def module(facts: Facts, ctx: CheckContext):
    a: AgentFacts = facts.get("agent")
    r = ctx.settings.recipe.agent
    if _no_interpreter(a) or a.agent is None:
        return skip("no agent interpreter")
    if not a.agent.file_exists:
        return fail(
            f"agent file {r.file} does not exist",
            Fix(
                "Check out a SimLingo commit with the evaluation code (8f3e584 or later).",
                [f"cd {ctx.settings.work_dir} && git pull"],
            ),
        )
    if not a.agent.found:
        return fail(
            f"agent module of {r.file} is not importable: {a.agent.error}",
            Fix(
                "Import it for real to see the whole error (this imports torch too).",
                ["simdoctor check --only agent --deep -v"],
            ),
        )
    return ok(f"{r.file} (entry {r.entry})")


@check("agent.torch", "torch build", needs=("agent",), uses=("gpu",))
def torch(facts: Facts, ctx: CheckContext):
    a: AgentFacts = facts.get("agent")
    g: GpuFacts = facts.get("gpu")
    want = ctx.settings.recipe.agent.packages["torch"]
    if _no_interpreter(a):
        return skip("no agent interpreter")
    if a.torch is None or a.torch.version is None:
        return fail("torch is not installed in the agent env", pip_fix(a, "torch", want))
    t = a.torch
    summary = f"torch {t.version}, " + (f"CUDA {t.cuda}" if t.cuda else "CPU-only build")
    gpus = g.gpus if g is not None and not g.nvml_error else []
    driver_cuda = g.cuda_driver_version if g is not None else None
    if t.cuda is None:
        if gpus:
            return fail(f"{summary}: the agent would run on the CPU", torch_fix(a, ctx, driver_cuda))
        return warn(f"{summary}; no GPU here either", torch_fix(a, ctx, driver_cuda))
    problems = []  # (verdict, why, fix)
    if driver_cuda and _v(driver_cuda) < _v(t.cuda)[:2]:
        why = f"the driver supports CUDA {driver_cuda}, older than torch's CUDA {t.cuda}"
        if _v(driver_cuda)[0] == _v(t.cuda)[0]:
            update = driver_fix(facts, ctx)
            update = Fix(
                f"Update the NVIDIA driver to one for CUDA {t.cuda} or newer; until then CUDA's minor-version "
                f"compatibility runs most, not all, kernels. {update.text}",
                update.commands,
            )
            problems.append((warn, why + " (minor-version compatibility only)", update))
        else:
            problems.append((fail, why, torch_fix(a, ctx, driver_cuda)))
    for d in gpus:
        need = MIN_CUDA_FOR_CAPABILITY.get(d.compute_capability or "")
        if need and _v(t.cuda) < _v(need):
            arch = (d.compute_capability or "").replace(".", "")
            why = f"GPU {d.index} ({d.name}, sm_{arch}) needs CUDA {need} or newer; this torch is built for {t.cuda}"
            problems.append((fail, why, torch_fix(a, ctx, driver_cuda)))
    if problems:
        level, why, fix = next((p for p in problems if p[0] is fail), problems[0])
        return level(f"{summary}: {why}", fix, [p[1] for p in problems])
    if _v(t.version)[:3] != _v(want)[:3]:
        return warn(f"{summary}; SimLingo pins torch {want}", pip_fix(a, "torch", want))
    return ok(summary)


# Pins with a check of their own: carla (against the server), torch (built for the driver's CUDA, its own index).
OWN_CHECKS = ("carla", "torch")


def _base(version: str) -> str:
    """`2.2.0+cu121` -> `2.2.0`: a local build tag does not make another version."""
    return version.split("+", 1)[0]


@check("agent.packages", "Pinned packages", needs=("agent",))
def packages(facts: Facts, ctx: CheckContext):
    """Every distribution the evaluator and the agent import, against SimLingo's environment.yaml pins (the
    recipe's [agent.packages]), read from package metadata: `find_spec("leaderboard")` passes while
    `import leaderboard.leaderboard_evaluator` fails on requests, pexpect, ephem or transforms3d."""
    a: AgentFacts = facts.get("agent")
    if _no_interpreter(a) or a.packages is None:
        return skip("no agent interpreter")
    pins = {name: version for name, version in ctx.settings.recipe.agent.packages.items() if name not in OWN_CHECKS}
    have = {name: a.packages.get(name) for name in pins}
    missing = [name for name, version in have.items() if version is None]
    off = [name for name, version in have.items() if version is not None and _base(version) != pins[name]]
    details = [f"{name}: {have[name] or 'NOT INSTALLED'} (pin {pins[name]})" for name in pins]
    if not missing and not off:
        return ok(f"{len(pins)} pinned packages at SimLingo's versions", details)
    wrong = missing + off
    fix = Fix(
        "Install SimLingo's pinned versions (environment.yaml) into the agent's environment, all at once.",
        [f"{a.python} -m pip install " + " ".join(f"{name}=={pins[name]}" for name in wrong)],
    )
    parts = [f"missing: {', '.join(missing)}"] if missing else []
    parts += [f"not at SimLingo's pin: {', '.join(f'{n} {have[n]} (pin {pins[n]})' for n in off)}"] if off else []
    return (fail if missing else warn)("; ".join(parts), fix, details)


@check("agent.deep", "Real import (--deep)", needs=("agent",))
def deep(facts: Facts, ctx: CheckContext):
    a: AgentFacts = facts.get("agent")
    if not ctx.deep:
        return skip("run with --deep to import torch and the agent for real")
    if _no_interpreter(a) or a.deep is None:
        return skip("no agent interpreter")
    d = a.deep
    details = [
        f"cuda available: {d.cuda_available}, devices: {d.device_count}, archs: {d.arch_list}",
        f"took {d.seconds}s",
    ]
    if d.torch_error:
        return fail(f"`import torch` fails: {d.torch_error}", Fix("Reinstall torch in the agent env."), details)
    if not d.cuda_available:
        return fail(
            "torch sees no CUDA device in the agent env",
            Fix("Install a CUDA build of torch.", [f"{a.python} -c 'import torch; print(torch.version.cuda)'"]),
            details,
        )
    if not d.op_ok:
        return fail(
            f"a CUDA operation failed: {d.op_error}",
            Fix("Match torch's CUDA build to the GPU and driver."),
            details,
        )
    unresolved = {repo: found for repo, found in d.hub.items() if not found.ok}
    details += [f"{repo} via {found.via}: {found.detail}" for repo, found in d.hub.items()]
    if unresolved:
        repo, found = next(iter(unresolved.items()))
        return fail(
            f"{repo} does not resolve by name offline with the agent's {found.via}: {found.detail}",
            Fix(f"Put {repo} into the Hugging Face cache the agent uses.", ["simdoctor setup --only base_model"]),
            details,
        )
    broken = {name: error for name, error in d.module_errors.items() if error}
    if broken:
        name, error = next(iter(broken.items()))
        others = f" (also: {', '.join(list(broken)[1:])})" if len(broken) > 1 else ""
        return fail(
            f"`import {name}` fails: {error}{others}",
            Fix(
                "Install the missing or wrongly pinned packages (agent.packages says which).",
                ["simdoctor check --only agent"],
            ),
            details,
        )
    if d.agent_import_ok is False:
        return fail(
            f"importing the agent fails: {d.agent_import_error}",
            Fix("Install SimLingo's pinned packages (environment.yaml) in the agent env."),
            details,
        )
    if d.agent_import_ok is None:
        return ok("torch runs on the GPU (the agent module was not imported: see agent.module)", details)
    imported = ", ".join([*d.module_errors, "the agent module"])
    return ok(f"torch runs on the GPU; {imported} import", details)
