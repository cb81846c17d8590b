#!/usr/bin/env python
"""Stand-in for Bench2Drive's `leaderboard/leaderboard/leaderboard_evaluator.py` as SimLingo ships it
(RenzKa/simlingo@743b243 Bench2Drive/, = Thinklab-SJTU/Bench2Drive v0.0.3 plus the WORK_DIR weather path).

Contract kept (reference/upstream-behaviour.md §1-§3; simlingo-bench2drive.md §1.3, §2.1, §2.3, §2.5):
- the same argparse: flags, defaults and types (`--resume` is `type=bool`);
- the same imports, in the same order, through stand-in modules at upstream's paths (lines 29-38: six,
  agents.navigation, simple_watchdog_timer, py_trees, pexpect, transforms3d, tabulate, numpy, ephem,
  shapely, networkx, dictor, requests), so a missing one ends it at once with exit 1, a traceback whose
  last line is `ModuleNotFoundError: No module named '...'`, and no results JSON;
- CARLA (`_setup_simulation`, lines 203-253): `os.environ["CARLA_ROOT"]`, `find_free_port(--port)`, then
  `$CARLA_ROOT/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port=P -graphicsadapter=G` through
  `/bin/sh -c` in a new session (upstream: `Popen(cmd, shell=True, preexec_fn=os.setsid)`, the same
  process tree), the command printed with ` None`, `atexit.register(os.killpg, pid, SIGKILL)`; then
  `time.sleep(60)` unconditionally; up to 20 attempts at the server (a client with `--timeout`, one call:
  upstream's `get_world().apply_settings`, here `get_server_version`), each failure printing
  `load_world failed , attempts=N` and the exception, then `sleep(5)`; up to 40 attempts at the traffic
  manager (`traffic_manager init fail, try_time=N`, the exception, `sleep(5)`); and when none succeeded,
  `return client, client_timeout, traffic_manager` raises `UnboundLocalError: local variable
  'traffic_manager' referenced before assignment`: exit 1, no results JSON. Against a dead server the real
  client blocks for its whole timeout per attempt (measured upstream); the stand-in's does the same (the
  real `carla` client). How long upstream's get_trafficmanager blocks against a dead server was not
  measured: here each traffic-manager attempt fails at once (connection refused), so a run's total is a
  lower bound. STANDIN_EVALUATOR_TIME_SCALE (default 1: the real times) multiplies the 60 s, the 5 s
  pauses and the client timeout of those attempts, for tests and bench/carla_dies.py;
- the agent: `sys.path.insert(0, dirname(--agent))`, import by file name, `get_entry_point()`, the
  class's static `get_ros_version()`, `cls(host, port, debug)`, `set_global_plan(gps route, world route)`
  (the route's keypoints, as GNSS reads them: route_manipulation.py `_location_to_gps`), the speedometer
  and GNSS readings of an even drive along them each tick (no camera),
  `setup(agent_config + '+' + save_name)`, `sensors()` mapped to icons, one `agent()` per 20 Hz tick
  (GameTime advanced first), `destroy()`; exceptions from agent() are AgentError: "Stopping the route,
  the agent has crashed:" and 'Failed - Agent crashed';
- results through `--checkpoint` written in place as statistics_manager.py does (`open(path, 'w')`,
  `json.dump(indent=4)`, truncated at start unless --resume): `_checkpoint{global_record, progress,
  records}`, `entry_status`, `eligible`, `sensors`, `values`, `labels`, the record keys, status strings,
  penalties and global statistics of statistics_manager.py;
- exit: 0, or `sys.exit(-1)` (255) after a crash, when it first runs upstream's clean-up (line 507)
  `ps -ef | grep '-graphicsadapter=G' | grep -v grep | awk '{print $2}' | xargs -r kill -9` through
  /bin/sh, exactly, with its `atexit.register(os.killpg, pid, SIGKILL)`: GNU grep takes the pattern for
  options (`grep: invalid option -- 'g'`), and the exit's atexit SIGKILLs the pipeline's group anyway, so
  nothing is killed (upstream-behaviour.md §2).

What a route does (a `<route>` attribute, else the environment variable, else the default):
  standin / STANDIN_MODE: perfect (default), completed, blocked, deviated, timed_out, tick_runtime (driving
    results), sim_crash (SIGSEGV to CARLA mid-route), hang (stops answering mid-route), die (SIGKILLs
    itself mid-route: no record, CARLA left running, as an OOM kill leaves it)
  standin_sim_s / STANDIN_SIM_S: simulated seconds driven (default 2; 20 ticks per second)
  standin_wall_s / STANDIN_WALL_S: wall seconds the drive takes at least (default 0)
  standin_failing_attempts / STANDIN_FAILING_ATTEMPTS: the mode holds for the first N runs of the route,
    later runs are 'perfect' (counted in $STANDIN_STATE_DIR/<route id>.attempts)
"""

