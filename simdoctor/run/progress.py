"""What `simdoctor run` shows while it runs: a live view on a terminal, plain log lines otherwise;
with --json (which prints only the final result on stdout) only the notes, on stderr.

The live view: routes done of the total, the Driving Score so far (over the routes decided so far),
an ETA from this run's pace, and one line per lane with its route, attempt, port and elapsed time. A lane
is where one route runs at a time: a local worker slot, or a Slurm array task (those come and go, and a
status line says what the queue holds). Plain mode prints one line per event (a route started, ended,
retried, a note), each with the time since the run began. Called from the slot threads.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

from simdoctor.run.runplan import Plan, Slot
from simdoctor.system import terminal

LIVE_REFRESH_PER_S = 2


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class Lane:
    """Where one route runs at a time."""

    key: str  # in plain lines: "slot 0", "task 12_3"
    title: str  # in the live view: "slot 0 (GPU 1)", "task 12_3 on node7"


def slot_lane(slot: Slot) -> Lane:
    gpu = f"GPU {slot.gpu}" if slot.gpu is not None else "no GPU"
    return Lane(f"slot {slot.index}", f"slot {slot.index} ({gpu})")


@dataclass
class _SlotLine:
    text: str = "idle"
    since: Optional[float] = None  # monotonic start of what it does, for the elapsed time


class Progress:
    def __init__(self, plan: Plan, finished_scores: dict[str, float], mode: str) -> None:
        """mode: "live" (rich, on a terminal), "lines" (plain), "quiet" (--json). The plan's slots are the
        lanes shown from the start; others appear when a route starts on them."""
        self.plan = plan
        self.mode = mode
        self.total = len(plan.tasks)
        self.scores = dict(finished_scores)  # route -> score_composed of each decided route (0: none)
        self.decided_now = 0
        self.began = time.monotonic()
        self.lanes = {lane.key: lane for lane in map(slot_lane, plan.slots)}
        self.lines = {key: _SlotLine() for key in self.lanes}
        self.state = ""  # a status line (the Slurm queue), shown in the header
        self._lock = threading.Lock()
        self._print_lock = threading.Lock()
        self._live = None
        self._console = None
        if mode == "live":
            self._console = terminal.console()

    def __enter__(self) -> Progress:
        if self.mode == "live":
            from rich.live import Live

            self._live = Live(get_renderable=self._render, console=self._console, refresh_per_second=LIVE_REFRESH_PER_S)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    # ---- events (state under the lock; printing outside it: the live view's refresh takes the console's
    # lock and then ours, so holding ours while printing could deadlock) ----

    def note(self, text: str) -> None:
        """Something to say once (a stale attempt stopped, the interruption); with --json on stderr."""
        if self.mode == "quiet":
            sys.stderr.write(f"simdoctor: {text}\n")
        else:
            self._say(text)

    def started(self, lane: Lane, route_id: str, town: str, number: int, ports: dict[str, int]) -> None:
        port = f"port {ports['rpc']}" if ports else "no port yet"
        with self._lock:
            self.lanes[lane.key] = lane
            self.lines[lane.key] = _SlotLine(f"route {route_id} ({town}) attempt {number}, {port}", time.monotonic())
        self._say(f"{lane.key}: route {route_id} ({town}) attempt {number} on {port}")

    def waiting(self, lane: Lane, why: str) -> None:
        with self._lock:
            self.lines[lane.key] = _SlotLine(f"waiting: {why}", time.monotonic())
        self._say(f"{lane.key}: waiting: {why}")

    def ended(self, lane: Lane, route_id: str, line: str, score: Optional[float], decided: bool) -> None:
        """A route's attempt ended; `decided`: the route is done (a result, or crashed for good)."""
        with self._lock:
            self.lines[lane.key] = _SlotLine()
            if decided:
                self.scores[route_id] = score or 0.0
                self.decided_now += 1
                line += f" · {self._summary()}"
        self._say(f"route {route_id}: {line}")

    def idle(self, lane: Lane) -> None:
        with self._lock:
            self.lines[lane.key] = _SlotLine()

    def close(self, lane: Lane) -> None:
        """The lane is gone (a Slurm array task left the queue)."""
        with self._lock:
            self.lanes.pop(lane.key, None)
            self.lines.pop(lane.key, None)

    def status(self, text: str) -> None:
        """The status line of the live view (said in plain mode when it changes)."""
        with self._lock:
            changed, self.state = text != self.state, text
        if changed and text and self.mode == "lines":
            self._say(text)

    # ---- rendering ----

    def _summary(self) -> str:
        done = len(self.scores)
        parts = [f"{done}/{self.total} routes done"]
        if self.state:
            parts.append(self.state)
        if self.scores:
            parts.append(f"DS so far {sum(self.scores.values()) / done:.2f}")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {clock(eta)}")
        return " · ".join(parts)

    def eta(self) -> Optional[float]:
        left = self.total - len(self.scores)
        if not self.decided_now:
            return None
        return (time.monotonic() - self.began) / self.decided_now * left

    def _say(self, text: str) -> None:
        line = f"[{clock(time.monotonic() - self.began)}] {text}"
        if self.mode == "lines":
            with self._print_lock:  # whole lines, from several slot threads
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        elif self._console is not None:  # above the live view while it shows
            self._console.print(line, markup=False, highlight=False)

    def _render(self):
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            lines = [Text(f"simdoctor run · {self.plan.out} · {self._summary()}", style="bold")]
            now = time.monotonic()
            for key, lane in self.lanes.items():
                state = self.lines[key]
                elapsed = f"  {clock(now - state.since)}" if state.since is not None else ""
                lines.append(Text(f"  {lane.title}: {state.text}{elapsed}"))
        return Group(*lines)
