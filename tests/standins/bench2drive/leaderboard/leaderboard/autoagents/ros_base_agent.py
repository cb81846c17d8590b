"""Stand-in for the leaderboard's `leaderboard/autoagents/ros_base_agent.py` (simlingo@743b243 Bench2Drive/,
lines 19-20): imported by agent_wrapper.py for every agent, ROS or not, so pexpect and transforms3d are needed
by every evaluation."""

import pexpect  # noqa: F401
import transforms3d  # noqa: F401