from __future__ import print_function

import argparse
import atexit
import importlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from datetime import datetime

# isort: off
# upstream's order (lines 26-38): the first missing distribution is the one its traceback names
import carla
import srunner.scenariomanager.carla_data_provider
from srunner.scenariomanager.timer import GameTime
import srunner.scenariomanager.watchdog  # noqa: F401

import leaderboard.scenarios.scenario_manager
import leaderboard.scenarios.route_scenario
from leaderboard.utils.statistics_manager import Stats
import leaderboard.utils.route_indexer  # noqa: F401

# isort: on

TIME_SCALE = float(os.environ.get("STANDIN_EVALUATOR_TIME_SCALE", "1"))
FRAME_RATE = 20.0
TICK_TIMEOUT = 1.0  # upstream waits --timeout for a tick; a dead stand-in server is seen sooner
SENSORS_TO_ICONS = {
    "sensor.camera.rgb": "carla_camera",
    "sensor.lidar.ray_cast": "carla_lidar",
    "sensor.other.radar": "carla_radar",
    "sensor.other.gnss": "carla_gnss",
    "sensor.other.imu": "carla_imu",
    "sensor.opendrive_map": "carla_opendrive_map",
    "sensor.speedometer": "carla_speedometer",
}
# Driving results per mode: (route completion %, infractions, failure message)
OUTCOMES = {
    "perfect": (100.0, {}, ""),
    "completed": (100.0, {"collisions_vehicle": ["Agent collided against object with type=vehicle.tesla.model3 and "
                                                 "id=231 at (x=12.5, y=-3.25, z=0.1)"],
                          "min_speed_infractions": ["Average speed is 79.2% of the surrounding traffic's one"]}, ""),
    "blocked": (37.5, {"vehicle_blocked": ["Agent got blocked at (x=10.0, y=2.0, z=0.0)"]}, "Agent got blocked"),
    "deviated": (22.0, {"route_dev": ["Agent deviated from the route at (x=4.0, y=1.5, z=0.0)"]},
                 "Agent deviated from the route"),
    "timed_out": (81.0, {"route_timeout": ["Route timeout."]}, "Agent timed out"),
    "tick_runtime": (50.0, {}, "TickRuntime"),
}  # fmt: skip
MID_ROUTE = ("sim_crash", "hang", "die")


def find_free_port(starting_port):
    port = starting_port
    while True:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("localhost", port))
                return port
        except OSError:
            port += 1


class AgentError(Exception):
    pass


class TrafficManager(object):
    """The traffic manager's server lives in the evaluator (upstream: client.get_trafficmanager(port)): its
    port held. It needs the simulator: a refused connection fails it at once."""

    def __init__(self, host, rpc_port, port):
        socket.create_connection((host, rpc_port), timeout=1.0).close()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("localhost", port))
        self.server.listen(8)


