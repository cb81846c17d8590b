"""Bad input meets one clear line, never an internal error (issue 13, items 9-12): the real command in a
subprocess, as a user would type it, with what a clumsy user or a hostile folder gives it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import builders
import pytest
from test_cli import simdoctor

from simdoctor.config.recipe import DEFAULT_RECIPE, find_recipe

ROUTES = [
    {"id": "1711", "town": "Town12", "type": "ParkingCutIn"},
    {"id": "1773", "town": "Town12", "type": "Accident"},
]


def strict(text: str):
    """JSON as the standard says: NaN or Infinity in it is an error."""

    def refuse(name: str):
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def one_line(done, code: int, says: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert says in done.stderr, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.fixture
def recipe_with(tmp_path: Path):
    """A copy of the default recipe with one line replaced."""
    text = find_recipe(DEFAULT_RECIPE, []).read_text(encoding="utf-8")

    def make(old: str, new: str) -> Path:
        assert old in text
        path = tmp_path / f"recipe-{len(list(tmp_path.glob('recipe-*')))}.toml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path

    return make


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"{work_dir}/x{"', "recipe value recipe.run.out_dir '{work_dir}/x{': Single '{' encountered"),
        ('"{work_dir}/{0}"', "recipe value recipe.run.out_dir uses unknown placeholder {0} in '{work_dir}/{0}'"),
        ('"{work_dir.real}"', "uses unknown placeholder {work_dir.real}"),
    ],
)
def test_a_recipe_string_with_braces_is_a_usage_error(home, recipe_with, value: str, says: str) -> None:
    recipe = recipe_with('out_dir = "{work_dir}/eval_results/simdoctor"', f"out_dir = {value}")
    one_line(simdoctor("env", "--recipe", str(recipe)), 2, says)


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("glxinfo = { debian", "glxinf = { debian",
         "package 'glxinfo' (which simdoctor's checks install) is not in [platform.packages] (it has vulkan_loader, "
         "glxinf, libomp,"),
        ('host_packages = ["sdl2"', 'host_packages = ["sdl"',
         "package 'sdl' (named in carla.host_packages) is not in [platform.packages]"),
        ('font_package = "fonts_liberation"', 'font_package = "fonts_liberaton"',
         "package 'fonts_liberaton' (viz.font_package) is not in [platform.packages]"),
        ("sdl2 = { debian =", "sdl2 = { debain =",
         "platform.packages.sdl2 names family 'debain', which is no [[platform.families]] name "
         "(debian, centos7, rhel)"),
        ('sdl2 = { debian = "libsdl2-2.0-0", rhel = "SDL2", ', 'sdl2 = { debian = "libsdl2-2.0-0", ',
         "platform.packages.sdl2 has no name for family 'rhel'"),
        ('text = "Install and start Docker."', 'text = "Install {dockr} and start Docker."',
         "recipe value platform.guides.docker.debian.text uses unknown placeholder {dockr} in "
         "'Install {dockr} and start Docker.' (known: {major}; write {{ and }} for literal braces)"),
        ('text = "Install and start Docker."', 'text = "Install {branch} and start Docker."',
         "platform.guides.docker.debian.text uses unknown placeholder {branch}"),  # the driver guide's only
        ("libnvidia-gl-{branch}", "libnvidia-gl-{branch",
         "recipe value platform.guides.nvidia_graphics.ubuntu.commands[0] "
         "'sudo apt-get install -y libnvidia-gl-{branch'"),
        ("[platform.guides.docker.debian]", "[platform.guides.dockr.debian]",
         "platform.guides.dockr is no guide simdoctor prints (they are nvidia_driver, nvidia_graphics, docker, "
         "container_toolkit)"),
        ("[platform.guides.docker.debian]", "[platform.guides.docker.debain]",
         "platform.guides.docker.debain: 'debain' is neither a [[platform.families]] name nor an ID one of them lists"),
    ],
    ids=["checks-package", "host-package", "font-package", "family-misspelt", "family-missing", "guide-placeholder",
         "guide-other-placeholder", "guide-stray-brace", "guide-topic", "guide-distribution"],
)  # fmt: skip
def test_a_recipe_naming_packages_or_guides_wrong_is_refused_when_read(home, recipe_with, old, new, says) -> None:
    """Names the checks look up and texts they fill are checked when the recipe is read: one line naming the file
    and the key, exit 2, not a KeyError once a check on some machine reaches for them."""
    recipe = recipe_with(old, new)
    done = simdoctor("check", "--recipe", str(recipe))
    one_line(done, 2, f"simdoctor: recipe {recipe}: ")
    assert says in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_recipe_lock_file_cannot_point_outside_the_folder(home, recipe_with, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    recipe = recipe_with('lock_file = "run.lock"', f'lock_file = "{victim}"')
    one_line(simdoctor("env", "--recipe", str(recipe)), 2, "run.lock_file")
    assert "must be a plain name inside --out" in simdoctor("env", "--recipe", str(recipe)).stderr
    assert victim.read_text() == "precious\n"


def test_report_on_a_folder_that_is_not_there(home, tmp_path: Path) -> None:
    one_line(simdoctor("report", str(tmp_path / "nowhere")), 2, f"{tmp_path}/nowhere: no such folder")
    as_json = simdoctor("report", str(tmp_path / "nowhere"), "--json")
    assert as_json.returncode == 2
    assert strict(as_json.stdout) == {"status": "error", "exit_code": 2, "error": f"{tmp_path}/nowhere: no such folder"}


def run_folder(home: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A run folder as `simdoctor run` leaves it: route files, run.json, one results file per route."""
    from simdoctor.config.settings import load_settings
    from simdoctor.run import routes
    from simdoctor.run.outdir import Layout

    settings = load_settings(env=dict(os.environ))
    layout = Layout(tmp_path / "out", settings.recipe.run)
    routes.write_route_files(
        routes.read_routes(builders.routes_xml(tmp_path / "routes.xml", ROUTES)), layout.routes_dir
    )
    for spec in ROUTES:
        builders.results_file(layout.results_file(spec["id"]), spec["id"], spec["town"], spec["type"])
    return layout.root, [str(layout.results_file(spec["id"])) for spec in ROUTES]


