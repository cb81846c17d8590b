"""Build the on-disk shapes the checks look at: a CARLA package, a SimLingo checkout, weights."""

from __future__ import annotations

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
    _executable(
        root / c.launcher,
        '#!/bin/sh\nexec "$(dirname "$0")/CarlaUE4/Binaries/Linux/CarlaUE4-Linux-Shipping" CarlaUE4 "$@"\n',
    )
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


# Stand-in for CARLA 0.9.15's ImportAssets.sh (its contract, per carla Util/ImportAssets.sh): run from
# the package root, it unpacks every *.tar.gz found under Import/ into the current directory, keeping
# newer files, and leaves the archives where they are.
IMPORT_ASSETS = """#!/bin/bash
find Import/ -type f -name '*.tar.gz' -print0 | while IFS= read -r -d '' archive; do
  tar --keep-newer-files -xf "$archive"
done
"""


def tar_gz_of(folder: Path, out: Path) -> Path:
    """A .tar.gz of the folder's contents with no top-level directory, as CARLA packages are made."""
    import tarfile

    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return out


def carla_archives(tmp: Path, recipe: Recipe) -> tuple[Path, Path]:
    """Small CARLA_<v>.tar.gz (base towns, ImportAssets.sh) and AdditionalMaps_<v>.tar.gz (the rest)."""
    c = recipe.carla
    package = carla_root(tmp / "package", recipe, towns=BASE_TOWNS)
    _executable(package / c.import_script, IMPORT_ASSETS)
    maps = tmp / "maps"
    for town in c.additional_towns:
        path = maps / c.maps_dir / f"{town}.xodr"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<OpenDRIVE/>\n")
    return (
        tar_gz_of(package, tmp / f"CARLA_{c.version}.tar.gz"),
        tar_gz_of(maps, tmp / f"AdditionalMaps_{c.version}.tar.gz"),
    )
