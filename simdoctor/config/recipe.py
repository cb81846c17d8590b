"""The recipe: everything one evaluation stack needs, read from `recipes/NAME.toml` into typed data."""

from __future__ import annotations

import dataclasses
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar

from simdoctor.config.typed import DataError, from_data

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

DEFAULT_RECIPE = "simlingo-bench2drive"

R = TypeVar("R")

# [platform.packages] names the checks install by name, beside those the recipe lists itself ([carla].host_packages,
# [platform.setup].packages, [viz].font_package): a recipe lacking one is refused when read, not when a check needs it.
VULKAN_LOADER, GLXINFO, SLURM_CLIENT = "vulkan_loader", "glxinfo", "slurm_client"
# The guides the checks print ([platform.guides.TOPIC.ID]) and the {placeholders} each one's text and commands may use.
GUIDE_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "nvidia_driver": ("major",),
    "nvidia_graphics": ("major", "branch"),
    "docker": ("major",),
    "container_toolkit": ("major",),
}


class ConfigError(Exception):
    """A recipe, config file, flag or environment value that cannot be used (exit code 2)."""


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    description: str = ""


@dataclass(frozen=True)
class Defaults:
    carla_root: str
    work_dir: str
    agent_python: str
    carla_host: str
    carla_port: int
    hf_endpoint: str
    slurm_partition: str
    slurm_account: str
    slurm_qos: str


@dataclass(frozen=True)
class CarlaRecipe:
    version: str
    search: list[str]
    url: str
    additional_maps_url: str
    download_dir: str
    launcher: str
    binary: str
    process_name: str
    version_file: str
    import_dir: str
    import_script: str
    maps_dir: str
    additional_towns: list[str]
    pythonapi_dist: str
    streaming_port_offset: int
    secondary_port_offset: int
    traffic_manager_port: int
    server_args: list[str]
    offscreen_args: list[str]
    rpc_port_flag: str
    adapter_flag: str
    quality_flag: str
    qualities: list[str]
    quality: str
    start_timeout_s: float
    stop_grace_s: float
    docker_image: str
    docker_carla_root: str
    docker_name_prefix: str
    docker_capabilities: list[str]
    host_packages: list[str]


@dataclass(frozen=True)
class AgentBuild:
    """How `setup` makes the agent env (simdoctor.provision.agentbuild)."""

    environment_file: str
    env_name: str
    conda: list[str]
    venv: str
    pythons: list[str]
    uv: str
    torch_packages: list[str]
    needs_torch: list[str]
    flash_attn: str
    timeout_s: float


@dataclass(frozen=True)
class AgentRecipe:
    repo_url: str
    commit: str
    python_version: str
    carla_wheel_pythons: list[str]
    python_candidates: list[str]
    file: str
    entry: str
    track: str
    evaluator: str
    scenario_runner: str
    leaderboard: str
    pythonpath: list[str]
    deep_modules: list[str]
    modules: dict[str, str]
    packages: dict[str, str]
    torch_index: dict[str, str]
    build: AgentBuild


def torch_index(agent: AgentRecipe, driver_cuda: Optional[str]) -> str:
    """The index of the driver's CUDA major; with no driver (or an unknown major), the newest one."""
    major = (driver_cuda or "").split(".")[0]
    return agent.torch_index.get(major) or agent.torch_index[max(agent.torch_index, key=int)]


@dataclass(frozen=True)
class WeightsRecipe:
    repo: str
    revision: str
    local_dir: str
    checkpoint: str
    config: str


@dataclass(frozen=True)
class BaseModelRecipe:
    repo: str
    revision: str
    local_dir: str
    required: list[str]


@dataclass(frozen=True)
class RoutesRecipe:
    file: str
    towns: list[str]


@dataclass(frozen=True)
class WorkerRecipe:
    gpu_memory_gib: float
    ram_gib: float
    cpus: int
    disk_gib: float


