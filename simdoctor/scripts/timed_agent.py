"""Timing wrapper agent: simdoctor passes this file as the evaluator's `--agent`.

The leaderboard loads an agent file by importing it (`sys.path.insert(0, dirname)`, module = file name),
calls its `get_entry_point()` for a class name, takes that class from the module, calls its static
`get_ros_version()`, builds it with `(host, port, debug)`, then `set_global_plan`, `setup(config)`,
`sensors()`, `track`, one `__call__` per simulation tick (which calls `run_step(input_data, timestamp)`)
and `destroy()` (Bench2Drive leaderboard_evaluator.py, autoagents/autonomous_agent.py).

Here `get_entry_point()` loads the user's agent file named by SIMDOCTOR_AGENT_FILE the same way, and
returns the name of a subclass of the user's class whose `run_step` is timed: isinstance, attributes
and the whole agent API stay the user's. Each step appends one JSON line to SIMDOCTOR_STEPS_FILE:
{"kind": "step", "step": n, "run_step_s": wall seconds in run_step, "sim_time": the timestamp the
evaluator passed, "wall": time.time() after the step}; `setup` writes {"kind": "setup", "setup_s": ...}.
The file is truncated by each new agent, so it holds the last attempt. A file that cannot be written
costs the timing, never the route.

With SIMDOCTOR_VIZ_EVERY=N (`simdoctor run --viz`), SimLingo's own debug drawing is switched on without
editing its file: the agent module's constant named by SIMDOCTOR_VIZ_FLAG (`DEBUG`, agent_simlingo.py:61,
read by `setup` to make its images folder and by `run_step` at line 691, `if DEBUG and self.step%5 == 0`) is
set before `setup` and, before each step, to whether that step is a multiple of N; upstream's own `% 5`
still applies, so N is a multiple of 5. The model's language answer is a local of run_step (line 686,
`pred_speed_wps, pred_route, language = self.model(model_input)`), so `self.model` is wrapped after setup in a
proxy that keeps the last answer. On each drawn step one JSON line goes to SIMDOCTOR_VIZ_FILE (truncated by
each new agent): {"step", "sim_time", "wall", "frame": the PNG upstream saved (`<save_path_img>/<step>.png`,
line 763) or null, "answer", "prompt" (`self.prompt`), "speed" (the speedometer, m/s), "progress" (share of
the route's GPS plan passed, from the GNSS reading)}. The frames only live until simdoctor has encoded them, so
Pillow's PNG writer gets zlib level 1 instead of its default 6 when the caller names none (`image.save(path)`
at line 763 names none): about 5x faster to write, ~10% larger (bench/viz_overhead.py).

Runs inside the agent's interpreter: standard library only, Python 3.8 compatible, no simdoctor import.
"""

import contextlib
import importlib
import json
import math
import os
import sys
import time

AGENT_FILE_ENV = "SIMDOCTOR_AGENT_FILE"
STEPS_FILE_ENV = "SIMDOCTOR_STEPS_FILE"
VIZ_EVERY_ENV = "SIMDOCTOR_VIZ_EVERY"
VIZ_FILE_ENV = "SIMDOCTOR_VIZ_FILE"
VIZ_FLAG_ENV = "SIMDOCTOR_VIZ_FLAG"


def _load_user_module(path):
    """Import the user's agent file exactly as the leaderboard imports an --agent file."""
    module_name = os.path.basename(path).split(".")[0]
    directory = os.path.dirname(path)
    if not sys.path or sys.path[0] != directory:
        sys.path.insert(0, directory)
    return importlib.import_module(module_name)


class _StepLog(object):
    """One JSON line per entry, line-buffered; a file that cannot be written is given up, with one note."""

    def __init__(self, path):
        self.path = path
        self.handle = None
        self.step = 0

    def write(self, entry):
        if not self.path:
            return
        try:
            if self.handle is None:
                # Never through a link planted in the steps folder (simdoctor removed the file before the start).
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
                self.handle = os.fdopen(os.open(self.path, flags, 0o644), "w", buffering=1)
            self.handle.write(json.dumps(entry) + "\n")
        except (OSError, ValueError, TypeError) as exc:
            sys.stderr.write("simdoctor timed_agent: step timing off, cannot write %s: %s\n" % (self.path, exc))
            self.path = None

    def close(self):
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
            self.handle = None


