"""The CARLA package on disk: where it is, its launcher and binary, its version and its maps."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.config.settings import Settings
from simdoctor.doctor.probing import ProbeContext, probe

SHELL_SAFE = re.compile(r"[\w@%+=:,./-]", re.ASCII)  # the characters shlex.quote leaves unquoted


def carla_root_problem(carla_root: str) -> Optional[str]:
    """Why the evaluator cannot start CARLA from `carla_root`, or None: it runs `f"{CARLA_ROOT}/CarlaUE4.sh ..."`
    through a shell, unquoted (reference §1.3), so a space splits the path and ; & | $ ` ( ) run commands."""
    unsafe = sorted({c for c in carla_root if not SHELL_SAFE.fullmatch(c)})
    if not unsafe:
        return None
    return (f"CARLA_ROOT {carla_root!r} holds {' '.join(map(repr, unsafe))}: the Bench2Drive evaluator starts CARLA "
            "through a shell with the path unquoted (f\"{CARLA_ROOT}/CarlaUE4.sh ...\", shell=True), so every route "
            "would fail, and a ; or $( in it would run a command")  # fmt: skip


@dataclass(frozen=True)
class FileState:
    path: str
    exists: bool
    executable: bool


@dataclass(frozen=True)
class CarlaInstallFacts:
    setting: str  # CARLA_ROOT as configured
    setting_source: str  # flag, environment CARLA_ROOT, config ..., recipe
    root: Optional[str]  # the directory used (the setting, or one found in the usual places)
    found_by_search: bool
    searched: list[str]
    launcher: Optional[FileState]
    binary: Optional[FileState]
    version: Optional[str]
    maps: list[str]  # towns with an OpenDRIVE file
    import_pending: list[str]  # archives waiting in Import/
    routes_file: str
    routes_towns: Optional[list[str]]  # None when the routes file is not there


def _file_state(path: Path) -> FileState:
    return FileState(str(path), path.is_file(), path.is_file() and os.access(path, os.X_OK))


def locate_root(settings: Settings) -> tuple[Optional[Path], bool, list[str]]:
    """The configured CARLA_ROOT; when it is only the recipe default, also the usual places."""
    carla = settings.recipe.carla
    configured = settings.carla_root
    if not settings.is_default("carla_root") or (configured / carla.launcher).is_file():
        return (configured if configured.exists() else None), False, [str(configured)]
    searched = [str(configured)]
    for candidate in map(Path, carla.search):
        searched.append(str(candidate))
        if (candidate / carla.launcher).is_file():
            return candidate, candidate != configured, list(dict.fromkeys(searched))
    return None, False, list(dict.fromkeys(searched))


def route_towns(path: Path) -> Optional[list[str]]:
    """Towns named by <route town="..."> in a leaderboard routes file (a regex: the file can be MBs)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return sorted(set(re.findall(r"<route\b[^>]*\btown=\"([^\"]+)\"", text)))


@probe("carla", CarlaInstallFacts, timeout=2.0, description="CARLA_ROOT, launcher, binary, VERSION, maps")
def probe_carla(ctx: ProbeContext) -> CarlaInstallFacts:
    s = ctx.settings
    carla = s.recipe.carla
    root, found_by_search, searched = locate_root(s)
    launcher = binary = version = None
    maps: list[str] = []
    pending: list[str] = []
    if root is not None:
        launcher = _file_state(root / carla.launcher)
        binary = _file_state(root / carla.binary)
        try:
            version = (root / carla.version_file).read_text(errors="replace").strip() or None
        except OSError:
            version = None
        maps_dir = root / carla.maps_dir
        if maps_dir.is_dir():
            maps = sorted(p.stem for p in maps_dir.glob("*.xodr"))
        import_dir = root / carla.import_dir
        if import_dir.is_dir():
            pending = sorted(p.name for p in import_dir.iterdir() if p.name.endswith((".tar.gz", ".tgz")))
    routes = Path(s.recipe.routes.file)
    return CarlaInstallFacts(
        setting=str(s.carla_root),
        setting_source=s.source("carla_root"),
        root=str(root) if root else None,
        found_by_search=found_by_search,
        searched=searched,
        launcher=launcher,
        binary=binary,
        version=version,
        maps=maps,
        import_pending=pending,
        routes_file=str(routes),
        routes_towns=route_towns(routes),
    )
