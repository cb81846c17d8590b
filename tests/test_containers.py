"""The Dockerfiles cannot be built here (no registry), so their facts are checked against the recipe,
which is the source of the versions they share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from simdoctor.config.settings import Settings
from tests.conftest import REPO


def args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(), re.MULTILINE))


def test_agent_dockerfile_pins_match_the_recipe(make_settings: Callable[..., Settings]) -> None:
    agent = make_settings().recipe.agent
    found = args(REPO / "containers" / "agent" / "Dockerfile")
    assert found["CARLA"] == agent.packages["carla"]
    assert found["TORCH"] == agent.packages["torch"]
    assert found["TRANSFORMERS"] == agent.packages["transformers"]
    assert found["PYTHON"] == f"python{agent.python_version}"
    assert "cuda:12.1" in found["CUDA_IMAGE"]


def test_agent_dockerfile_installs_every_recipe_pin(make_settings: Callable[..., Settings]) -> None:
    path = REPO / "containers" / "agent" / "Dockerfile"
    arg_values = args(path)
    text = re.sub(r"\$\{(\w+)\}", lambda m: arg_values[m.group(1)], path.read_text())
    pinned = dict(re.findall(r"([A-Za-z0-9_.-]+)==([^\s\\\"]+)", text))
    recipe = make_settings().recipe.agent.packages
    assert {name: pinned.get(name) for name in recipe} == recipe


def test_carla_dockerfile_extends_the_recipe_image(make_settings: Callable[..., Settings]) -> None:
    carla = make_settings().recipe.carla
    path = REPO / "containers" / "carla" / "Dockerfile"
    text = path.read_text()
    assert args(path)["CARLA_IMAGE"] == carla.docker_image
    assert "xdg-user-dirs" in text and "vulkan-tools" in text
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users[-1] == "carla"  # CARLA refuses root; simdoctor refuses an image that runs as root
    assert re.findall(r"^WORKDIR (\S+)$", text, re.MULTILINE)[-1] == carla.docker_carla_root
