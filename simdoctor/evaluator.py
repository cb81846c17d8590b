"""One run of the Bench2Drive evaluator as processes: started through proctree, the CARLA it starts found
again, everything stopped whole and the process table checked.

The evaluator starts its own CARLA (`Popen(shell=True, preexec_fn=os.setsid)`, reference §1.3): a new
session, so stopping the evaluator's group does not reach it, and `find_free_port(--port)` may have moved
it to a higher port. Two independent ways find that server:
- the proctree cookie, which CARLA inherits through the shell and setsid;
- its port and command line: the launch line the evaluator prints (`<CARLA_ROOT>/CarlaUE4.sh ...
  -carla-rpc-port=P -graphicsadapter=G`) gives P; processes of this user under this CARLA_ROOT, started
  after the evaluator, with -carla-rpc-port=P on their command line or listening on P..P+2, are it.
Either alone finds the server; both together still find it if one is lost (a wrapper clearing the
environment, a launcher printing nothing).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor import procs, proctree
from simdoctor.carla.command import PORT_FLAG
from simdoctor.procs import ProcessInfo
from simdoctor.proctree import StopResult, Tree
from simdoctor.recipe import CarlaRecipe


def launch_port(log_text: str, launcher: str) -> Optional[int]:
    """The RPC port on the first line that launches CARLA (the port find_free_port settled on)."""
    for line in log_text.splitlines():
        if launcher in line:
            match = PORT_FLAG.search(line)
            if match:
                return int(match.group(1))
    return None


def _under(p: ProcessInfo, carla_root: str) -> bool:
    root = carla_root.rstrip("/") + "/"
    return any(root in arg for arg in p.cmdline)


def carla_servers(
    carla_root: str,
    rpc_ports: Iterable[int],
    since_ticks: int,
    carla: CarlaRecipe,
    table: Optional[list[ProcessInfo]] = None,
) -> list[ProcessInfo]:
    """This user's CARLA processes under `carla_root` on one of `rpc_ports`, started at or after
    `since_ticks`, with their descendants: found by command line (-carla-rpc-port=P) or by who listens
    on P, P+1 or P+2."""
    table = procs.processes() if table is None else table
    ports = {int(p) for p in rpc_ports}
    if not ports:
        return []
    uid = os.getuid()

    def candidate(p: ProcessInfo) -> bool:
        return p.uid == uid and p.start_ticks >= since_ticks and _under(p, carla_root)

    found = set()
    for p in table:
        match = PORT_FLAG.search(p.command)
        if match and int(match.group(1)) in ports and candidate(p):
            found.add(p.pid)
    offsets = (0, carla.streaming_port_offset, carla.secondary_port_offset)
    inodes = {i for port in ports for offset in offsets for i in procs.listening_inodes(port + offset)}
    by_pid = {p.pid: p for p in table}
    for pids in procs.socket_owners(inodes).values():
        found.update(pid for pid in pids if pid in by_pid and candidate(by_pid[pid]))
    everything = proctree.descendants(found, table)
    return [p for p in table if p.pid in everything and procs.is_alive(p.pid)]


@dataclass
class EvaluatorRun:
    """One attempt's evaluator and how to find everything it started. Made before the start, so its
    identity (the cookie) can be recorded first; rebuilt from that record by a later simdoctor."""

    tree: Tree  # pid 0 until started
    log_file: Path
    log_offset: int  # where this attempt's output starts in the route's log
    carla_root: str
    planned_port: Optional[int]  # the --port given; CARLA may have moved up from it
    carla: CarlaRecipe
    popen: Optional[subprocess.Popen] = None  # set when this process started it

    @classmethod
    def prepare(cls, log_file: Path, carla_root: str, planned_port: int, carla: CarlaRecipe) -> EvaluatorRun:
        offset = log_file.stat().st_size if log_file.exists() else 0
        return cls(Tree(proctree.new_id(), 0, 0, procs.boot_id()), log_file, offset, carla_root, planned_port, carla)

    def start(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        """Start the evaluator in its own session, its output appended to the route's log."""
        self.popen, self.tree = proctree.start(argv, self.log_file, env=env, cwd=Path(cwd), tree_id=self.tree.id)

    def log_text(self) -> str:
        return proctree.read_log(self.log_file, self.log_offset)

    def carla_port(self) -> Optional[int]:
        return launch_port(self.log_text(), self.carla.launcher)

    def processes(self) -> list[ProcessInfo]:
        """Every live process of the attempt: the cookie's tree and the CARLA on its port."""
        table = procs.processes()
        found = {p.pid: p for p in proctree.members(self.tree, table)}
        if not self.tree.boot_id or self.tree.boot_id == procs.boot_id():
            ports = {p for p in (self.planned_port, self.carla_port()) if p}
            for p in carla_servers(self.carla_root, ports, self.tree.start_ticks, self.carla, table):
                cookie = (procs.environ(p.pid) or {}).get(proctree.COOKIE)
                if cookie in (None, self.tree.id):  # another cookie: another attempt's or server's
                    found.setdefault(p.pid, p)
        return sorted(found.values(), key=lambda p: p.pid)

    def carla_processes(self) -> list[ProcessInfo]:
        """The attempt's live processes that are its CARLA (the shell, the launcher, the server): those whose
        command line runs something under CARLA_ROOT."""
        return [p for p in self.processes() if _under(p, self.carla_root)]

    def stop(self, grace: float) -> StopResult:
        """TERM, then KILL after `grace`, whatever of the attempt still runs; `left` is what survived."""
        reap = self.popen.poll if self.popen is not None else (lambda: None)
        groups = {self.tree.pid} if self.tree.pid > 0 else set()
        return proctree.stop_found(self.processes, grace, groups=groups, reap=reap)
