"""Build the on-disk shapes the checks look at: a CARLA package, a SimLingo checkout, weights."""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Optional

from simdoctor.config.recipe import Recipe

BENCH2DRIVE_TOWNS = ("Town01", "Town02", "Town03", "Town04", "Town05", "Town06", "Town07",
                     "Town10HD", "Town11", "Town12", "Town13", "Town15")  # fmt: skip
BASE_TOWNS = ("Town01", "Town02", "Town03", "Town04", "Town05", "Town10HD")
STANDINS = Path(__file__).resolve().parent / "standins"


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


def bench2drive_standin(work_dir: Path) -> Path:
    """A SimLingo checkout holding the stand-in Bench2Drive evaluator and leaderboard agent base class
    (tests/standins/bench2drive) and the stand-in SimLingo agent, where the recipe's paths expect them."""
    shutil.copytree(STANDINS / "bench2drive", work_dir / "Bench2Drive", dirs_exist_ok=True)
    agent = work_dir / "team_code" / "agent_simlingo.py"
    agent.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STANDINS / "agent_simlingo.py", agent)
    return work_dir


def standin_route(
    route_id: str, mode: str = "perfect", town: str = "Town01", kind: str = "Accident", **attrs: str
) -> dict:
    """A route spec for routes_xml that the stand-in evaluator drives as `mode` (tests/standins/bench2drive:
    perfect, completed, sim_crash, die, ...), with further `standin_*` attributes (simulated and wall seconds,
    failing attempts)."""
    return {"id": route_id, "town": town, "type": kind, "attrs": {"standin": mode, **attrs}}


def routes_xml(path: Path, routes: Iterable[dict], declaration: bool = False) -> Path:
    """A routes file in bench2drive220.xml's layout (reference §2.2): `<routes><route ...>` on the first
    line, then each route's waypoints, one scenario with its trigger point, and two weathers. Each dict
    has id, town, type, and optionally `attrs` (extra <route> attributes) and `points` (waypoint count)."""
    parts = []
    for i, r in enumerate(routes):
        attrs = "".join(f' {k}="{v}"' for k, v in {"id": r["id"], "town": r["town"], **r.get("attrs", {})}.items())
        points = "".join(
            f'            <position x="{-497.6 + 0.1 * k:.1f}" y="{3672.9 - 2 * k:.1f}" z="364.9" />\n'
            for k in range(r.get("points", 3))
        )
        parts.append(
            f"{'' if i == 0 else '      '}<route{attrs}>\n"
            f"         <waypoints>\n{points}         </waypoints>\n"
            f"         <scenarios>\n"
            f'            <scenario name="{r["type"]}_1" type="{r["type"]}">\n'
            f'               <direction value="left" />\n'
            f'               <trigger_point x="-497.7" y="3659.9" yaw="-90.2" z="364.7" />\n'
            f"            </scenario>\n"
            f"         </scenarios>\n"
            f"         <weathers>\n"
            f'            <weather cloudiness="100.0" route_percentage="0" sun_altitude_angle="45.0" />\n'
            f'            <weather cloudiness="5.0" route_percentage="100" sun_altitude_angle="15.0" />\n'
            f"         </weathers>\n"
            f"      </route>\n"
        )
    head = '<?xml version="1.0" encoding="utf-8"?>\n' if declaration else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}<routes>{''.join(parts)}      </routes>")
    return path