@dataclass(frozen=True)
class RunRecipe:
    """`simdoctor run`: defaults of its options and the layout of its output folder."""

    out_dir: str
    seed: int
    retries: int
    route_timeout_s: float
    evaluator_timeout_s: float
    port_base: int
    max_workers_per_gpu: int
    routes_dir: str
    results_dir: str
    viz_dir: str
    logs_dir: str
    steps_dir: str
    tasks_dir: str
    run_file: str
    merged_file: str
    metric_dir: str
    lock_file: str
    slurm_dir: str
    frames_dir: str
    share_dir: str
    videos_dir: str


@dataclass(frozen=True)
class VizRecipe:
    """`simdoctor run --viz`: SimLingo's debug drawing, its font, and how the frames become a video."""

    every: int
    tick_hz: float
    debug_flag: str
    font_name: str
    fonts: list[str]
    font_package: str
    crf: int
    preset: str
    poster_at: float


@dataclass(frozen=True)
class DiskRecipe:
    carla_gib: float
    weights_gib: float
    steps: dict[str, list[float]]


@dataclass(frozen=True)
class NetworkRecipe:
    timeout_s: float
    mirror: str


@dataclass(frozen=True)
class SlurmRecipe:
    gres: str
    job_name: str
    probe_timeout_s: float
    poll_s: float
    cancel_wait_s: float
    time_margin_s: float
    shared_filesystems: list[str]


@dataclass(frozen=True)
class Family:
    """A distribution family: how it is recognised and how it installs packages."""

    name: str
    ids: list[str]
    install: str
    versions: list[str] = field(default_factory=list)
    refresh: str = ""
    epel: str = ""
    epel_packages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Guide:
    text: str
    commands: list[str]


@dataclass(frozen=True)
class PlatformSetup:
    packages: list[str]
    user: str
    user_venv: str
    user_bin: str


@dataclass(frozen=True)
class PlatformRecipe:
    """System software per distribution family (see simdoctor.doctor.distro)."""

    families: list[Family]
    packages: dict[str, dict[str, str]]
    setup: PlatformSetup
    guides: dict[str, dict[str, Guide]]


@dataclass(frozen=True)
class Recipe:
    recipe: RecipeInfo
    defaults: Defaults
    carla: CarlaRecipe
    agent: AgentRecipe
    weights: WeightsRecipe
    base_model: BaseModelRecipe
    routes: RoutesRecipe
    worker: WorkerRecipe
    run: RunRecipe
    viz: VizRecipe
    disk: DiskRecipe
    network: NetworkRecipe
    slurm: SlurmRecipe
    platform: PlatformRecipe
    path: Optional[str] = field(default=None)

    @property
    def name(self) -> str:
        return self.recipe.name


def bundled_recipe_dirs() -> list[Path]:
    """Recipes ship inside the wheel (simdoctor/recipes) or sit beside the package in a checkout."""
    package = Path(__file__).resolve().parent.parent
    return [package / "recipes", package.parent / "recipes"]


def find_recipe(name_or_path: str, user_dirs: list[Path]) -> Path:
    """A path to an existing file wins; otherwise NAME.toml in the user's, then the bundled, recipe dirs."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if candidate.is_file():
            return candidate
        raise ConfigError(f"recipe file {candidate} does not exist")
    searched = [*user_dirs, *bundled_recipe_dirs()]
    for directory in searched:
        path = directory / f"{name_or_path}.toml"
        if path.is_file():
            return path
    available = sorted({p.stem for d in searched if d.is_dir() for p in d.glob("*.toml")})
    raise ConfigError(
        f"no recipe named {name_or_path!r}; available: {', '.join(available) or 'none'} "
        f"(or pass --recipe PATH to a .toml file)"
    )


def load_recipe(path: Path) -> Recipe:
    """Parse and type-check one recipe file; every problem becomes a ConfigError naming the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from None
    try:
        recipe = from_data(Recipe, data, where=path.name)
    except DataError as exc:
        raise ConfigError(f"recipe {path}: {exc}") from None
    for f in dataclasses.fields(RunRecipe):
        value = getattr(recipe.run, f.name)
        if f.name.endswith(("_dir", "_file")) and f.name != "out_dir" and not _plain_name(value):
            raise ConfigError(f"recipe {path}: run.{f.name} {value!r} must be a plain name inside --out "
                              "(no /, not . or ..): simdoctor writes and locks it there")  # fmt: skip
    try:
        _check_packages(recipe)
        _check_guides(recipe.platform)
    except ConfigError as exc:
        raise ConfigError(f"recipe {path}: {exc}") from None
    return dataclasses.replace(recipe, path=str(path))


