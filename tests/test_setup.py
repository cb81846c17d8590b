"""`simdoctor setup` on a machine state built by the test: CARLA and AdditionalMaps archives and the
two Hub repos served on loopback, a recipe pointing there, a real venv as the agent's interpreter."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import builders
import pytest
from standins.hf_hub import Hub, Pattern

from simdoctor import manifest
from simdoctor.recipe import bundled_recipe_dirs, load_recipe

RECIPE = next(p for d in bundled_recipe_dirs() if (p := d / "simlingo-bench2drive.toml").is_file())


@pytest.fixture
def machine(tmp_path: Path, hub: Hub, home: Path) -> dict[str, object]:
    recipe = load_recipe(RECIPE)
    carla_tar, maps_tar = builders.carla_archives(tmp_path / "build", recipe)
    carla_url = hub.add_url(f"/Linux/{carla_tar.name}", carla_tar.read_bytes())
    maps_url = hub.add_url(f"/Linux/{maps_tar.name}", maps_tar.read_bytes())
    text = RECIPE.read_text()
    text = text.replace(recipe.carla.url, carla_url).replace(recipe.carla.additional_maps_url, maps_url)
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(text)
    hub.add_repo(
        recipe.weights.repo,
        {recipe.weights.checkpoint: Pattern(3 << 20, seed=5), recipe.weights.config: b"model:\n  lora: true\n"},
    )
    base = {name: f"{name} of InternVL2-1B\n".encode() for name in recipe.base_model.required}
    base["model.safetensors"] = Pattern(2 << 20, seed=6)
    hub.add_repo(recipe.base_model.repo, base)
    work_dir = builders.simlingo_checkout(tmp_path / "simlingo", towns=("Town01", "Town12", "Town13"))
    return {
        "flags": [
            "--recipe",
            str(recipe_file),
            "--carla-root",
            str(tmp_path / "carla0915"),
            "--work-dir",
            str(work_dir),
        ],
        "env": {"HF_ENDPOINT": hub.endpoint},
        "carla_root": tmp_path / "carla0915",
        "work_dir": work_dir,
        "recipe": recipe,
    }


def bare_venv(tmp_path: Path, agent_python: str) -> str:
    """A Python 3.8 venv with nothing installed: the carla client is missing."""
    base = subprocess.run(
        [agent_python, "-c", "import sys; print(sys._base_executable)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "agent")], check=True)
    return str(tmp_path / "agent" / "bin" / "python")


def test_dry_run_prints_the_plan_with_every_command_and_changes_nothing(
    simdoctor, machine, hub: Hub, tmp_path: Path, agent_python: str
) -> None:
    python = bare_venv(tmp_path, agent_python)
    result = simdoctor("setup", "--dry-run", *machine["flags"], "--agent-python", python, env=machine["env"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    root, work = machine["carla_root"], machine["work_dir"]
    downloads = f"{root}.downloads"
    r = machine["recipe"]
    for line in [
        "1. carla: ",
        f"   $ simdoctor download {hub.cdn_url}/Linux/CARLA_0.9.15.tar.gz --local-dir {downloads}",
        f"   extract {downloads}/CARLA_0.9.15.tar.gz into {root} (through a temporary folder beside it, then renamed)",
        "2. maps: a fresh CARLA has no AdditionalMaps  [fixes carla.maps]",
        f"   $ simdoctor download {hub.cdn_url}/Linux/AdditionalMaps_0.9.15.tar.gz --local-dir {downloads}",
        f"   $ cd {root} && bash ImportAssets.sh",
        "3. client: ",
        f"   $ {python} -m pip install carla==0.9.15",
        f"   $ simdoctor download {r.weights.repo} --revision main --local-dir {work}/outputs",
        f"   $ simdoctor download {r.base_model.repo} --revision main --local-dir {work}/pretrained/InternVL2-1B",
        "6. env: ",
    ]:
        assert line in out, line
    assert not root.exists() and not Path(downloads).exists() and not (work / "outputs").exists()
    assert not [r for r in hub.log if r.server == "cdn" or "/resolve/" in r.path]


def test_setup_provisions_everything_and_a_second_run_does_nothing(
    simdoctor, machine, hub: Hub, agent_python: str
) -> None:
    flags = [*machine["flags"], "--agent-python", agent_python]
    first = simdoctor("setup", "--yes", *flags, env=machine["env"], timeout=300)
    out = first.stdout
    assert "setup: 5 step(s) done" in out, out + first.stderr
    root, work, r = machine["carla_root"], machine["work_dir"], machine["recipe"]
    # CARLA unpacked (no top-level folder in the archive), AdditionalMaps imported, archives gone
    assert (root / r.carla.launcher).is_file() and (root / r.carla.version_file).read_text().strip() == "0.9.15"
    assert {p.stem for p in (root / r.carla.maps_dir).glob("*.xodr")} >= {"Town01", "Town12", "Town13"}
    assert not list((root / r.carla.import_dir).iterdir())
    assert not Path(f"{root}.downloads").exists()
    assert not [p for p in root.parent.iterdir() if ".extracting-" in p.name]
    # weights and the base model downloaded and verified
    for local_dir, rel in [(work / "outputs", r.weights.checkpoint), (work / "pretrained/InternVL2-1B", "config.json")]:
        record = manifest.read(local_dir)
        assert record is not None and manifest.still_verified(local_dir / rel, record.files[rel])
    # the env file holds exactly what `simdoctor env` prints
    env_out = simdoctor("env", *machine["flags"]).stdout
    assert (Path(os.environ["SIMDOCTOR_CONFIG"]).parent / "env.sh").read_text() == env_out
    # setup ended with check: the groups it provisions pass
    titles = ["CARLA_ROOT", "CARLA version", "Maps for the routes", "SimLingo checkpoint", "Hydra config"]
    for title in [*titles, "InternVL2-1B"]:
        assert f"✓ {title}" in out, title

    before = len(hub.log)
    second = simdoctor("setup", "--yes", *flags, env=machine["env"], timeout=120)
    assert second.stdout.startswith("nothing to do: every step is already done")
    assert len(hub.log) == before  # not even a metadata call
    check = simdoctor("check", *flags, env=machine["env"])
    assert second.returncode == check.returncode


def test_only_one_step_and_usage_errors(simdoctor, machine, hub: Hub, agent_python: str) -> None:
    flags = [*machine["flags"], "--agent-python", agent_python]
    only = simdoctor("setup", "--yes", "--only", "env", *flags, env=machine["env"])
    assert "setup: 1 step(s) done" in only.stdout
    assert not machine["carla_root"].exists()
    again = simdoctor("setup", "--yes", "--only", "env", *flags, env=machine["env"])
    assert again.stdout.startswith("nothing to do: step env is already done")
    unknown = simdoctor("setup", "--only", "gpu", *flags, env=machine["env"])
    assert unknown.returncode == 2 and "unknown step 'gpu'" in unknown.stderr
    no_terminal = simdoctor("setup", *flags, env=machine["env"])
    assert no_terminal.returncode == 2 and "pass --yes" in no_terminal.stderr