def _statistics_manager():
    """The stand-in statistics_manager.py (standard library only), loaded from its file."""
    import importlib.util

    path = STANDINS / "bench2drive" / "leaderboard" / "leaderboard" / "utils" / "statistics_manager.py"
    spec = importlib.util.spec_from_file_location("standin_statistics_manager", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results_file(
    path: Path,
    route_id: str,
    town: str,
    scenario: str,
    completion: float = 100.0,
    infractions: Optional[dict] = None,
    failure: str = "",
    length: float = 1000.0,
    game: float = 60.0,
    system: float = 600.0,
    crashed: bool = False,
) -> Path:
    """One evaluator results file (reference §2.3) for a one-route run, as the evaluator leaves it:
    global statistics when the run finished, none when it stopped after a crash."""
    sm = _statistics_manager()
    stats = sm.Stats(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    name = f"RouteScenario_{route_id}_rep0"
    stats.progress = [0, 1]
    stats.create_route_data(name, f"{scenario}_1", None, f"{name}_{town}_{scenario}_1_None_05_02_04_08_01", town, 0)
    stats.sensors = ["carla_camera", "carla_imu", "carla_gnss", "carla_speedometer"]
    stats.entry_status = "Crashed" if crashed else "Started"
    stats.compute_route_statistics(0, length, game, system, completion, infractions or {}, failure)
    stats.progress = [1, 1]
    if crashed:
        stats.write()
    else:
        stats.compute_global_statistics(1)
        stats.validate_and_write(False)
    return path


IMAGE_USER = ("carla", 1000)  # Release.Dockerfile: `RUN useradd -m carla`, `USER carla`
IMAGE_PYTHON = "/usr/bin/python3.11"  # Debian's interpreter, copied in with what it loads
IMAGE_TOOLS = ("/bin/sh", "/usr/bin/xargs", "/usr/bin/readlink", "/usr/bin/dirname", "/bin/chmod")  # CarlaUE4.sh
STDLIB_SKIP = ("test", "idlelib", "tkinter", "ensurepip", "lib2to3", "pydoc_data", "turtledemo", "__pycache__",
               "site-packages", "dist-packages", "config-3.11-x86_64-linux-gnu")  # fmt: skip


def _shared_libs(binaries: Iterable[Path]) -> set[Path]:
    """What the dynamic linker loads for these binaries (ldd), the loader itself included."""
    found: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
            if path.startswith("/"):
                found.add(Path(path))
    return found


def standin_image_tar(dest: Path, recipe: Recipe, code_dir: Path) -> Path:
    """A tar of a root filesystem standing in for carlasim/carla:0.9.15: the packaged layout in
    /home/carla (owned by user carla, uid 1000) with the stand-in server as its shipping binary,
    Debian's Python, its stdlib and the msgpack package (pure Python) to run it, and /bin/sh plus the tools
    CarlaUE4.sh calls."""
    import msgpack  # here, not at the top: the device scripts import this module where msgpack may be missing

    c = recipe.carla
    home = PurePosixPath(c.docker_carla_root)
    stdlib = Path("/usr/lib/python3.11")
    dynload = sorted((stdlib / "lib-dynload").glob("*.so"))
    files = {
        Path(IMAGE_PYTHON),
        *map(Path, IMAGE_TOOLS),
        *_shared_libs([Path(IMAGE_PYTHON), *map(Path, IMAGE_TOOLS), *dynload]),
    }
    tar_path = dest / "rootfs.tar"
    user, uid = IMAGE_USER

    def add_text(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644, owner: int = 0) -> None:
        data = text.encode()
        info = tarfile.TarInfo(name.lstrip("/"))
        info.size, info.mode, info.uid, info.gid = len(data), mode, owner, owner
        tar.addfile(info, io.BytesIO(data))

    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755, owner: int = 0) -> None:
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, owner, owner
        tar.addfile(info)

    def skip(info: tarfile.TarInfo) -> Optional[tarfile.TarInfo]:
        parts = PurePosixPath(info.name).parts
        return None if any(p in STDLIB_SKIP for p in parts) or info.name.endswith(".pyc") else info

    def pure_python(info: tarfile.TarInfo) -> Optional[tarfile.TarInfo]:
        """msgpack without its C extension (the image holds only the libraries its Python loads): the fallback runs."""
        return None if info.name.endswith(".so") else skip(info)

    with tarfile.open(tar_path, "w") as tar:
        for d in ("tmp",):
            add_dir(tar, d, 0o1777)
        add_dir(tar, str(home), owner=uid)
        for path in sorted(files):
            tar.add(str(path.resolve()), arcname=str(path).lstrip("/"))
            if path.is_symlink():  # also keep the name the binaries ask for, e.g. libc.so.6
                tar.add(str(path.resolve()), arcname=str(path.resolve()).lstrip("/"))
        tar.add("/usr/bin/python3.11", arcname="usr/bin/python3")
        tar.add(str(stdlib), arcname=str(stdlib).lstrip("/"), filter=skip)
        tar.add(str(code_dir / "simdoctor"), arcname="opt/standin/simdoctor", filter=skip)
        tar.add(str(code_dir / "tests" / "standins"), arcname="opt/standin/tests/standins", filter=skip)
        tar.add(str(Path(msgpack.__file__).parent), arcname="opt/standin/msgpack", filter=pure_python)
        add_text(tar, "etc/passwd", f"root:x:0:0:root:/root:/bin/sh\n{user}:x:{uid}:{uid}::{home}:/bin/sh\n")
        add_text(tar, "etc/group", f"root:x:0:\n{user}:x:{uid}:\n")
        add_text(tar, str(home / c.launcher), LAUNCHER, 0o755, uid)
        add_text(
            tar,
            str(home / c.binary),
            "#!/usr/bin/python3\nimport sys\nsys.path.insert(0, '/opt/standin')\n"
            "from tests.standins.carla_server import main\nmain()\n",
            0o755,
            uid,
        )
        add_text(tar, str(home / c.version_file), f"{c.version}\n", 0o644, uid)
    return tar_path


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


# environment.yaml as SimLingo writes it (simlingo@743b243), its pip list cut to one small pin.
ENVIRONMENT_YAML = """name: simlingo
channels:
  - conda-forge
  - defaults
dependencies:
  - pip=23.3.1=py38h06a4308_0
  - python=3.8.18=h955ad1f_0
  - pip:
    - six==1.16.0
"""


def _git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def simlingo_remote(dest: Path, towns: Iterable[str] = BENCH2DRIVE_TOWNS) -> tuple[str, str]:
    """A bare git repository standing in for github.com/RenzKa/simlingo: the checkout's layout (the stand-in
    evaluator and agent, the routes, environment.yaml, its .gitignore of outputs/ and pretrained/) in a
    commit, then a later commit on top, so that only pinning gets the first. Returns its URL and that commit."""
    src = dest / "src"
    simlingo_checkout(src, towns=towns)
    bench2drive_standin(src)
    (src / "environment.yaml").write_text(ENVIRONMENT_YAML)
    (src / ".gitignore").write_text("outputs/\npretrained/\n")
    _git("init", "-q", "-b", "main", ".", cwd=src)
    _git("add", "-A", cwd=src)
    _git("commit", "-q", "-m", "carla eval, agent files and model", cwd=src)
    pinned = _git("rev-parse", "HEAD", cwd=src)
    (src / "README.md").write_text("later upstream work\n")
    _git("add", "-A", cwd=src)
    _git("commit", "-q", "-m", "later", cwd=src)
    bare = dest / "simlingo.git"
    _git("clone", "-q", "--bare", str(src), str(bare), cwd=dest)
    shutil.rmtree(src)
    return f"file://{bare}", pinned


def pointed_recipe(recipe_text: str, replacements: dict[str, str], pins: dict[str, str]) -> str:
    """The bundled recipe with its URLs and tool places pointed at the test's stand-ins (line by line)."""
    text = recipe_text
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    block = "".join(f'{k} = "{v}"\n' for k, v in pins.items())
    return re.sub(r"(?ms)^\[agent\.packages\]\n.*?(?=^\[agent\.torch_index\])", f"[agent.packages]\n{block}\n", text)


def _distribution_key(name: str) -> str:
    """`Shapely-1.7.1.dist-info`, `six.py`, `py_trees` -> `shapely`, `six`, `py_trees`."""
    return name.removesuffix(".py").split("-", 1)[0].lower().replace(".", "_")


def venv_without(dest: Path, venv: str, *dists: str) -> str:
    """A venv of `venv`'s base interpreter seeing every package of `venv` (linked, not copied) but the
    distributions named (pip names): a real interpreter in which those are really missing, metadata and
    all. Returns its python."""
    home = next(line.split("=", 1)[1].strip() for line in (Path(venv) / "pyvenv.cfg").read_text().splitlines()
                if line.startswith("home"))  # fmt: skip
    version = next(p.name for p in (Path(venv) / "lib").glob("python3*"))
    subprocess.run([f"{home}/{version}", "-m", "venv", "--without-pip", str(dest)], check=True)
    source, target = Path(venv) / "lib" / version / "site-packages", dest / "lib" / version / "site-packages"
    dropped = {d.lower().replace("-", "_") for d in dists}
    for entry in source.iterdir():
        if _distribution_key(entry.name) not in dropped and not (target / entry.name).exists():
            (target / entry.name).symlink_to(entry)
    return str(dest / "bin" / "python")


def base_model(
    home: Path, work_dir: Path, recipe: Recipe, commit: str = "1f0e2d3c4b5a69788796a5b4c3d2e1f00112233"
) -> Path:
    """SimLingo's base model as `setup` leaves it: the recipe's files in pretrained/InternVL2-1B/ with a download
    manifest (sha256 for the weights, git sha1 for the rest, as the Hub gives them), linked into the Hugging
    Face cache of `home` by simdoctor.download.hfcache (the agent resolves the model by name from there), and the
    released Hydra config naming it by hub name (`variant:` twice, as in outputs/simlingo/.hydra/config.yaml).
    Returns the cache."""
    import hashlib

    from simdoctor.download import hfcache, manifest

    b = recipe.base_model
    local = work_dir / "pretrained" / "InternVL2-1B"
    records = {}
    for rel in b.required:
        data = f"{rel} of {b.repo}\n".encode()
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
        st = (local / rel).stat()
        lfs = rel.endswith(".safetensors")
        digest = hashlib.sha256(data) if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data)
        records[rel] = manifest.FileRecord(
            st.st_size, st.st_mtime_ns, **{"sha256" if lfs else "git_sha1": digest.hexdigest()}
        )
    manifest.write(local, manifest.Manifest(f"hf:model/{b.repo}@{commit}", records))
    config = work_dir / "outputs" / "simlingo" / ".hydra" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"model:\n  vision_model:\n    variant: {b.repo}\n  language_model:\n    variant: {b.repo}\n")
    cache = home / ".cache" / "huggingface" / "hub"
    hfcache.link(local, cache, b.revision)
    return cache