class RouteConfig(object):
    def __init__(self, index, element):
        self.index = index
        self.element = element
        self.name = "RouteScenario_{}".format(element.attrib["id"])
        self.town = element.attrib["town"]
        self.repetition_index = 0
        self.keypoints = [
            (float(p.attrib["x"]), float(p.attrib["y"]), float(p.attrib["z"]))
            for p in element.find("waypoints").iter("position")
        ]
        self.scenario_names = [s.attrib.get("name") for s in element.find("scenarios").iter("scenario")]

    def setting(self, name, default):
        return self.element.attrib.get(name, os.environ.get(name.upper(), default))


def parse_routes(path):
    tree = ET.parse(path)
    return [RouteConfig(i, route) for i, route in enumerate(tree.iter("route"))]


class Evaluator(object):
    client_timeout = 300.0  # upstream's class default, shadowed by --timeout

    def __init__(self, args, stats):
        self.stats = stats
        self.sensors = None
        self.client, self.client_timeout, self.traffic_manager = self._setup_simulation(args)
        self.client.set_timeout(min(args.timeout, TICK_TIMEOUT))
        sys.path.insert(0, os.path.dirname(args.agent))
        self.module_agent = importlib.import_module(os.path.basename(args.agent).split(".")[0])

    def _setup_simulation(self, args):
        """Upstream's lines 203-253, with its waits multiplied by TIME_SCALE."""
        self.carla_root = os.environ["CARLA_ROOT"]
        args.port = find_free_port(args.port)
        cmd = "{} -RenderOffScreen -nosound -carla-rpc-port={} -graphicsadapter={}".format(
            os.path.join(self.carla_root, "CarlaUE4.sh"), args.port, args.gpu_rank
        )
        self.server = subprocess.Popen(["/bin/sh", "-c", cmd], preexec_fn=os.setsid)
        print(cmd, self.server.returncode, flush=True)
        atexit.register(os.killpg, self.server.pid, signal.SIGKILL)
        time.sleep(60 * TIME_SCALE)
        attempts = 0
        while attempts < 20:
            try:
                client = carla.Client(args.host, args.port)
                if args.timeout:
                    client_timeout = args.timeout
                client.set_timeout(client_timeout * TIME_SCALE)
                client.get_server_version()
                print("load_world success , attempts={}".format(attempts), flush=True)
                break
            except Exception as e:
                print("load_world failed , attempts={}".format(attempts), flush=True)
                print(e, flush=True)
                attempts += 1
                time.sleep(5 * TIME_SCALE)
        attempts = 0
        while attempts < 40:
            try:
                args.traffic_manager_port = find_free_port(args.traffic_manager_port)
                traffic_manager = TrafficManager(args.host, args.port, args.traffic_manager_port)
                print("traffic_manager init success, try_time={}".format(attempts), flush=True)
                break
            except Exception as e:
                print("traffic_manager init fail, try_time={}".format(attempts), flush=True)
                print(e, flush=True)
                attempts += 1
                time.sleep(5 * TIME_SCALE)
        return client, client_timeout, traffic_manager

    def _tick(self, frame):
        self.client.get_server_version()  # raises RuntimeError once the server is gone
        GameTime.on_carla_tick(_Timestamp(frame, frame / FRAME_RATE))

    def _register(self, config, entry, start, game, completion, infractions, failure):
        print("\033[1m> Registering the route statistics\033[0m", flush=True)
        self.stats.entry_status = entry
        length = sum(math.dist(a, b) for a, b in zip(config.keypoints, config.keypoints[1:]))
        self.stats.compute_route_statistics(
            config.index, length, game, time.monotonic() - start, completion, infractions, failure
        )

    def load_and_run(self, args, config):
        print("\n\033[1m========= Preparing {} (repetition {}) =========\033[0m".format(config.name, 0), flush=True)
        route_name = "{}_rep{}".format(config.name, config.repetition_index)
        scenario_name = config.scenario_names[0]
        save_name = "{}_{}_{}_{}_{}".format(route_name, config.town, scenario_name, None,
                                            datetime.now().strftime("%m_%d_%H_%M_%S"))  # fmt: skip
        self.stats.create_route_data(route_name, scenario_name, None, save_name, config.town, config.index)
        mode, failing = config.setting("standin", "perfect"), int(config.setting("standin_failing_attempts", "0"))
        if failing and _attempt(config) > failing:
            mode = "perfect"
        steps = int(float(config.setting("standin_sim_s", "2")) * FRAME_RATE)
        pace = float(config.setting("standin_wall_s", "0")) / max(steps, 1)
        start = time.monotonic()
        print("\033[1m> Loading the world\033[0m", flush=True)
        try:
            self._tick(0)
        except Exception:
            print("\n\033[91mThe scenario could not be loaded:", flush=True)
            print("\n{}\033[0m".format(traceback.format_exc()), flush=True)
            self._register(config, "Crashed", start, 0.0, 0.0, {}, "Simulation crashed")
            return True
        print("\033[1m> Setting up the agent\033[0m", flush=True)
        try:
            agent_class = getattr(self.module_agent, self.module_agent.get_entry_point())
            agent_class.get_ros_version()
            agent = agent_class(args.host, args.port, args.debug)
            gps = [location_to_gps(x, y, z) for x, y, z in config.keypoints]
            plan = [({"lat": lat, "lon": lon, "z": alt}, "LANEFOLLOW") for lat, lon, alt in gps]
            agent.set_global_plan(plan, [((x, y, z), "LANEFOLLOW") for x, y, z in config.keypoints])
            route_m = sum(math.dist(a, b) for a, b in zip(config.keypoints, config.keypoints[1:]))
            agent.sensor_interface.drive(
                [(lat, lon) for lat, lon, _ in gps], steps, route_m / max(steps / FRAME_RATE, 0.05)
            )
            args.agent_config = args.agent_config + "+" + save_name
            agent.setup(args.agent_config)
            if not self.sensors:
                self.sensors = agent.sensors()
                self.stats.sensors = [SENSORS_TO_ICONS[s["type"]] for s in self.sensors]
                self.stats.write()
        except Exception as e:
            print("\n\033[91mCould not set up the required agent:", flush=True)
            print("\n{}\033[0m".format(traceback.format_exc()), flush=True)
            print("{}\033[0m\n".format(e), flush=True)
            self._register(config, "Started", start, 0.0, 0.0, {}, "Agent couldn't be set up")
            return True
        print("\033[1m> Running the route\033[0m", flush=True)
        entry, failure, completion, infractions = "Started", "", 0.0, {}
        stop_at = steps // 2 if mode in MID_ROUTE else None
        step = 0
        try:
            for step in range(steps):
                began = time.monotonic()
                if step == stop_at and mode == "sim_crash":
                    os.killpg(self.server.pid, signal.SIGSEGV)
                    time.sleep(0.2)
                if step == stop_at and mode == "hang":
                    print("stand-in evaluator: hanging on purpose", flush=True)
                    while True:
                        time.sleep(3600)
                if step == stop_at and mode == "die":
                    os.kill(os.getpid(), signal.SIGKILL)
                self._tick(step + 1)
                try:
                    agent()
                except Exception as exc:
                    raise AgentError(exc) from exc
                time.sleep(max(0.0, pace - (time.monotonic() - began)))
            completion, infractions, failure = OUTCOMES[mode]
            entry = "Started"
        except AgentError:
            print("\n\033[91mStopping the route, the agent has crashed:", flush=True)
            print("\n{}\033[0m".format(traceback.format_exc()))
            completion, failure = 100.0 * step / max(steps, 1), "Agent crashed"
        except Exception:
            print("\n\033[91mError during the simulation:", flush=True)
            print("\n{}\033[0m".format(traceback.format_exc()), flush=True)
            entry, failure, completion = "Crashed", "Simulation crashed", 100.0 * step / max(steps, 1)
        print("\033[1m> Stopping the route\033[0m", flush=True)
        self._register(config, entry, start, step / FRAME_RATE, completion, infractions, failure)
        try:
            agent.destroy()
        except Exception:
            print("\n\033[91mFailed to stop the agent:", flush=True)
        return failure == "Simulation crashed"

    def run(self, args):
        configs = parse_routes(args.routes)
        if args.resume:
            self.stats.add_file_records()
        else:
            self.stats.clear_records()
        self.stats.progress = [0, len(configs)]
        self.stats.write()
        crashed = False
        for config in configs:
            crashed = self.load_and_run(args, config)
            print(crashed, flush=True)
            self.stats.progress = [config.index + 1, len(configs)]
            self.stats.write()
            if crashed:
                print("{} crash, [{}/{}], please restart".format(config.index + 1, config.index + 1, len(configs)),
                      flush=True)  # fmt: skip
                break
        if not crashed:
            print("\033[1m> Registering the global statistics\033[0m", flush=True)
            self.stats.compute_global_statistics(len(configs))
            self.stats.validate_and_write(crashed)
        else:
            crash_cleanup(args.gpu_rank)
        return crashed


