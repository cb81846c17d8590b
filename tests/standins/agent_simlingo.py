"""Stand-in for SimLingo's `team_code/agent_simlingo.py` (RenzKa/simlingo@743b243): the leaderboard agent
contract without the model. Kept: get_entry_point() -> 'LingoAgent'; a subclass of the leaderboard's
AutonomousAgent; setup(path_to_conf_file, route_index=None) splitting '<checkpoint>+<save name>' and
building its save path as SAVE_PATH + save name (a TypeError when SAVE_PATH is unset, as upstream); the
sensor set of config_simlingo.py (one RGB camera, IMU, GNSS, speedometer); run_step(input_data,
timestamp, sensors=None); destroy(results=None).

Test knobs (environment): STANDIN_AGENT_STEP_S seconds of "inference" per step; STANDIN_AGENT_SETUP_FAIL
makes setup raise; STANDIN_AGENT_FAIL_AT_STEP=N makes step N raise; STANDIN_AGENT_ESCAPE=S makes setup start
`setsid env -i sleep S`, a child that leaves the tree: own session, no environment (no simdoctor cookie)."""

import os
import subprocess
import time

import carla
from leaderboard.autoagents import autonomous_agent


def get_entry_point():
    return "LingoAgent"


class LingoAgent(autonomous_agent.AutonomousAgent):
    def setup(self, path_to_conf_file, route_index=None):
        self.track = autonomous_agent.Track.SENSORS
        if os.environ.get("STANDIN_AGENT_SETUP_FAIL"):
            raise RuntimeError("stand-in agent: setup failed on purpose")
        if "+" in path_to_conf_file:
            self.config_path, self.save_path_root = path_to_conf_file.split("+")[:2]
        else:
            self.config_path, self.save_path_root = path_to_conf_file, route_index
        self.save_path = os.environ.get("SAVE_PATH") + self.save_path_root
        os.makedirs(self.save_path, exist_ok=True)
        self.step = -1
        self.step_seconds = float(os.environ.get("STANDIN_AGENT_STEP_S", "0"))
        self.fail_at = int(os.environ.get("STANDIN_AGENT_FAIL_AT_STEP", "-1"))
        if os.environ.get("STANDIN_AGENT_ESCAPE"):
            subprocess.Popen(
                ["setsid", "env", "-i", "sleep", os.environ["STANDIN_AGENT_ESCAPE"]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def sensors(self):
        return [
            {"type": "sensor.camera.rgb", "x": -1.5, "y": 0.0, "z": 2.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
             "width": 1024, "height": 512, "fov": 110, "id": "rgb_0"},
            {"type": "sensor.other.imu", "x": 0.0, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
             "sensor_tick": 0.05, "id": "imu"},
            {"type": "sensor.other.gnss", "x": 0.0, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
             "sensor_tick": 0.01, "id": "gps"},
            {"type": "sensor.speedometer", "reading_frequency": 20, "id": "speed"},
        ]  # fmt: skip

    def run_step(self, input_data, timestamp, sensors=None):
        self.step += 1
        if self.step == self.fail_at:
            raise RuntimeError("stand-in agent: step %d failed on purpose" % self.step)
        if self.step_seconds:
            time.sleep(self.step_seconds)
        return carla.VehicleControl(throttle=0.5, steer=0.0, brake=0.0)

    def destroy(self, results=None):
        pass