def test_a_results_file_nested_deep_or_with_nan_scores(home, tmp_path: Path, agent_python: str) -> None:
    """One route's results JSON is nested 100k deep, the other's score is NaN: the report counts both as no
    record (with why), its JSON and merged.json stay JSON, and a resumed run plans both routes again."""
    out, (deep, nan) = run_folder(home, tmp_path)
    Path(deep).write_text("[" * 100_000 + "]" * 100_000)
    Path(nan).write_text(Path(nan).read_text().replace('"score_composed": 100.0', '"score_composed": NaN'))
    assert "NaN" in Path(nan).read_text()
    done = simdoctor("report", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = strict(done.stdout)
    assert report["missing"] == ["1711", "1773"] and report["driving_score"] == 0
    rows = {r["route_id"]: r for r in report["rows"]}
    assert "nested too deeply" in rows["1711"]["reason"] and "NaN is not a JSON number" in rows["1773"]["reason"]
    assert strict((out / "merged.json").read_text())["eval num"] == 0
    work = builders.bench2drive_standin(tmp_path / "simlingo")
    plan = simdoctor("run", "--dry-run", "--json", "--gpus", "none", "--routes", str(tmp_path / "routes.xml"),
                     "--out", str(out), "--work-dir", str(work), "--agent-python", agent_python)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert [t["finished"] for t in strict(plan.stdout)["plan"]["tasks"]] == [False, False]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--route-timeout", "nan"), "--route-timeout nan: give a number of seconds > 0"),
        (("--route-timeout", "inf"), "--route-timeout inf: give a number of seconds > 0"),
        (("--route-ids", ",,,"), "--route-ids ',,,' names no route"),
        (("--workers-per-gpu", "3000"), "--workers-per-gpu '3000': give a number from 1 to 16"),
        (("--out", "FILE"), "is a file, not a folder"),
    ],
)
def test_numbers_and_folders_a_run_refuses(home, tmp_path: Path, agent_python: str, args, says: str) -> None:
    source = builders.routes_xml(tmp_path / "routes.xml", ROUTES)
    work = builders.bench2drive_standin(tmp_path / "simlingo")
    (tmp_path / "file").write_text("not a folder\n")
    args = tuple(str(tmp_path / "file") if a == "FILE" else a for a in args)
    common = ("--gpus", "none", "--routes", str(source), "--work-dir", str(work), "--agent-python", agent_python)
    out = () if "--out" in args else ("--out", str(tmp_path / "out"))
    one_line(simdoctor("run", "--dry-run", *common, *out, *args), 2, says)
    assert (tmp_path / "file").read_text() == "not a folder\n"


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("--partition", "gpu\n#SBATCH --qos=high"), {}, "--partition 'gpu\\n#SBATCH --qos=high': a #SBATCH value"),
        (("--mem", "40G\nrm -rf ~"), {}, "--mem '40G\\nrm -rf ~': a #SBATCH value"),
        (("--time", "10\n"), {}, "--time '10\\n': a #SBATCH value"),
        (("--qos", "a b"), {}, "--qos 'a b': a #SBATCH value"),
        ((), {"SIMDOCTOR_SLURM_ACCOUNT": "lab\nhostname"}, "--account 'lab\\nhostname': a #SBATCH value"),
    ],
)
def test_sbatch_values_with_line_breaks_are_refused(home, tmp_path: Path, args, env, says) -> None:
    source = builders.routes_xml(tmp_path / "routes.xml", ROUTES)
    done = simdoctor("run", "--executor", "slurm", "--dry-run", "--routes", str(source), "--out", str(tmp_path / "out"),
                     "--agent-python", sys.executable, *args, env={**os.environ, **env})  # fmt: skip
    one_line(done, 2, says)


@pytest.mark.parametrize("name", ["carla 0.9.15", "carla;touch PWNED", "carla$(id)"])
def test_a_carla_root_the_evaluator_shell_would_split(home, tmp_path: Path, agent_python: str, name: str) -> None:
    from simdoctor.config.settings import load_settings

    root = builders.carla_root(tmp_path / name, load_settings(env=dict(os.environ)).recipe)
    env = {**os.environ, "CARLA_ROOT": str(root)}
    check = simdoctor("check", "--only", "carla.root", "--json", env=env)
    (finding,) = [r for r in strict(check.stdout)["results"] if r["id"] == "carla.root"]
    assert check.returncode == 1 and finding["status"] == "fail", finding
    assert "the Bench2Drive evaluator starts CARLA through a shell with the path unquoted" in finding["summary"]
    assert finding["fix"]["commands"][0].startswith("ln -sfn '")
    source = builders.routes_xml(tmp_path / "routes.xml", ROUTES)
    work = builders.bench2drive_standin(tmp_path / "simlingo")
    done = simdoctor("run", "--dry-run", "--gpus", "none", "--routes", str(source), "--out", str(tmp_path / "out"),
                     "--work-dir", str(work), "--agent-python", agent_python, env=env)  # fmt: skip
    one_line(done, 2, "the Bench2Drive evaluator starts CARLA through a shell")
    assert not (tmp_path / "PWNED").exists()
