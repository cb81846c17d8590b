"""The agent env `setup` makes: SimLingo's Python 3.8 environment, by conda/mamba/micromamba from its
environment.yaml when one of them is here, else by uv from the recipe's pins (SimLingo's environment.yaml
pins of what the evaluator and agent import), with torch from the index matching the driver's CUDA."""

from __future__ import annotations

import glob
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import AgentRecipe
from simdoctor.provision.steps import Action, StepError, streamed
from simdoctor.system import atomic


@dataclass(frozen=True)
class Options:
    no_torch: bool = False  # resolve torch and torchvision, install neither (nor the pins that need torch)
    flash_attn: bool = False


def find_conda(agent: AgentRecipe) -> Optional[str]:
    """conda, mamba or micromamba: on PATH first, then where their installers put them."""
    for name in ("conda", "mamba", "micromamba"):
        found = shutil.which(name)
        if found:
            return found
    return next((c for c in agent.build.conda if Path(c).is_file()), None)


def find_python(agent: AgentRecipe) -> Optional[str]:
    """A Python of the pinned minor version on this machine (pyenv's, or on PATH); None: let uv fetch one."""
    for pattern in agent.build.pythons:
        hits = sorted(glob.glob(pattern)) if "/" in pattern else [shutil.which(pattern) or ""]
        for hit in hits:
            if hit and Path(hit).is_file():
                return hit
    return None


def find_uv() -> Optional[str]:
    """uv on PATH, or beside simdoctor's own interpreter (where `pip install uv` puts it)."""
    beside = Path(sys.executable).parent / "uv"
    return shutil.which("uv") or (str(beside) if beside.is_file() else None)


def unfinished(agent: AgentRecipe, python: Optional[str], installed: Optional[dict], options: Options) -> list[str]:
    """The pins missing from the venv `setup` makes (a killed setup leaves it half-filled); none for another env."""
    if python != str(Path(agent.build.venv) / "bin" / "python") or installed is None:
        return []
    left_out = {*agent.build.torch_packages, *agent.build.needs_torch} if options.no_torch else set()
    return [n for n in agent.packages if n not in left_out and installed.get(n) is None]


def conda_env_python(conda: str, name: str) -> Optional[str]:
    """Where a named env's python is, without asking conda: envs/NAME under the tool's root."""
    tool = Path(conda)
    roots = [tool.parent.parent]
    if tool.name == "micromamba":
        roots += [Path.home() / "micromamba", Path.home() / ".local" / "share" / "mamba"]
    return next((str(r / "envs" / name / "bin" / "python") for r in roots if (r / "envs" / name).is_dir()), None)


def remember(agent: AgentRecipe, conda: str, config_file: Path) -> Action:
    """After `env create`: an env outside the recipe's candidates is written to the config as agent_python
    (unless the config names one already), so that every later command finds it."""

    def run() -> None:
        python = conda_env_python(conda, agent.build.env_name)
        if python is None:
            raise StepError(f"{conda} made no env {agent.build.env_name} where it keeps its envs")
        if python in agent.python_candidates:
            return
        text = config_file.read_text(encoding="utf-8") if config_file.is_file() else ""
        if any(line.split("=", 1)[0].strip() == "agent_python" for line in text.splitlines()):
            return
        config_file.parent.mkdir(parents=True, exist_ok=True)
        before = text if text.endswith("\n") or not text else text + "\n"
        atomic.write_text(config_file, f"{before}agent_python = {json.dumps(python)}\n")

    return Action(f"write the env's python to {config_file} as agent_python, if the candidates do not find it", run)


def conda_actions(agent: AgentRecipe, conda: str, index: str, options: Options, config_file: Path) -> list[Action]:
    """environment.yaml as it is; torch then comes from the driver's index when that is not CUDA 12.1's."""
    b = agent.build
    create = (
        [conda, "create", "-y", "-f", b.environment_file]
        if Path(conda).name == "micromamba"
        else [conda, "env", "create", "-f", b.environment_file]
    )
    actions = [
        streamed(create, b.timeout_s, f"create the conda env {b.env_name} from {b.environment_file}"),
        remember(agent, conda, config_file),
    ]
    default = agent.torch_index[max(agent.torch_index, key=int)]
    extra = []
    if index != default:
        extra.append(
            _pip_in_env(
                conda,
                b.env_name,
                ["--force-reinstall", "--no-deps", "--index-url", index, *_pins(agent, b.torch_packages)],
                "torch for this driver",
            )
        )
    if options.flash_attn:
        extra.append(_pip_in_env(conda, b.env_name, ["--no-build-isolation", b.flash_attn], "flash-attn"))
    return actions + extra


def _pip_in_env(conda: str, env: str, args: list[str], what: str) -> Action:
    return streamed([conda, "run", "-n", env, "python", "-m", "pip", "install", *args], 3600, f"install {what}")


def _pins(agent: AgentRecipe, names: list[str]) -> list[str]:
    return [f"{n}=={agent.packages[n]}" for n in names if n in agent.packages]


def uv_actions(
    agent: AgentRecipe, uv: Optional[str], python: Optional[str], index: str, options: Options, make_venv: bool = True
) -> list[Action]:
    """A venv with a found (or uv-managed) Python 3.8, torch from `index`, then every other pin from PyPI; without
    `make_venv`, the installs alone into the venv an interrupted setup made (uv skips what is there)."""
    b = agent.build
    actions: list[Action] = []
    if uv is None:
        uv = str(Path(sys.executable).parent / "uv")
        actions.append(streamed([sys.executable, "-m", "pip", "install", b.uv], 600, f"install {b.uv} from PyPI"))
    venv_python = str(Path(b.venv) / "bin" / "python")
    env = {"UV_PYTHON_DOWNLOADS": "never"} if python else None
    if make_venv:
        # --seed: pip in the env, since every fix for it (check's agent findings, the client step) runs `python -m pip`
        venv = [uv, "venv", "--seed", "--python", python or agent.python_version, b.venv]
        actions.append(streamed(venv, 900, f"make the agent venv {b.venv}", env))
    torch = _pins(agent, b.torch_packages)
    torch_args = [uv, "pip", "install", "--python", venv_python, "--index-url", index, *torch]
    if options.no_torch:
        actions.append(streamed([*torch_args[:3], "--dry-run", *torch_args[3:]], 900, "resolve torch (not installed)"))
    else:
        actions.append(streamed(torch_args, b.timeout_s, f"install {' '.join(torch)} from {index}"))
    skip = set(b.torch_packages) | (set(b.needs_torch) if options.no_torch else set())
    rest = {n: v for n, v in agent.packages.items() if n not in skip}
    if not options.no_torch:
        rest.update({n: agent.packages[n] for n in b.torch_packages if n in agent.packages})  # kept as installed
    requirements = Path(b.venv) / "simdoctor-requirements.txt"  # inside the venv uv just made

    def write() -> None:
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in rest.items()), encoding="utf-8")

    actions.append(
        Action(f"write the pins to {requirements}: {', '.join(f'{n}=={v}' for n, v in rest.items())}", write)
    )
    install = [uv, "pip", "install", "--python", venv_python, "-r", str(requirements)]
    actions.append(streamed(install, b.timeout_s, f"install {len(rest)} pinned packages from PyPI"))
    if options.flash_attn:
        flash = [uv, "pip", "install", "--python", venv_python, "--no-build-isolation", b.flash_attn]
        actions.append(streamed(flash, 3600, "install flash-attn"))
    return actions
