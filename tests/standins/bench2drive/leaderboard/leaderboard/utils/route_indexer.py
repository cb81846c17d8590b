"""Stand-in for the leaderboard's `leaderboard/utils/route_indexer.py` (simlingo@743b243 Bench2Drive/, lines
2-7): dictor, and checkpoint_tools.py (requests); leaderboard_evaluator.py imports it at line 38."""

from dictor import dictor  # noqa: F401

from leaderboard.utils import checkpoint_tools  # noqa: F401
