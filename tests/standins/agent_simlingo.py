"""Stand-in for SimLingo's `team_code/agent_simlingo.py` (RenzKa/simlingo@743b243): the leaderboard agent
contract without the model. Kept: get_entry_point() -> 'LingoAgent'; a subclass of the leaderboard's
AutonomousAgent; setup(path_to_conf_file, route_index=None) splitting '<checkpoint>+<save name>' and
building its save path as SAVE_PATH + save name (a TypeError when SAVE_PATH is unset, as upstream); the
base model loaded by its hub name, as upstream loads it: the Hydra config at
`Path(checkpoint).parent.parent.parent / '.hydra' / 'config.yaml'` (lines 146-150; a missing one raises)
names `model.vision_model.variant`, and `AutoProcessor.from_pretrained(variant)` (line 154; also
internvl2_model.py line 9) resolves it through the Hugging Face cache, which under the HF_HUB_OFFLINE=1 that
`run` sets means local files only: here huggingface_hub's hf_hub_download of its config.json, the same
resolution without transformers (reference/upstream-behaviour.md §4); the sensor set of config_simlingo.py
(one RGB camera, IMU, GNSS, speedometer); run_step(input_data, timestamp, sensors=None); destroy(results=None).

Its debug view, as upstream draws it (lines 61-62, 212-236, 665-763): the module constants `DEBUG = False`
and `HD_VIZ = False` (no environment switch); `setup` makes `<save_path>/debug_viz/<session>/iter_<iter>/
<route type>/<route number>_<time>/images` only when DEBUG is on; `self.model` is built in setup and called
once per step after the first (`pred_speed_wps, pred_route, language = self.model(model_input)`); when
`DEBUG and self.step % 5 == 0`, the front camera image (1024x512) gets the target points (blue, r=4), the
route (red, r=3) and the speed waypoints (green, r=2), then a black 400 px band below with
`Prompt: <self.prompt>` and `Answer: <language[0]>` wrapped at 100 characters, 30 px apart, in
`ImageFont.truetype("arial.ttf", 20)` (an OSError when no font file has that name, as upstream), saved as
`<images>/<step>.png` (RGBA). The camera image here is a drawn road (no simulator), moving with the step.

Test knobs (environment): STANDIN_AGENT_STEP_S seconds of "inference" per step; STANDIN_AGENT_SETUP_FAIL
makes setup raise; STANDIN_AGENT_FAIL_AT_STEP=N makes step N raise; STANDIN_AGENT_ESCAPE=S makes setup start
`setsid env -i sleep S`, a child that leaves the tree: own session, no environment (no simdoctor cookie)."""

import json
import os
import pathlib
import subprocess
import textwrap
import time

import carla
from huggingface_hub import hf_hub_download
from leaderboard.autoagents import autonomous_agent
from PIL import Image, ImageDraw, ImageFont

DEBUG = False  # saves images during evaluation
HD_VIZ = False
WIDTH, HEIGHT = 1024, 512
ANSWERS = (
    "Accelerate to reach the target speed.",
    "Maintain the current speed, the road ahead is clear.",
    "Slow down for the vehicle ahead that is braking.",
    "Follow the lane and keep a safe distance to the car in front.",
)


def get_entry_point():
    return "LingoAgent"