def standin_recipe(hub, build: Path, url: str, commit: str, pins: dict[str, str], extra: dict[str, str]) -> str:
    """The bundled recipe's text pointed at the stand-ins: CARLA's archives and the two Hub repos (weights at the
    commit the recipe pins) served by `hub`, SimLingo's remote at `url` with `commit` pinned, torch from PyPI
    (the only index reachable here), `pins` as [agent.packages], and `extra` line replacements."""
    from standins.hf_hub import Pattern

    from simdoctor.config.recipe import bundled_recipe_dirs, load_recipe

    path = next(p for d in bundled_recipe_dirs() if (p := d / "simlingo-bench2drive.toml").is_file())
    recipe = load_recipe(path)
    carla_tar, maps_tar = carla_archives(build, recipe)
    hub.add_repo(
        recipe.weights.repo,
        {recipe.weights.checkpoint: Pattern(3 << 20, seed=5), recipe.weights.config: b"model:\n  lora: true\n"},
        commit=recipe.weights.revision,
    )
    base = {name: f"{name} of InternVL2-1B\n".encode() for name in recipe.base_model.required}
    base["model.safetensors"] = Pattern(2 << 20, seed=6)
    hub.add_repo(recipe.base_model.repo, base)
    replacements = {
        recipe.carla.url: hub.add_url(f"/Linux/{carla_tar.name}", carla_tar.read_bytes()),
        recipe.carla.additional_maps_url: hub.add_url(f"/Linux/{maps_tar.name}", maps_tar.read_bytes()),
        f'repo_url = "{recipe.agent.repo_url}"': f'repo_url = "{url}"',
        f'commit = "{recipe.agent.commit}"': f'commit = "{commit}"',
        '"12" = "https://download.pytorch.org/whl/cu121"': '"12" = "https://pypi.org/simple"',
        **extra,
    }
    return pointed_recipe(path.read_text(), replacements, pins)
