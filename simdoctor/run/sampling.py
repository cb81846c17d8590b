"""Peak GPU memory and peak RAM of running process trees, sampled in one background thread.

Each watched tree is its root (the evaluator) and every descendant seen since (CARLA is the evaluator's
grandchild, through the shell it is started with); a process seen once stays watched while it lives,
even after its parent died and it was reparented. RAM is the sum of the processes' resident sets
(/proc/<pid>/statm); GPU memory the sum of what NVML attributes to their pids, compute and graphics
(CARLA renders through Vulkan: a graphics process). Without NVML the GPU peak is None, not 0.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from simdoctor.doctor.probes.gpu import nvml_session, read_gpus
from simdoctor.system import procs, proctree


@dataclass(frozen=True)
class Peaks:
    gpu_bytes: Optional[int]  # None: NVML not available
    ram_bytes: Optional[int]  # None: never sampled


@dataclass
class _Watched:
    root: int
    seen: set[tuple[int, int]] = field(default_factory=set)  # (pid, start_ticks)
    gpu: Optional[int] = None
    ram: Optional[int] = None


class PeakSampler:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._sampling = threading.Lock()  # one sample at a time: the thread's, or a watch's first
        self._watched: dict[str, _Watched] = {}
        self._stop = threading.Event()
        self._nvml: Any = None
        self._thread = threading.Thread(target=self._loop, name="peak-sampler", daemon=True)

    def __enter__(self) -> PeakSampler:
        try:
            self._nvml = nvml_session()
        except RuntimeError:
            self._nvml = None
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._nvml is not None:
            self._nvml.nvmlShutdown()

    def watch(self, key: str, root_pid: int) -> None:
        with self._lock:
            self._watched[key] = _Watched(root_pid)
        self.sample()

    def seen(self, key: str) -> set[tuple[int, int]]:
        """(pid, start ticks) of every process seen in the tree so far, those that left it included."""
        with self._lock:
            w = self._watched.get(key)
            return set(w.seen) if w is not None else set()

    def release(self, key: str) -> Peaks:
        with self._lock:
            w = self._watched.pop(key, None)
        return Peaks(None, None) if w is None else Peaks(w.gpu, w.ram)

    def _gpu_usage(self) -> Optional[dict[int, int]]:
        if self._nvml is None:
            return None
        try:
            gpus = read_gpus(self._nvml)
        except self._nvml.NVMLError:
            return None
        used: dict[int, int] = {}
        for gpu in gpus:
            for p in gpu.processes:
                used[p.pid] = used.get(p.pid, 0) + (p.used_bytes or 0)
        return used

    def sample(self) -> None:
        """One sample of every watched tree (also called at each watch, so short runs get one)."""
        with self._sampling:
            self._sample()

    def _sample(self) -> None:
        table = procs.processes()
        starts = {p.pid: p.start_ticks for p in table}
        gpu = self._gpu_usage()
        with self._lock:
            watched = list(self._watched.values())
        for w in watched:
            known = {pid for pid, ticks in w.seen if starts.get(pid) == ticks} | {w.root}
            pids = [pid for pid in proctree.descendants(known, table) if pid in starts]
            w.seen |= {(pid, starts[pid]) for pid in pids}
            ram = sum(filter(None, map(procs.rss_bytes, pids)))
            w.ram = max(w.ram or 0, ram)
            if gpu is not None:
                w.gpu = max(w.gpu or 0, sum(gpu.get(pid, 0) for pid in pids))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
