"""Stand-in for scenario_runner's `srunner/scenariomanager/timer.py` GameTime: the simulation clock the
leaderboard's AutonomousAgent.__call__ reads (get_time, get_frame, get_wallclocktime), advanced by the
evaluator on every tick (on_carla_tick with a timestamp carrying frame and elapsed_seconds)."""

import datetime


class GameTime(object):
    _current_game_time = 0.0
    _last_frame = 0
    _platform_timestamp = 0.0

    @staticmethod
    def on_carla_tick(timestamp):
        if GameTime._last_frame < timestamp.frame:
            GameTime._current_game_time = timestamp.elapsed_seconds
            GameTime._last_frame = timestamp.frame
            GameTime._platform_timestamp = datetime.datetime.now()

    @staticmethod
    def restart():
        GameTime._current_game_time = 0.0
        GameTime._last_frame = 0

    @staticmethod
    def get_time():
        return GameTime._current_game_time

    @staticmethod
    def get_frame():
        return GameTime._last_frame

    @staticmethod
    def get_wallclocktime():
        return datetime.datetime.now()
