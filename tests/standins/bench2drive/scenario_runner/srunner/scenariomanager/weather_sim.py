"""Stand-in for scenario_runner's `srunner/scenariomanager/weather_sim.py` (simlingo@743b243 Bench2Drive/):
its import of ephem (the sun's position), reached through leaderboard/scenarios/route_scenario.py line 42."""

import ephem  # noqa: F401
