"""Stand-in for Bench2Drive's `leaderboard/autoagents/autonomous_agent.py`: the base class every leaderboard
agent derives from, with the same API (Track; __init__(carla_host, carla_port, debug); setup; sensors;
run_step(input_data, timestamp) -> carla.VehicleControl; destroy; __call__ reading the sensor data and
GameTime, printing the `=== [Agent] -- Wallclock` line, calling run_step and clearing manual_gear_shift;
the static get_ros_version; set_global_plan). Left out: route downsampling, the hero lookup and
get_metric_info, which need a simulated world."""

from __future__ import print_function

from enum import Enum

import carla
from srunner.scenariomanager.timer import GameTime


class Track(Enum):
    SENSORS = "SENSORS"
    MAP = "MAP"
    SENSORS_QUALIFIER = "SENSORS_QUALIFIER"
    MAP_QUALIFIER = "MAP_QUALIFIER"


class SensorInterface(object):
    """No simulated camera: each tick has the speedometer and GNSS readings of a drive along the route at an
    even pace (`drive`, set by the stand-in evaluator), keyed and shaped as the leaderboard's
    ({id: (frame, data)}: speed {'speed': m/s}, gps [lat, lon, alt]); empty before a drive is set."""

    def __init__(self):
        self.points = []  # (lat, lon) along the route
        self.ticks = 0
        self.speed = 0.0

    def drive(self, points, ticks, speed):
        self.points, self.ticks, self.speed = list(points), max(int(ticks), 1), speed

    def get_data(self, frame):
        if not self.points:
            return {}
        share = min(1.0, frame / float(self.ticks)) * (len(self.points) - 1)
        i = min(int(share), len(self.points) - 2) if len(self.points) > 1 else 0
        a, b = self.points[i], self.points[min(i + 1, len(self.points) - 1)]
        t = share - i
        gps = [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, 0.0]
        return {"speed": (frame, {"speed": self.speed}), "gps": (frame, gps)}


class AutonomousAgent(object):
    def __init__(self, carla_host, carla_port, debug=False):
        self.track = Track.SENSORS
        self._global_plan = None
        self._global_plan_world_coord = None
        self.sensor_interface = SensorInterface()
        self.wallclock_t0 = None

    def setup(self, path_to_conf_file):
        pass

    def sensors(self):
        return []

    def run_step(self, input_data, timestamp):
        control = carla.VehicleControl()
        control.steer = 0.0
        control.throttle = 0.0
        control.brake = 0.0
        control.hand_brake = False
        return control

    def destroy(self):
        pass

    def __call__(self):
        input_data = self.sensor_interface.get_data(GameTime.get_frame())
        timestamp = GameTime.get_time()
        if not self.wallclock_t0:
            self.wallclock_t0 = GameTime.get_wallclocktime()
        wallclock = GameTime.get_wallclocktime()
        wallclock_diff = (wallclock - self.wallclock_t0).total_seconds()
        sim_ratio = 0 if wallclock_diff == 0 else timestamp / wallclock_diff
        print(
            "=== [Agent] -- Wallclock = {} -- System time = {} -- Game time = {} -- Ratio = {}x".format(
                str(wallclock)[:-3], format(wallclock_diff, ".3f"), format(timestamp, ".3f"), format(sim_ratio, ".3f")
            ),
            flush=True,
        )
        control = self.run_step(input_data, timestamp)
        control.manual_gear_shift = False
        return control

    @staticmethod
    def get_ros_version():
        return -1

    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        self._global_plan_world_coord = list(global_plan_world_coord)
        self._global_plan = list(global_plan_gps)
