"""Stand-in for the leaderboard's `leaderboard/utils/checkpoint_tools.py` (simlingo@743b243 Bench2Drive/, line
6): it imports requests (to fetch a checkpoint over HTTP), so every evaluation needs it: the import that
`find_spec("leaderboard")` does not see (reference/upstream-behaviour.md §3)."""

import requests  # noqa: F401
