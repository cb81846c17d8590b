"""Run probes concurrently, each under its own deadline; a probe that raises or hangs becomes a
ProbeFailure in the facts, never an exception in the caller.

Probes run in daemon threads rather than a pool: a probe stuck in a C call (a wedged driver)
cannot be interrupted, and a pool would make the interpreter wait for it at exit.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from simdoctor.config.settings import Settings

if TYPE_CHECKING:
    from simdoctor.doctor.probes.slurm import SlurmIntent
from simdoctor.config.typed import DataError, from_data, to_data

FACTS_SCHEMA_VERSION = 1
# Modules under simdoctor.doctor.probes; each registers its probes when imported.
PROBE_MODULES = (
    "agent", "carla", "checkout", "display", "docker", "gpu", "network", "packages", "ports",
    "server", "servers", "slurm", "system", "viz", "vulkan", "weights", "window",
)  # fmt: skip
# The probes that wait on a subprocess the longest (the agent's interpreter, Vulkan's enumeration): `check`
# starts them before it imports the checks and the other probes, so that work runs beside theirs.
SLOW_PROBES = ("agent", "vulkan")


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may read besides the machine itself."""

    settings: Settings
    deep: bool = False
    slurm: Optional[SlurmIntent] = None  # set by `check --executor slurm`


@dataclass(frozen=True)
class Probe:
    name: str
    fn: Callable[[ProbeContext], Any]
    facts_type: type
    timeout: float
    description: str
    deep_timeout: Optional[float] = None  # for probes that do heavy work under --deep

    def deadline(self, deep: bool) -> float:
        return self.deep_timeout if deep and self.deep_timeout else self.timeout


@dataclass(frozen=True)
class ProbeFailure:
    """Why a probe produced no facts: it raised, or it ran past its timeout."""

    probe: str
    error: str
    timed_out: bool = False


@dataclass
class Facts:
    """Facts by probe name; a name maps to the probe's dataclass or to its ProbeFailure."""

    by_probe: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The probe's facts, or None when it did not run or failed (see `failure`)."""
        value = self.by_probe.get(name)
        return None if isinstance(value, ProbeFailure) else value

    def failure(self, name: str) -> Optional[ProbeFailure]:
        value = self.by_probe.get(name)
        return value if isinstance(value, ProbeFailure) else None


REGISTRY: dict[str, Probe] = {}


def probe(
    name: str, facts_type: type, timeout: float, description: str, deep_timeout: Optional[float] = None
) -> Callable:
    """Register a probe function under `name`."""

    def register(fn: Callable[[ProbeContext], Any]) -> Callable[[ProbeContext], Any]:
        REGISTRY[name] = Probe(name, fn, facts_type, timeout, description, deep_timeout)
        return fn

    return register


def _load_all() -> None:
    for module in PROBE_MODULES:
        importlib.import_module(f"simdoctor.doctor.probes.{module}")


def _registered(name: str) -> Probe:
    """The probe `name`, importing only its own module where that bears its name, every module otherwise."""
    if name not in REGISTRY and name in PROBE_MODULES:
        importlib.import_module(f"simdoctor.doctor.probes.{name}")
    if name not in REGISTRY:
        _load_all()
    return REGISTRY[name]


class Pending:
    """Probes under way; `wait()` collects them, each by its own deadline."""

    def __init__(self, names: list[str], ctx: ProbeContext) -> None:
        self._results: dict[str, Any] = {}
        self._durations: dict[str, float] = {}
        self._threads: dict[str, tuple[threading.Thread, float]] = {}
        self._names: list[str] = []
        self._ctx = ctx
        self.start(names)

    def start(self, names: list[str]) -> None:
        """Start those of `names` not yet under way; `wait()` then collects `names`, in that order."""
        for name in names:
            if name in self._threads:
                continue
            p = _registered(name)
            thread = threading.Thread(target=self._work, args=(p,), name=f"probe-{name}", daemon=True)
            self._threads[name] = (thread, time.monotonic() + p.deadline(self._ctx.deep))
            thread.start()
        self._names = list(names)

    def _work(self, p: Probe) -> None:
        start = time.monotonic()
        try:
            self._results[p.name] = p.fn(self._ctx)
        except Exception as exc:  # a probe must never take the caller down
            self._results[p.name] = ProbeFailure(p.name, f"{type(exc).__name__}: {exc}")
        self._durations[p.name] = round(time.monotonic() - start, 4)

    def wait(self) -> Facts:
        facts = Facts()
        for name in self._names:
            thread, deadline = self._threads[name]
            thread.join(max(0.0, deadline - time.monotonic()))
            if name in self._results:
                facts.by_probe[name] = self._results[name]
                facts.durations[name] = self._durations.get(name, 0.0)
            else:
                timeout = REGISTRY[name].deadline(self._ctx.deep)
                facts.by_probe[name] = ProbeFailure(name, f"no answer within {timeout:g}s", timed_out=True)
                facts.durations[name] = timeout
        return facts


def start_probes(names: list[str], ctx: ProbeContext) -> Pending:
    """Start every named probe at once, in daemon threads; the caller may work until `wait()`."""
    return Pending(names, ctx)


def run_probes(names: list[str], ctx: ProbeContext) -> Facts:
    return start_probes(names, ctx).wait()


def dump_facts(facts: Facts, path: Path) -> None:
    """Write facts as JSON so a machine's state can be replayed through the checks elsewhere."""
    probes = {}
    for name, value in facts.by_probe.items():
        if isinstance(value, ProbeFailure):
            probes[name] = {"failure": to_data(value)}
        else:
            probes[name] = {"facts": to_data(value)}
    payload = {"schema_version": FACTS_SCHEMA_VERSION, "probes": probes, "durations": facts.durations}
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")  # order matters: e.g. modules


def load_facts(path: Path) -> Facts:
    """Read a facts dump back into typed facts; raises ValueError with the reason when it cannot."""
    _load_all()
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read facts file {path}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("schema_version") != FACTS_SCHEMA_VERSION:
        raise ValueError(f"{path} is not a simdoctor facts dump (schema_version {FACTS_SCHEMA_VERSION})")
    facts = Facts(durations=dict(payload.get("durations", {})))
    for name, entry in payload.get("probes", {}).items():
        if name not in REGISTRY:
            raise ValueError(f"{path}: unknown probe {name!r}")
        try:
            if "failure" in entry:
                facts.by_probe[name] = from_data(ProbeFailure, entry["failure"], where=name)
            else:
                facts.by_probe[name] = from_data(REGISTRY[name].facts_type, entry["facts"], where=name)
        except DataError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return facts
