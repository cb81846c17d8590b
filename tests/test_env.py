"""`simdoctor env`: what real bash and fish end up with equals agentenv.agent_environment()."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from simdoctor.config.agentenv import agent_environment

SHOW = "python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'"


@pytest.fixture
def odd_paths(tmp_path: Path) -> dict[str, str]:
    """Paths with a space, a quote, a dollar and a backslash: quoting must survive all of them."""
    base = tmp_path / "it's a $HOME \\ dir"
    return {"carla_root": str(base / "carla"), "work_dir": str(base / "simlingo")}


def shell_env(shell: list[str], script: str) -> dict[str, str]:
    out = subprocess.run([*shell, script], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.mark.parametrize("fmt, shell", [("bash", ["bash", "-c"]), ("fish", ["fish", "-c"])])
def test_the_shell_gets_exactly_the_agent_environment(
    simdoctor, make_settings, odd_paths: dict[str, str], fmt: str, shell: list[str]
) -> None:
    if shutil.which(shell[0]) is None:
        pytest.fail(f"{shell[0]} is missing: run `bash tests/setup.sh`")
    printed = simdoctor(
        "env", "--format", fmt, "--carla-root", odd_paths["carla_root"], "--work-dir", odd_paths["work_dir"]
    )
    assert printed.returncode == 0, printed.stderr
    script = printed.stdout + SHOW
    got = shell_env(shell, script)
    want = agent_environment(make_settings(**odd_paths))
    assert {k: got[k] for k in want} == want


def test_json_is_the_agent_environment(simdoctor, make_settings) -> None:
    printed = simdoctor("env", "--format", "json")
    assert printed.returncode == 0
    assert json.loads(printed.stdout) == agent_environment(make_settings())
    assert list(json.loads(printed.stdout)) == list(agent_environment(make_settings()))


def test_an_unknown_format_is_a_usage_error(simdoctor) -> None:
    printed = simdoctor("env", "--format", "csh")
    assert printed.returncode == 2
    said = "simdoctor: Invalid value for '--format': 'csh' is not one of 'bash', 'fish', 'json'."
    assert printed.stderr.strip() == said
