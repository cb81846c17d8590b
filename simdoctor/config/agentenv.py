"""The environment the evaluator and the agent run with: one computation for `env`, `check` and `run`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from simdoctor.config.settings import Settings

TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def pythonpath(settings: Settings) -> list[str]:
    """PYTHONPATH entries in the recipe's order: CARLA's PythonAPI, scenario_runner, leaderboard, agent code."""
    return list(dict.fromkeys(settings.recipe.agent.pythonpath))


def agent_environment(settings: Settings) -> dict[str, str]:
    """Variables the evaluator reads (leaderboard_evaluator.py, agent_simlingo.py), in a stable order.

    HF_HUB_OFFLINE=1 makes a missing pre-fetched model fail at once instead of downloading mid-route.
    """
    agent = settings.recipe.agent
    return {
        "CARLA_ROOT": str(settings.carla_root),
        "WORK_DIR": str(settings.work_dir).rstrip("/") + "/",  # SimLingo joins WORK_DIR + 'leaderboard/...'
        "SCENARIO_RUNNER_ROOT": agent.scenario_runner,
        "LEADERBOARD_ROOT": agent.leaderboard,
        "PYTHONPATH": os.pathsep.join(pythonpath(settings)),
        "HF_HUB_OFFLINE": "1",
    }


def without_tokens(env: Mapping[str, str]) -> dict[str, str]:
    """`env` less the Hugging Face tokens, for the evaluator, the agent and CARLA: they run offline
    (HF_HUB_OFFLINE=1), and whatever they start would inherit the token."""
    return {name: value for name, value in env.items() if name not in TOKEN_VARIABLES}
