"""The check registry: a check is a pure function from facts to one Verdict, registered with @check by the
modules of simdoctor.doctor.checks (importing that package registers them all).

A check declares the probes it `needs` (it is skipped when one of them failed) and those it
`uses` when present. It returns a Verdict; the registry adds the id, group and title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from simdoctor.config.settings import Settings
from simdoctor.doctor.findings import Fix, Status
from simdoctor.doctor.probing import Facts

if TYPE_CHECKING:
    from simdoctor.doctor.probes.slurm import SlurmIntent


@dataclass(frozen=True)
class Verdict:
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    fix: Optional[Fix] = None


def ok(summary: str, details: Optional[list[str]] = None) -> Verdict:
    return Verdict(Status.OK, summary, details or [])


def skip(summary: str, details: Optional[list[str]] = None) -> Verdict:
    return Verdict(Status.SKIP, summary, details or [])


def warn(summary: str, fix: Optional[Fix] = None, details: Optional[list[str]] = None) -> Verdict:
    return Verdict(Status.WARN, summary, details or [], fix)


def fail(summary: str, fix: Optional[Fix] = None, details: Optional[list[str]] = None) -> Verdict:
    return Verdict(Status.FAIL, summary, details or [], fix)


@dataclass(frozen=True)
class CheckContext:
    """What a check may read besides the facts: the settings and what the user intends to do."""

    settings: Settings
    window: bool = False  # a visual session on an existing DISPLAY
    gpu: Optional[int] = 0  # the GPU a window would render on (`carla start --gpu`; None: CARLA's own pick)
    deep: bool = False
    backend: str = "process"  # process or docker
    slurm: Optional[SlurmIntent] = None  # `check --executor slurm`: the cluster's checks speak
    viz: bool = False  # `check --viz` / `run --viz`: recording SimLingo's own view


CheckFn = Callable[[Facts, CheckContext], Verdict]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    needs: tuple[str, ...]
    uses: tuple[str, ...]
    fn: CheckFn

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


CHECKS: list[Check] = []
# Report order: the machine first, then what runs on it, then what it downloads.
GROUPS = ("system", "gpu", "vulkan", "display", "carla", "docker", "slurm", "agent", "weights", "network", "viz")


def check(id: str, title: str, needs: tuple[str, ...], uses: tuple[str, ...] = ()) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        CHECKS.append(Check(id, title, needs, uses, fn))
        CHECKS.sort(key=lambda c: GROUPS.index(c.group))  # stable: registration order within a group
        return fn

    return register


def gib(n: Optional[float]) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}{'es' if word.endswith(('s', 'sh', 'ch', 'x')) else 's'}"