class _Answers(object):
    """Stands in for the agent's model: calls it and keeps the language answer of its last output
    (`(speed waypoints, route, language)`, `language[0]` the text, as agent_simlingo.py:686 and 758 use it)."""

    def __init__(self, model):
        self.__dict__["_simdoctor_model"] = model
        self.__dict__["_simdoctor_answer"] = None

    def __call__(self, *args, **kwargs):
        output = self._simdoctor_model(*args, **kwargs)
        try:
            language = output[2]
            text = language[0] if isinstance(language, (list, tuple)) else language
            self.__dict__["_simdoctor_answer"] = text if isinstance(text, str) else None
        except (TypeError, IndexError, KeyError):
            pass
        return output

    def __getattr__(self, name):
        return getattr(self._simdoctor_model, name)

    def __setattr__(self, name, value):
        setattr(self._simdoctor_model, name, value)


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _sensor(input_data, name):
    """The reading of sensor `name` from the leaderboard's input_data ({id: (frame, data)}), or None."""
    try:
        return input_data[name][1]
    except (TypeError, KeyError, IndexError):
        return None


class _Viz(object):
    """Switches the agent module's debug drawing on every N-th step and logs each drawn frame."""

    def __init__(self, module, every, flag, path):
        self.module = module
        self.every = every
        self.flag = flag
        self.log = _StepLog(path)
        self.route = []  # (lat, lon) of the global plan
        self.passed = 0

    def arm(self, step):
        setattr(self.module, self.flag, step % self.every == 0)

    def set_plan(self, plan_gps):
        route = []
        for point in plan_gps or []:
            try:
                gps = point[0]
                route.append((float(gps["lat"]), float(gps["lon"])))
            except (TypeError, KeyError, IndexError, ValueError):
                return
        self.route, self.passed = route, 0

    def progress(self, gnss):
        """The share of the plan's points passed: the nearest point at or after the last one passed, looking
        a few points ahead only, so a route that crosses itself does not jump (GPS degrees, scaled to metres)."""
        try:
            lat, lon = float(gnss[0]), float(gnss[1])
        except (TypeError, IndexError, ValueError):
            return None
        if len(self.route) < 2:
            return None
        scale = math.cos(math.radians(lat))
        window = range(self.passed, min(len(self.route), self.passed + 4))
        nearest = min(window, key=lambda i: (self.route[i][0] - lat) ** 2 + ((self.route[i][1] - lon) * scale) ** 2)
        self.passed = max(self.passed, nearest)
        return self.passed / (len(self.route) - 1)

    def record(self, agent, step, timestamp, input_data):
        if step % self.every:
            return
        images = agent.__dict__.get("save_path_img")
        frame = os.path.join(str(images), "%d.png" % step) if images else None
        model = agent.__dict__.get("model")
        speed = _sensor(input_data, "speed")
        prompt = agent.__dict__.get("prompt")
        self.log.write(
            {
                "step": step,
                "sim_time": _number(timestamp),
                "wall": time.time(),
                "frame": frame if frame and os.path.exists(frame) else None,
                "answer": model.__dict__.get("_simdoctor_answer") if isinstance(model, _Answers) else None,
                "prompt": prompt if isinstance(prompt, str) else None,
                "speed": _number(speed.get("speed")) if isinstance(speed, dict) else None,
                "progress": self.progress(_sensor(input_data, "gps")),
            }
        )


def _fast_png():
    """Pillow writes PNGs with zlib level 1 unless the caller asks for another (see the module docstring)."""
    try:
        from PIL import Image, PngImagePlugin
    except ImportError:
        return
    original = Image.SAVE.get("PNG", PngImagePlugin._save)
    if getattr(original, "simdoctor_fast", False):
        return

    def save(image, fp, filename, *args, **kwargs):
        image.encoderinfo.setdefault("compress_level", 1)
        return original(image, fp, filename, *args, **kwargs)

    save.simdoctor_fast = True
    Image.register_save("PNG", save)


