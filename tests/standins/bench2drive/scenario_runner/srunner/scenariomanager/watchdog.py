"""Stand-in for scenario_runner's `srunner/scenariomanager/watchdog.py` (simlingo@743b243 Bench2Drive/, line
14): its import of simple_watchdog_timer, reached from leaderboard_evaluator.py line 31."""

import simple_watchdog_timer as swt  # noqa: F401
