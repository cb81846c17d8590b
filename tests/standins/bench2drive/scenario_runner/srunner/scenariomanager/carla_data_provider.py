"""Stand-in for scenario_runner's `srunner/scenariomanager/carla_data_provider.py` (simlingo@743b243
Bench2Drive/, lines 19-22): only its imports, which leaderboard_evaluator.py reaches first (its line 29), so a
missing `six` or `agents.navigation` fails the stand-in at the same point as the real evaluator."""

import agents.navigation  # noqa: F401 (upstream: agents.navigation.global_route_planner)
from six import iteritems  # noqa: F401
