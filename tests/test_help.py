"""Help a person reads: every option of every command, as `--help` prints it at 80 columns; shell completion."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.core
import typer.main
from conftest import REPO
from typer._types import TyperChoice  # typer 0.28 carries its own click: pip's click has other classes

from simdoctor.cli import app
from simdoctor.config.settings import SETTINGS

SCRIPT = Path(sys.executable).with_name("simdoctor")  # the console script pip installs, as a shell completes it
ENV_OF_FLAG = {"--" + s.name.replace("_", "-"): s.env for s in SETTINGS} | {
    "--partition": "SIMDOCTOR_SLURM_PARTITION",
    "--account": "SIMDOCTOR_SLURM_ACCOUNT",
    "--qos": "SIMDOCTOR_SLURM_QOS",
    "--endpoint": "HF_ENDPOINT",
    "--recipe": "SIMDOCTOR_RECIPE",
}


def commands(group: typer.core.TyperGroup, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, typer.core.TyperGroup):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = dict(commands(typer.main.get_command(app)))


def help_text(*path: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "simdoctor", *path, "--help"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=dict(os.environ, COLUMNS="80"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_help_shows_env_defaults_and_choices_without_a_stray_period(path: tuple[str, ...]) -> None:
    text = help_text(*path)
    flat = " ".join(text.split())  # click wraps at 80 columns: compare with the line breaks taken out
    assert not re.search(r" \.( |$)", flat) and "\x1b[" not in text, flat  # "CARLA package dir ." was rich markup
    assert max(map(len, text.splitlines())) <= 80
    for param in COMMANDS[path].params:
        if not isinstance(param, typer.core.TyperOption) or param.name == "help":
            continue
        flag = max(param.opts, key=len)
        if flag in ENV_OF_FLAG:
            assert f"[env var: {ENV_OF_FLAG[flag]}]" in flat, (path, flag)
        if isinstance(param.type, TyperChoice):
            assert f"{flag} <{'|'.join(param.type.choices)}>" in flat, (path, flag)
        if param.default not in (None, False) and not param.is_flag and param.required is False:
            assert f"[default: {param.default}]" in flat, (path, flag)


def test_every_settings_variable_is_named_somewhere() -> None:
    """Each variable the settings layer reads for a flag appears in some command's help."""
    every = " ".join(" ".join(help_text(*path).split()) for path in [("check",), ("run",), ("download",)])
    assert all(f"[env var: {s.env}]" in every for s in SETTINGS), [s.env for s in SETTINGS if s.env not in every]


def test_completion_installs_and_completes(tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), SHELL="/bin/bash")
    done = subprocess.run([SCRIPT, "--install-completion", "bash"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "simdoctor.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    # bash itself sources the installed script and asks it, as a user's Tab would
    ask = f"source {script}; COMP_WORDS=(simdoctor run --executor ''); COMP_CWORD=3; _simdoctor_completion simdoctor; "
    done = subprocess.run(
        ["bash", "-c", ask + 'printf "%s\\n" "${COMPREPLY[@]}"'],
        capture_output=True, text=True, env=dict(env, PATH=f"{SCRIPT.parent}:{os.environ['PATH']}"),
    )  # fmt: skip
    assert done.stdout.split() == ["local", "slurm"], done.stdout + done.stderr


def test_check_help_and_readme_give_the_same_speed() -> None:
    """`check --help` once said "about a second" while the README said "well under"."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## `simdoctor check`") :].split("\n## ", 1)[0]
    said = " ".join(help_text("check").split())
    assert "in well under a second" in said and "well under a second" in section
    assert "about a second" not in said + readme
