"""Stand-in for the leaderboard's `leaderboard/scenarios/scenario_manager.py` (simlingo@743b243 Bench2Drive/,
lines 18-28): its imports, reached from leaderboard_evaluator.py line 33: py_trees, then agent_wrapper.py, which
imports ros_base_agent.py (pexpect, transforms3d), then utils/result_writer.py (tabulate)."""

import py_trees  # noqa: F401
from tabulate import tabulate  # noqa: F401 (upstream: in leaderboard/utils/result_writer.py line 17)

from leaderboard.autoagents import ros_base_agent  # noqa: F401 (upstream: agent_wrapper.py line 23)
