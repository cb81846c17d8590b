"""Build the on-disk shapes the checks look at: a CARLA package, a SimLingo checkout, weights."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from simdoctor.recipe import Recipe

BENCH2DRIVE_TOWNS = ("Town01", "Town02", "Town03", "Town04", "Town05", "Town06", "Town07",
                     "Town10HD", "Town11", "Town12", "Town13", "Town15")  # fmt: skip
BASE_TOWNS = ("Town01", "Town02", "Town03", "Town04", "Town05", "Town10HD")


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# The packaged launcher, verbatim (carla#4193; the same text in CARLA's Package.sh output): it runs
# the shipping binary as its child, it does not exec it.
LAUNCHER = """#!/bin/sh
UE4_TRUE_SCRIPT_NAME=$(echo \\"$0\\" | xargs readlink -f)
UE4_PROJECT_ROOT=$(dirname "$UE4_TRUE_SCRIPT_NAME")
chmod +x "$UE4_PROJECT_ROOT/CarlaUE4/Binaries/Linux/CarlaUE4-Linux-Shipping"
"$UE4_PROJECT_ROOT/CarlaUE4/Binaries/Linux/CarlaUE4-Linux-Shipping" CarlaUE4 "$@"
"""


def carla_root(
    root: Path,
    recipe: Recipe,
    version: Optional[str] = "0.9.15",
    towns: Iterable[str] = BENCH2DRIVE_TOWNS,
    executable: bool = True,
    pending: Iterable[str] = (),
) -> Path:
    """A packaged-CARLA layout as the release archive unpacks it (no top-level folder, carla.md §5)."""
    c = recipe.carla
    _executable(root / c.launcher, LAUNCHER)
    _executable(root / c.binary, "#!/bin/sh\nexit 0\n")
    if not executable:
        (root / c.binary).chmod(0o644)
    if version is not None:
        (root / c.version_file).write_text(version + "\n")
    maps = root / c.maps_dir
    maps.mkdir(parents=True, exist_ok=True)
    for town in towns:
        (maps / f"{town}.xodr").write_text("<OpenDRIVE/>\n")
    (root / c.import_dir).mkdir(exist_ok=True)
    for name in pending:
        (root / c.import_dir / name).write_bytes(b"\x1f\x8b")
    nav = root / "PythonAPI" / "carla" / "agents" / "navigation"
    nav.mkdir(parents=True, exist_ok=True)
    (nav.parent / "__init__.py").write_text("")
    (nav / "__init__.py").write_text("")
    return root


def standin_server(root: Path, recipe: Recipe, python: str, code_dir: Path, behaviour: Optional[dict] = None) -> Path:
    """Make the package's shipping binary the stand-in server (tests/standins/carla_server.py), run by
    `python` with simdoctor and the stand-ins importable from `code_dir`; `behaviour` is its standin.json."""
    binary = root / recipe.carla.binary
    _executable(
        binary,
        f"#!{python}\nimport sys\nsys.path.insert(0, {str(code_dir)!r})\n"
        "from tests.standins.carla_server import main\nmain()\n",
    )
    set_behaviour(root, behaviour or {})
    return binary


def set_behaviour(root: Path, behaviour: dict) -> None:
    (root / "standin.json").write_text(json.dumps(behaviour))


def simlingo_checkout(
    work_dir: Path,
    srunner: bool = True,
    leaderboard: bool = True,
    agent: bool = True,
    towns: Iterable[str] = ("Town12", "Town13"),
) -> Path:
    """The parts of a RenzKa/simlingo checkout the evaluator imports and reads."""
    if srunner:
        p = work_dir / "Bench2Drive" / "scenario_runner" / "srunner" / "__init__.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    if leaderboard:
        p = work_dir / "Bench2Drive" / "leaderboard" / "leaderboard" / "__init__.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    if agent:
        p = work_dir / "team_code" / "agent_simlingo.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("def get_entry_point():\n    return 'LingoAgent'\n")
    routes = work_dir / "leaderboard" / "data" / "bench2drive220.xml"
    routes.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f'  <route id="{i}" town="{t}">\n  </route>\n' for i, t in enumerate(towns))
    routes.write_text(f'<?xml version="1.0"?>\n<routes>\n{body}</routes>\n')
    return work_dir
