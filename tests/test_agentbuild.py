"""The agent env's commands for the cases the setup tests do not run: a driver of another CUDA major, no Python
3.8 on the machine, flash-attn asked for, micromamba's own command line."""

from __future__ import annotations

from pathlib import Path

from healthy import settings_fixture  # noqa: F401  (the `settings` fixture)

from simdoctor.config.recipe import torch_index
from simdoctor.config.settings import Settings
from simdoctor.provision import agentbuild

CU118 = "https://download.pytorch.org/whl/cu118"
CONFIG = Path("/nonexistent/config.toml")


def shown(actions) -> list[str]:
    return [a.show().removeprefix("$ ") for a in actions]


def test_the_torch_index_follows_the_drivers_cuda_and_the_newest_without_one(settings: Settings) -> None:
    a = settings.recipe.agent
    assert torch_index(a, "11.8") == CU118
    assert torch_index(a, "12.4") == "https://download.pytorch.org/whl/cu121"
    assert torch_index(a, None) == "https://download.pytorch.org/whl/cu121"
    assert torch_index(a, "13.0") == "https://download.pytorch.org/whl/cu121"


def test_conda_on_a_cuda_11_driver_reinstalls_torch_from_its_index(settings: Settings) -> None:
    a = settings.recipe.agent
    lines = shown(
        agentbuild.conda_actions(a, "/opt/conda/bin/conda", CU118, agentbuild.Options(flash_attn=True), CONFIG)
    )
    assert lines == [
        f"/opt/conda/bin/conda env create -f {settings.work_dir}/environment.yaml",
        f"write the env's python to {CONFIG} as agent_python, if the candidates do not find it",
        "/opt/conda/bin/conda run -n simlingo python -m pip install --force-reinstall --no-deps "
        f"--index-url {CU118} torch==2.2.0 torchvision==0.17.0",
        "/opt/conda/bin/conda run -n simlingo python -m pip install --no-build-isolation flash-attn==2.7.0.post2",
    ]


def test_micromamba_keeps_its_own_command_line(settings: Settings) -> None:
    a = settings.recipe.agent
    index = torch_index(a, "12.2")
    create, _ = shown(agentbuild.conda_actions(a, "/x/bin/micromamba", index, agentbuild.Options(), CONFIG))
    assert create == f"/x/bin/micromamba create -y -f {settings.work_dir}/environment.yaml"


def test_uv_without_a_python_38_here_lets_uv_fetch_one(settings: Settings) -> None:
    a = settings.recipe.agent
    lines = shown(agentbuild.uv_actions(a, "/usr/bin/uv", None, CU118, agentbuild.Options()))
    venv = a.build.venv
    assert lines[0] == f"/usr/bin/uv venv --seed --python 3.8 {venv}"  # downloads allowed: no UV_PYTHON_DOWNLOADS=never
    assert (
        lines[1]
        == f"/usr/bin/uv pip install --python {venv}/bin/python --index-url {CU118} torch==2.2.0 torchvision==0.17.0"
    )
    assert lines[-1] == f"/usr/bin/uv pip install --python {venv}/bin/python -r {Path(venv)}/simdoctor-requirements.txt"


def test_the_pins_left_to_install_are_those_of_the_env_setup_makes_only(settings: Settings) -> None:
    a = settings.recipe.agent
    ours = f"{a.build.venv}/bin/python"
    installed = {n: v for n, v in a.packages.items() if n not in ("six", "torch", "accelerate")}
    assert agentbuild.unfinished(a, ours, installed, agentbuild.Options()) == ["six", "torch", "accelerate"]
    assert agentbuild.unfinished(a, ours, installed, agentbuild.Options(no_torch=True)) == ["six"]
    assert agentbuild.unfinished(a, "/opt/conda/envs/simlingo/bin/python", installed, agentbuild.Options()) == []
