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

Runs inside the agent's interpreter: standard library only, Python 3.8 compatible, no simdoctor import.
"""

import contextlib
import importlib
import json
import os
import sys
import time

AGENT_FILE_ENV = "SIMDOCTOR_AGENT_FILE"
STEPS_FILE_ENV = "SIMDOCTOR_STEPS_FILE"


def _load_user_module(path):
    """Import the user's agent file exactly as the leaderboard imports an --agent file."""
    module_name = os.path.basename(path).split(".")[0]
    directory = os.path.dirname(path)
    if not sys.path or sys.path[0] != directory:
        sys.path.insert(0, directory)
    return importlib.import_module(module_name)


class _StepLog(object):
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


def timed(agent_class):
    """A subclass of `agent_class` that times setup and run_step into SIMDOCTOR_STEPS_FILE."""

    class Timed(agent_class):
        def setup(self, *args, **kwargs):
            self._simdoctor_steps = _StepLog(os.environ.get(STEPS_FILE_ENV))
            start = time.perf_counter()
            result = super().setup(*args, **kwargs)
            self._simdoctor_steps.write({"kind": "setup", "setup_s": time.perf_counter() - start})
            return result

        def run_step(self, *args, **kwargs):
            start = time.perf_counter()
            control = super().run_step(*args, **kwargs)
            elapsed = time.perf_counter() - start
            log = self.__dict__.get("_simdoctor_steps")
            if log is not None:
                timestamp = args[1] if len(args) > 1 else kwargs.get("timestamp")
                if not isinstance(timestamp, (int, float)):
                    timestamp = None
                entry = {"kind": "step", "step": log.step, "run_step_s": elapsed, "sim_time": timestamp}
                entry["wall"] = time.time()
                log.write(entry)
                log.step += 1
            return control

        def destroy(self, *args, **kwargs):
            try:
                return super().destroy(*args, **kwargs)
            finally:
                log = self.__dict__.get("_simdoctor_steps")
                if log is not None:
                    log.close()

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