def _viz_for(module):
    """The viz switch when SIMDOCTOR_VIZ_EVERY asks for it (and the module has the flag), else None."""
    every = os.environ.get(VIZ_EVERY_ENV)
    if not every:
        return None
    flag = os.environ.get(VIZ_FLAG_ENV) or "DEBUG"
    if not hasattr(module, flag):
        sys.stderr.write("simdoctor timed_agent: %s has no %s switch: --viz draws nothing\n" % (module.__name__, flag))
    _fast_png()
    return _Viz(module, max(1, int(every)), flag, os.environ.get(VIZ_FILE_ENV))


def timed(agent_class):
    """A subclass of `agent_class` that times setup and run_step into SIMDOCTOR_STEPS_FILE (and, with
    SIMDOCTOR_VIZ_EVERY, switches on the agent's own drawing and logs its frames)."""
    module = sys.modules.get(agent_class.__module__)

    class Timed(agent_class):
        def set_global_plan(self, global_plan_gps, global_plan_world_coord, *args, **kwargs):
            self._simdoctor_plan = global_plan_gps
            return super().set_global_plan(global_plan_gps, global_plan_world_coord, *args, **kwargs)

        def setup(self, *args, **kwargs):
            self._simdoctor_steps = _StepLog(os.environ.get(STEPS_FILE_ENV))
            viz = self._simdoctor_viz = _viz_for(module)
            if viz is not None:
                viz.arm(0)  # on while setup runs: it makes the images folder only when the switch is on
                viz.set_plan(self.__dict__.get("_simdoctor_plan"))
            start = time.perf_counter()
            result = super().setup(*args, **kwargs)
            self._simdoctor_steps.write({"kind": "setup", "setup_s": time.perf_counter() - start})
            model = self.__dict__.get("model")
            if viz is not None and model is not None and callable(model) and not isinstance(model, _Answers):
                self.__dict__["model"] = _Answers(model)
            return result

        def run_step(self, *args, **kwargs):
            log = self.__dict__.get("_simdoctor_steps")
            viz = self.__dict__.get("_simdoctor_viz")
            if viz is not None and log is not None:
                viz.arm(log.step)
            start = time.perf_counter()
            control = super().run_step(*args, **kwargs)
            elapsed = time.perf_counter() - start
            if log is not None:
                timestamp = args[1] if len(args) > 1 else kwargs.get("timestamp")
                if not isinstance(timestamp, (int, float)):
                    timestamp = None
                entry = {"kind": "step", "step": log.step, "run_step_s": elapsed, "sim_time": timestamp}
                entry["wall"] = time.time()
                log.write(entry)
                if viz is not None:
                    viz.record(self, log.step, timestamp, args[0] if args else kwargs.get("input_data"))
                log.step += 1
            return control

        def destroy(self, *args, **kwargs):
            try:
                return super().destroy(*args, **kwargs)
            finally:
                log = self.__dict__.get("_simdoctor_steps")
                if log is not None:
                    log.close()
                viz = self.__dict__.get("_simdoctor_viz")
                if viz is not None:
                    viz.log.close()

    Timed.__name__ = Timed.__qualname__ = "Timed" + agent_class.__name__
    Timed.__module__ = __name__
    Timed.__doc__ = agent_class.__doc__
    return Timed


def get_entry_point():
    """Load the user's agent, publish its timed subclass in this module, and return its name."""
    path = os.environ.get(AGENT_FILE_ENV)
    if not path:
        raise RuntimeError("simdoctor timed_agent: %s is not set (simdoctor sets it to the agent)" % AGENT_FILE_ENV)
    module = _load_user_module(path)
    agent_class = getattr(module, module.get_entry_point())
    name = "Timed" + agent_class.__name__
    if getattr(globals().get(name), "__bases__", None) != (agent_class,):  # the evaluator asks once per route
        globals()[name] = timed(agent_class)
    return name