def location_to_gps(x, y, z, lat_ref=0.0, lon_ref=0.0):
    """leaderboard/utils/route_manipulation.py `_location_to_gps`: a map location as GNSS reads it (the
    Mercator projection around the map's geo-reference, 0/0 when its OpenDRIVE has none)."""
    radius = 6378137.0
    scale = math.cos(lat_ref * math.pi / 180.0)
    mx = scale * lon_ref * math.pi * radius / 180.0 + x
    my = scale * radius * math.log(math.tan((90.0 + lat_ref) * math.pi / 360.0)) - y
    lon = mx * 180.0 / (math.pi * radius * scale)
    lat = 360.0 * math.atan(math.exp(my / (radius * scale))) / math.pi - 90.0
    return lat, lon, z


class _Timestamp(object):
    def __init__(self, frame, elapsed_seconds):
        self.frame = frame
        self.elapsed_seconds = elapsed_seconds


def _attempt(config):
    """This run's number for the route, counted in $STANDIN_STATE_DIR (for failing-then-passing routes)."""
    path = os.path.join(os.environ["STANDIN_STATE_DIR"], "{}.attempts".format(config.element.attrib["id"]))
    try:
        with open(path) as handle:
            count = int(handle.read().strip() or 0) + 1
    except OSError:
        count = 1
    with open(path, "w") as handle:
        handle.write(str(count))
    return count


