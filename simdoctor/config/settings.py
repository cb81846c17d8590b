"""Resolved settings: flags, then environment, then the user's config file, then the recipe.

Every value remembers where it came from, so a finding can say "CARLA_ROOT (environment) points
to /x, which does not exist" instead of guessing. Secrets never show in repr or output.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

from simdoctor.config.recipe import DEFAULT_RECIPE, ConfigError, Recipe, expand, find_recipe, load_recipe, placeholders

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class Secret:
    """A value that prints as *** everywhere (repr, str, f-strings); `.reveal()` is the only way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Setting:
    """One user-level setting and the names it goes by on each layer."""

    name: str
    env: str
    parse: Callable[[str], Any]
    help: str


USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


def redact_url(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with every user:password part shown as ***."""
    return USERINFO.sub(r"\1***@", text)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a port number (1-65535)")
    return value


def _path(text: str) -> Path:
    return Path(text).expanduser()


SETTINGS: tuple[Setting, ...] = (
    Setting("carla_root", "CARLA_ROOT", _path, "the CARLA 0.9.x package directory"),
    Setting("work_dir", "SIMDOCTOR_WORK_DIR", _path, "the SimLingo checkout"),
    Setting("agent_python", "SIMDOCTOR_AGENT_PYTHON", str, "the agent's Python interpreter"),
    Setting("carla_host", "SIMDOCTOR_CARLA_HOST", str, "host of a running CARLA server"),
    Setting("carla_port", "SIMDOCTOR_CARLA_PORT", _port, "RPC port of a running CARLA server"),
    Setting("hf_endpoint", "HF_ENDPOINT", lambda s: s.rstrip("/"), "Hugging Face endpoint or mirror"),
    Setting("slurm_partition", "SIMDOCTOR_SLURM_PARTITION", str, "Slurm partition (empty: the default)"),
    Setting("slurm_account", "SIMDOCTOR_SLURM_ACCOUNT", str, "Slurm account"),
    Setting("slurm_qos", "SIMDOCTOR_SLURM_QOS", str, "Slurm QOS"),
)
BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Typed settings for one command run; build with `load_settings`."""

    recipe: Recipe
    carla_root: Path
    work_dir: Path
    agent_python: str
    carla_host: str
    carla_port: int
    hf_endpoint: str
    slurm_partition: str
    slurm_account: str
    slurm_qos: str
    hf_token: Optional[Secret]
    state_dir: Path
    config_file: Path
    sources: dict[str, str]

    def source(self, name: str) -> str:
        return self.sources.get(name, "recipe")

    def is_default(self, name: str) -> bool:
        return self.source(name) == "recipe"


def config_dir() -> Path:
    """The platform's per-user config dir (~/.config/simdoctor on Linux), by typer's get_app_dir rules, without
    importing typer: a plain `check` never imports it (simdoctor.entry)."""
    if sys.platform.startswith("win"):
        appdata = os.environ.get("APPDATA")
        return Path(os.path.expanduser("~") if appdata is None else appdata, "simdoctor")
    if sys.platform == "darwin":
        return Path(os.path.expanduser("~/Library/Application Support"), "simdoctor")
    return Path(os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")), "simdoctor")


def config_path(env: dict[str, str]) -> Path:
    return Path(env["SIMDOCTOR_CONFIG"]).expanduser() if env.get("SIMDOCTOR_CONFIG") else config_dir() / "config.toml"


def state_dir(env: dict[str, str]) -> Path:
    """Where simdoctor records what it started: $SIMDOCTOR_STATE_DIR, else $XDG_STATE_HOME/simdoctor."""
    if env.get("SIMDOCTOR_STATE_DIR"):
        return Path(env["SIMDOCTOR_STATE_DIR"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "simdoctor"


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    allowed = {*BY_NAME, "recipe"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
        )
    return data


def with_config_agent_python(settings: Settings) -> Settings:
    """The settings with the config file's agent_python, when the file now names one and no flag or environment
    variable chose another (`setup` writes it there after making a conda env outside the candidates)."""
    if not settings.is_default("agent_python"):
        return settings
    value = _read_config(settings.config_file).get("agent_python")
    if not value:
        return settings
    source = f"config {settings.config_file}"
    return replace(settings, agent_python=str(value), sources={**settings.sources, "agent_python": source})


def _hf_token(env: dict[str, str]) -> Optional[Secret]:
    """HF_TOKEN, else the file huggingface_hub's `hf auth login` writes."""
    if env.get("HF_TOKEN"):
        return Secret(env["HF_TOKEN"].strip())
    if env.get("HF_TOKEN_PATH"):
        path = Path(env["HF_TOKEN_PATH"]).expanduser()
    else:
        cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
        hf_home = env.get("HF_HOME") or str(Path(cache) / "huggingface")
        path = Path(hf_home).expanduser() / "token"
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Secret(token) if token else None


def load_settings(
    flags: Optional[dict[str, Any]] = None,
    recipe: Optional[str] = None,
    env: Optional[dict[str, str]] = None,
) -> Settings:
    """Resolve every setting by precedence and expand the recipe's placeholders with the result."""
    env = dict(os.environ if env is None else env)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    cfg_path = config_path(env)
    config = _read_config(cfg_path)

    recipe_name = recipe or env.get("SIMDOCTOR_RECIPE") or config.get("recipe") or DEFAULT_RECIPE
    raw = load_recipe(find_recipe(str(recipe_name), [config_dir() / "recipes"]))
    home = env.get("HOME") or str(Path.home())

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        layers = (
            ("flag", flags.get(setting.name)),
            (f"environment {setting.env}", env.get(setting.env) or None),
            (f"config {cfg_path}", config.get(setting.name)),
        )
        source, value = next(((s, v) for s, v in layers if v is not None), ("recipe", None))
        if value is None:
            value = getattr(raw.defaults, setting.name)
            if isinstance(value, str):
                value = placeholders(value, {"home": home}, f"defaults.{setting.name}")
        try:
            values[setting.name] = setting.parse(str(value)) if isinstance(value, (str, int)) else value
        except ValueError as exc:
            raise ConfigError(f"{setting.name} from {source}: {exc}") from None
        sources[setting.name] = source

    expanded = expand(raw, {"home": home, "carla_root": str(values["carla_root"]), "work_dir": str(values["work_dir"])})
    return Settings(
        recipe=expanded,
        hf_token=_hf_token(env),
        state_dir=state_dir(env),
        config_file=cfg_path,
        sources=sources,
        **values,
    )