def _check_packages(recipe: Recipe) -> None:
    """Every package named anywhere is in [platform.packages], with a name for each family and no other."""
    platform = recipe.platform
    families = [f.name for f in platform.families]
    for name, by_family in platform.packages.items():
        unknown = [f for f in by_family if f not in families]
        if unknown:
            raise ConfigError(f"platform.packages.{name} names family {unknown[0]!r}, which is no "
                              f"[[platform.families]] name ({', '.join(families)})")  # fmt: skip
        lacking = [f for f in families if f not in by_family]
        if lacking:
            raise ConfigError(f"platform.packages.{name} has no name for family {lacking[0]!r} (each package "
                              f"needs one for every family: {', '.join(families)})")  # fmt: skip
    named = [
        ("named in carla.host_packages", recipe.carla.host_packages),
        ("named in platform.setup.packages", platform.setup.packages),
        ("viz.font_package", [recipe.viz.font_package]),
        ("which simdoctor's checks install", [VULKAN_LOADER, GLXINFO, SLURM_CLIENT]),
    ]
    for where, names in named:
        for name in names:
            if name not in platform.packages:
                raise ConfigError(f"package {name!r} ({where}) is not in [platform.packages] "
                                  f"(it has {', '.join(platform.packages) or 'none'})")  # fmt: skip


def _check_guides(platform: PlatformRecipe) -> None:
    """Each guide is one the checks print, for a family or an os-release ID one lists, using only its placeholders."""
    families = {f.name for f in platform.families}
    ids = families.union(*(f.ids for f in platform.families))
    for topic, by_id in platform.guides.items():
        if topic not in GUIDE_PLACEHOLDERS:
            raise ConfigError(f"platform.guides.{topic} is no guide simdoctor prints "
                              f"(they are {', '.join(GUIDE_PLACEHOLDERS)})")  # fmt: skip
        variables = dict.fromkeys(GUIDE_PLACEHOLDERS[topic], "")
        for key, chosen in by_id.items():
            where = f"platform.guides.{topic}.{key}"
            if key not in ids:
                raise ConfigError(f"{where}: {key!r} is neither a [[platform.families]] name nor an ID one of "
                                  f"them lists ({', '.join(sorted(ids))})")  # fmt: skip
            placeholders(chosen.text, variables, f"{where}.text")
            for i, command in enumerate(chosen.commands):
                placeholders(command, variables, f"{where}.commands[{i}]")


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def placeholders(text: str, variables: dict[str, str], where: str) -> str:
    """`text` with each {name} of `variables` filled in ({{ and }} are literal braces); anything else in
    braces ({0}, {x.y}, a lone {) is a ConfigError naming the value, not str.format's exception."""
    known = ", ".join(f"{{{name}}}" for name in variables)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ConfigError(f"recipe value {where} {text!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
    filled = []
    for literal, name, spec, conversion in parts:
        filled.append(literal)
        if name is None:
            continue
        if name not in variables or spec or conversion:
            raise ConfigError(f"recipe value {where} uses unknown placeholder {{{name}}} in {text!r} (known: "
                              f"{known}; write {{{{ and }}}} for literal braces)")  # fmt: skip
        filled.append(variables[name])
    return "".join(filled)


def expand(recipe: R, variables: dict[str, str]) -> R:
    """Fill {home}, {carla_root}, {work_dir} in every string of the recipe, then expand `~`; not in the guides, whose
    {placeholders} are the machine's, filled when one is printed (simdoctor.doctor.distro.guide)."""

    def fill(value: Any, where: str) -> Any:
        if isinstance(value, str):
            text = placeholders(value, variables, where)
            return str(Path(text).expanduser()) if text.startswith("~") else text
        if isinstance(value, list):
            return [fill(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: fill(v, f"{where}.{k}") for k, v in value.items()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: fill(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
                if f.name != "path" and not (isinstance(value, PlatformRecipe) and f.name == "guides")
            }
            return dataclasses.replace(value, **changes)
        return value

    return fill(recipe, "recipe")