def crash_cleanup(gpu_rank):
    """Upstream's line 507, run as it runs it (through /bin/sh, in a new session): GNU grep reads the pattern
    as options and fails, so it kills nothing (upstream-behaviour.md §2)."""
    cmd = "ps -ef | grep '-graphicsadapter=" + str(gpu_rank) + "' | grep -v grep | awk '{print $2}' | xargs -r kill -9"
    server = subprocess.Popen(["/bin/sh", "-c", cmd], preexec_fn=os.setsid)
    atexit.register(os.killpg, server.pid, signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser(description="CARLA AD Leaderboard Evaluation (stand-in)")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", default=2000, type=int)
    parser.add_argument("--traffic-manager-port", default=8000, type=int)
    parser.add_argument("--traffic-manager-seed", default=0, type=int)
    parser.add_argument("--debug", type=int, default=0)
    parser.add_argument("--record", type=str, default="")
    parser.add_argument("--timeout", default=600.0, type=float)
    parser.add_argument("--routes", required=True)
    parser.add_argument("--routes-subset", default="", type=str)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("-a", "--agent", type=str, required=True)
    parser.add_argument("--agent-config", type=str, default="")
    parser.add_argument("--track", type=str, default="SENSORS")
    parser.add_argument("--resume", type=bool, default=False)
    parser.add_argument("--checkpoint", type=str, default="./simulation_results.json")
    parser.add_argument("--debug-checkpoint", type=str, default="./live_results.txt")
    parser.add_argument("--gpu-rank", type=int, default=0)
    arguments = parser.parse_args()
    stats = Stats(arguments.checkpoint)
    evaluator = Evaluator(arguments, stats)
    crashed = evaluator.run(arguments)
    del evaluator
    sys.exit(-1 if crashed else 0)


if __name__ == "__main__":
    main()
