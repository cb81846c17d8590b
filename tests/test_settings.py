"""Settings precedence: flag, then environment, then the user's config file, then the recipe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simdoctor.config.recipe import ConfigError


def write_config(text: str) -> None:
    Path(os.environ["SIMDOCTOR_CONFIG"]).write_text(text)


def test_recipe_defaults_expand_home(make_settings, home):
    s = make_settings()
    assert s.carla_root == home / "software" / "carla0915"
    assert s.recipe.weights.local_dir == f"{home}/simlingo/outputs"
    assert s.recipe.agent.pythonpath[0] == f"{home}/software/carla0915/PythonAPI"
    assert s.source("carla_root") == "recipe" and s.carla_port == 2000


def test_config_file_beats_recipe(make_settings):
    write_config('carla_root = "/opt/c"\ncarla_port = 2100\n')
    s = make_settings()
    assert s.carla_root == Path("/opt/c") and s.carla_port == 2100
    assert s.source("carla_root").startswith("config ")
    assert s.recipe.agent.pythonpath[0] == "/opt/c/PythonAPI"


def test_environment_beats_config(make_settings, monkeypatch):
    write_config('carla_root = "/opt/c"\n')
    monkeypatch.setenv("CARLA_ROOT", "/env/c")
    monkeypatch.setenv("SIMDOCTOR_CARLA_PORT", "3000")
    s = make_settings()
    assert s.carla_root == Path("/env/c") and s.source("carla_root") == "environment CARLA_ROOT"
    assert s.carla_port == 3000


def test_flag_beats_environment(make_settings, monkeypatch):
    monkeypatch.setenv("CARLA_ROOT", "/env/c")
    s = make_settings(carla_root="/flag/c")
    assert s.carla_root == Path("/flag/c") and s.source("carla_root") == "flag"


def test_work_dir_moves_every_recipe_path(make_settings):
    s = make_settings(work_dir="/w")
    assert s.recipe.agent.evaluator == "/w/Bench2Drive/leaderboard/leaderboard/leaderboard_evaluator.py"
    assert s.recipe.base_model.local_dir == "/w/pretrained/InternVL2-1B"


def test_hf_token_from_env_or_token_file_is_secret(make_settings, monkeypatch, home):
    token_file = home / ".cache" / "huggingface" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text("hf_fromfile\n")
    s = make_settings()
    assert s.hf_token.reveal() == "hf_fromfile" and "hf_fromfile" not in repr(s)
    monkeypatch.setenv("HF_TOKEN", "hf_fromenv")
    s = make_settings()
    assert s.hf_token.reveal() == "hf_fromenv" and "hf_fromenv" not in f"{s} {s.hf_token}"


def test_recipe_by_path_and_by_user_dir(make_settings, tmp_path, home):
    source = Path(__file__).resolve().parents[1] / "recipes" / "simlingo-bench2drive.toml"
    custom = tmp_path / "other.toml"
    custom.write_text(source.read_text().replace('name = "simlingo-bench2drive"', 'name = "other"'))
    assert make_settings(recipe=str(custom)).recipe.name == "other"
    user_dir = home / ".config" / "simdoctor" / "recipes"
    user_dir.mkdir(parents=True)
    (user_dir / "mine.toml").write_text(custom.read_text().replace('"other"', '"mine"'))
    assert make_settings(recipe="mine").recipe.name == "mine"


@pytest.mark.parametrize(
    "config, message",
    [
        ("carla_rot = '/x'\n", "unknown key(s) carla_rot"),
        ("carla_port = 'abc'\n", "'abc' is not a port number"),
        ("carla_port = 0\n", "0 is not a port number"),
    ],
)
def test_bad_config_values_are_configuration_errors(make_settings, config, message):
    write_config(config)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_settings()


def test_unknown_recipe_placeholder_is_named(make_settings, tmp_path):
    source = Path(__file__).resolve().parents[1] / "recipes" / "simlingo-bench2drive.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(source.read_text().replace('file = "{work_dir}/team_code', 'file = "{workdir}/team_code'))
    with pytest.raises(ConfigError, match=r"recipe.agent.file uses unknown placeholder \{workdir\}"):
        make_settings(recipe=str(bad))


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
@pytest.mark.parametrize("xdg", [None, "", "/x/conf"])
@pytest.mark.parametrize("appdata", [None, "", "C:/Users/u/AppData/Roaming"])
def test_config_dir_is_typers_app_dir(monkeypatch, platform, xdg, appdata):
    """settings computes the config dir without importing typer (check's start-up); it must stay typer's."""
    import typer
    import typer._click.utils

    from simdoctor.config import settings

    for name, value in (("XDG_CONFIG_HOME", xdg), ("APPDATA", appdata)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(settings.sys, "platform", platform)  # the same sys module typer's click reads
    monkeypatch.setattr(typer._click.utils, "WIN", platform.startswith("win"))
    assert settings.config_dir() == Path(typer.get_app_dir("simdoctor"))
