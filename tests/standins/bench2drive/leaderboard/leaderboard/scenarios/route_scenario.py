"""Stand-in for the leaderboard's `leaderboard/scenarios/route_scenario.py` (simlingo@743b243 Bench2Drive/,
lines 19-49): the third-party imports it reaches: py_trees and numpy itself, ephem through srunner's
weather_sim.py, shapely through srunner/tools/scenario_helper.py, networkx through scenarioatomics/
atomic_behaviors.py. `check --deep` imports this module by name as it imports the real one."""

import networkx  # noqa: F401
import numpy  # noqa: F401
import py_trees  # noqa: F401
import shapely.geometry  # noqa: F401
from srunner.scenariomanager import weather_sim  # noqa: F401
