"""The agent's own interpreter (SimLingo pins Python 3.8), probed once in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor import scripts
from simdoctor.config.agentenv import agent_environment, pythonpath
from simdoctor.config.settings import Settings
from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system.subproc import run_bounded

TIMEOUT = 8.0
DEEP_TIMEOUT = 180.0


@dataclass(frozen=True)
class ModuleState:
    found: bool
    origin: Optional[str]
    error: Optional[str]
    file_exists: Optional[bool] = None  # for the agent module: is its file there at all


@dataclass(frozen=True)
class CarlaImport:
    ok: bool
    file: Optional[str]
    error: Optional[str]


@dataclass(frozen=True)
class TorchBuild:
    path: str
    version: Optional[str]
    cuda: Optional[str]  # None for a CPU-only build


@dataclass(frozen=True)
class HubResolution:
    ok: bool
    via: str  # "transformers 4.46.3", or huggingface_hub where transformers is missing
    detail: str  # the config class or snapshot path; the error's last line when not ok


@dataclass(frozen=True)
class DeepFacts:
    torch_error: Optional[str]
    cuda_available: Optional[bool]
    device_count: Optional[int]
    arch_list: Optional[list[str]]
    op_ok: Optional[bool]
    op_error: Optional[str]
    agent_import_ok: Optional[bool]
    agent_import_error: Optional[str]
    seconds: Optional[float]
    module_errors: dict[str, Optional[str]] = field(default_factory=dict)  # deep_modules: None when it imports
    hub: dict[str, HubResolution] = field(default_factory=dict)  # the base model by hub name, offline


@dataclass(frozen=True)
class NodeFacts:
    """Where a Slurm probe job ran it, and what it saw there."""

    hostname: str
    variables: dict[str, str]  # CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS, ...
    paths: dict[str, bool]  # path -> exists on that node


@dataclass(frozen=True)
class AgentFacts:
    requested: str  # the setting, or "" for the recipe's candidates
    source: str
    python: Optional[str]  # the interpreter used, None when none was found
    tried: list[str]
    error: Optional[str]  # why the probe could not run or read the interpreter
    pythonpath: list[str]
    version: Optional[str] = None
    executable: Optional[str] = None
    packages: Optional[dict[str, Optional[str]]] = None
    carla: Optional[CarlaImport] = None
    modules: Optional[dict[str, ModuleState]] = None
    agent: Optional[ModuleState] = None
    torch: Optional[TorchBuild] = None
    deep: Optional[DeepFacts] = None
    node: Optional[NodeFacts] = None


def _usable(candidate: str) -> Optional[str]:
    if "/" not in candidate:
        return shutil.which(candidate)
    path = Path(candidate).expanduser()
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def resolve_python(settings: Settings) -> tuple[Optional[str], list[str]]:
    """The agent interpreter: the setting when given, else the first recipe candidate that exists."""
    if settings.agent_python:
        return _usable(settings.agent_python), [settings.agent_python]
    tried = list(settings.recipe.agent.python_candidates)
    return next(filter(None, map(_usable, tried)), None), tried


@probe("agent", AgentFacts, TIMEOUT, "the agent's interpreter and its imports", deep_timeout=DEEP_TIMEOUT)
def probe_agent(ctx: ProbeContext) -> AgentFacts:
    s = ctx.settings
    python, tried = resolve_python(s)
    base = dict(
        requested=s.agent_python,
        source=s.source("agent_python"),
        python=python,
        tried=tried,
        pythonpath=pythonpath(s),
    )
    if python is None:
        return AgentFacts(error="no interpreter found", **base)
    outcome = run_bounded(
        [python, scripts.path("agent_probe.py")],
        timeout=DEEP_TIMEOUT - 5 if ctx.deep else TIMEOUT - 0.5,
        env={**os.environ, **agent_environment(s)},
        stdin=json.dumps(probe_request(s, ctx.deep)),
    )
    try:
        data = outcome.json() if outcome.ok else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return AgentFacts(error=f"{python} {outcome.describe()}", **base)
    return facts_from(data, base)


def probe_request(settings: Settings, deep: bool = False, node_paths: tuple[str, ...] = ()) -> dict:
    """What scripts/agent_probe.py is asked; `node_paths` makes it also report the node it runs on."""
    agent = settings.recipe.agent
    request = {"modules": list(agent.modules), "agent_file": agent.file, "packages": list(agent.packages),
               "deep": deep, "deep_modules": list(agent.deep_modules),
               "hub_repos": [settings.recipe.base_model.repo]}  # fmt: skip
    if node_paths:
        request.update(node=True, paths=list(node_paths))
    return request


def facts_from(data: dict, base: dict) -> AgentFacts:
    """AgentFacts from agent_probe.py's JSON answer plus what simdoctor knew before asking (`base`)."""
    agent_state = data["agent"]
    return AgentFacts(
        error=None,
        version=data["version"],
        executable=data["executable"],
        packages=data["packages"],
        carla=CarlaImport(**data["carla"]),
        modules={name: ModuleState(**state) for name, state in data["modules"].items()},
        agent=ModuleState(**agent_state) if agent_state else None,
        torch=TorchBuild(**data["torch"]) if data["torch"] else None,
        deep=deep_facts(data["deep"]) if data["deep"] else None,
        node=NodeFacts(**data["node"]) if data.get("node") else None,
        **base,
    )


def deep_facts(data: dict) -> DeepFacts:
    hub = {repo: HubResolution(**found) for repo, found in (data.get("hub") or {}).items()}
    return DeepFacts(**{**data, "hub": hub})