class StandinModel(object):
    """What SimLingo's model returns per call: speed waypoints, route waypoints (both in the ego frame,
    metres ahead and to the side) and the language answer as a one-element list."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model_input):
        self.calls += 1
        route = [(2.0 * i, 0.05 * i * i * (1 if (self.calls // 40) % 2 else -1)) for i in range(1, 11)]
        speed = [(1.5 * i, 0.0) for i in range(1, 9)]
        return speed, route, [ANSWERS[(self.calls // 20) % len(ANSWERS)]]


def project(point):
    """A point in the ego frame (x ahead, y right, on the ground) on the 1024x512 camera, 110 degrees wide."""
    x, y = point
    focal = WIDTH / (2.0 * 1.4281)  # tan(110 degrees / 2)
    return WIDTH / 2 + focal * y / max(x, 0.5), HEIGHT / 2 + focal * 2.0 / max(x, 0.5)


def camera_image(step):
    """A road seen from the hood, its lane marks moving with the step."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (135, 170, 205))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, HEIGHT // 2, WIDTH, HEIGHT), fill=(70, 110, 60))
    draw.polygon([(WIDTH // 2 - 20, HEIGHT // 2), (WIDTH // 2 + 20, HEIGHT // 2), (WIDTH, HEIGHT), (0, HEIGHT)],
                 fill=(80, 80, 84))  # fmt: skip
    for k in range(8):
        near = ((k * 6.0 - step * 0.4) % 48.0) + 2.0
        (x0, y0), (x1, y1) = project((near, 0.0)), project((near + 3.0, 0.0))
        draw.line((x0, y0, x1, y1), fill=(235, 235, 235), width=max(1, int(12 / near)))
    return image


def metric_info(step):
    """AutonomousAgent.get_metric_info's keys (leaderboard autonomous_agent.py lines 147-162) for a car driving
    straight at 5 m/s: acceleration, angular_velocity, forward/right vectors, location, rotation (roll, pitch, yaw)."""
    return {
        "acceleration": [0.0, 0.0, 0.0],
        "angular_velocity": [0.0, 0.0, 0.0],
        "forward_vector": [1.0, 0.0, 0.0],
        "right_vector": [0.0, 1.0, 0.0],
        "location": [0.25 * step, 0.0, 0.0],
        "rotation": [0.0, 0.0, 0.0],
    }


class LingoAgent(autonomous_agent.AutonomousAgent):
    def setup(self, path_to_conf_file, route_index=None):
        self.track = autonomous_agent.Track.SENSORS
        if os.environ.get("STANDIN_AGENT_SETUP_FAIL"):
            raise RuntimeError("stand-in agent: setup failed on purpose")
        if "+" in path_to_conf_file:
            self.config_path, self.save_path_root = path_to_conf_file.split("+")[:2]
        else:
            self.config_path, self.save_path_root = path_to_conf_file, route_index
        config = pathlib.Path(self.config_path).parent.parent.parent / ".hydra" / "config.yaml"
        with open(config) as handle:
            variant = next(line.split(":", 1)[1].strip() for line in handle if line.strip().startswith("variant:"))
        self.base_model = hf_hub_download(variant, "config.json")
        self.step = -1
        self.initialized = False
        self.model = StandinModel()
        self.iter = self.config_path.split("epoch=")[-1].split("/")[0]
        self.session = (self.config_path.split("/")[-4:] or ["session"])[0]
        route_path = os.environ.get("ROUTES", "")
        route_type = route_path.split("data/benchmarks/")[-1].split("/")[0]
        route_number = str(pathlib.Path(route_path).stem)
        self.save_path = os.environ.get("SAVE_PATH") + self.save_path_root
        self.debug_save_path = (
            self.save_path
            + "/debug_viz"
            + "/{}/iter_{}/{}/{}_{}".format(
                self.session, self.iter, route_type, route_number, time.strftime("%Y_%m_%d_%H_%M_%S")
            )
        )
        pathlib.Path(self.debug_save_path).mkdir(parents=True, exist_ok=True)
        self.save_path_metric = self.debug_save_path + "/metric"
        pathlib.Path(self.save_path_metric).mkdir(parents=True, exist_ok=True)
        self.metric_info = {}
        if DEBUG:
            self.save_path_img = self.debug_save_path + "/images"
            pathlib.Path(self.save_path_img).mkdir(parents=True, exist_ok=True)
        self.target_points = [(20.0, 0.0), (45.0, 1.0)]
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
        self.metric_info[self.step] = metric_info(self.step)
        with open(self.save_path_metric + "/metric_info.json", "w") as outfile:
            json.dump(self.metric_info, outfile, indent=4)
        if not self.initialized:
            self.initialized = True
            return carla.VehicleControl(steer=0.0, throttle=0.0, brake=1.0)
        try:
            speed = float(input_data["speed"][1]["speed"])
        except (TypeError, KeyError, IndexError, ValueError):
            speed = 0.0
        self.prompt = "Current speed: {:.1f} m/s. Target waypoint: 20 m ahead. What should the ego do next?".format(
            speed
        )
        pred_speed_wps, pred_route, language = self.model({"vehicle_speed": speed})
        if DEBUG and self.step % 5 == 0:
            self.draw(pred_speed_wps, pred_route, language)
        return carla.VehicleControl(throttle=0.5, steer=0.0, brake=0.0)

    def draw(self, pred_speed_wps, pred_route, language):
        image = camera_image(self.step)
        draw = ImageDraw.Draw(image)
        for points, radius, colour in ((self.target_points, 4, (0, 0, 255, 255)), (pred_route, 3, (255, 0, 0, 255)),
                                       (pred_speed_wps, 2, (0, 255, 0, 255))):  # fmt: skip
            for point in points:
                u, v = project(point)
                draw.ellipse((u - radius, v - radius, u + radius, v + radius), fill=colour)
        if language is not None:
            image_all = Image.new("RGBA", (WIDTH, HEIGHT + 400))
            image_all.paste(image, (0, 0))
            image_all.paste(Image.new("RGBA", (WIDTH, 400), (0, 0, 0, 255)), (0, HEIGHT))
            image = image_all
            draw = ImageDraw.Draw(image)
            font = ImageFont.truetype("arial.ttf", 20)
            y_start = HEIGHT + 20
            lines = textwrap.wrap("Prompt: {}".format(self.prompt), width=100)
            for idx, line in enumerate(lines):
                draw.text((10, y_start + 30 * idx), line, font=font, fill=(255, 255, 255, 255))
            y_start = HEIGHT + 20 + 30 * len(lines)
            for idx, line in enumerate(textwrap.wrap("Answer: {}".format(language[0]), width=100)):
                draw.text((10, y_start + 30 * idx), line, font=font, fill=(255, 255, 255, 255))
        image.save("{}/{}.png".format(self.save_path_img, self.step))

    def destroy(self, results=None):
        pass
