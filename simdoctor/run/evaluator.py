"""One run of the Bench2Drive evaluator as processes: started through proctree, the CARLA it starts found
again, everything stopped whole and the process table checked.

The evaluator starts its own CARLA (`Popen(shell=True, preexec_fn=os.setsid)`, reference §1.3): a new
session, so stopping the evaluator's group does not reach it, and `find_free_port(--port)` may have moved
it to a higher port (its launch line in the log says which). The proctree cookie finds that server: CARLA
inherits it through the shell and setsid. Only processes carrying the cookie are the attempt's: a CARLA on
the attempt's port without it is someone else's (a server the user started by hand after a killed run), and
is never stopped. A process that cleared its environment is found by the supervisor instead (the sampler
saw it in the tree, or it was reparented to simdoctor, the subreaper).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.carla.command import PORT_FLAG
from simdoctor.config.recipe import CarlaRecipe
from simdoctor.system import procs, proctree
from simdoctor.system.procs import ProcessInfo
from simdoctor.system.proctree import StopResult, Tree


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


@dataclass
class EvaluatorRun:
    """One attempt's evaluator and how to find everything it started. Made before the start, so its
    identity (the cookie) can be recorded first; rebuilt from that record by a later simdoctor."""

    tree: Tree  # pid 0 until started
    log_file: Path
    log_offset: int  # where this attempt's output starts in the route's log
    carla_root: str
    carla: CarlaRecipe
    popen: Optional[subprocess.Popen] = None  # set when this process started it

    @classmethod
    def prepare(cls, log_file: Path, carla_root: str, carla: CarlaRecipe) -> EvaluatorRun:
        offset = log_file.stat().st_size if log_file.exists() else 0
        return cls(Tree(proctree.new_id(), 0, 0, procs.boot_id()), log_file, offset, carla_root, carla)

    def start(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        """Start the evaluator in its own session, its output appended to the route's log."""
        self.popen, self.tree = proctree.start(argv, self.log_file, env=env, cwd=Path(cwd), tree_id=self.tree.id)

    def log_text(self) -> str:
        return proctree.read_log(self.log_file, self.log_offset)

    def carla_port(self) -> Optional[int]:
        return launch_port(self.log_text(), self.carla.launcher)

    def processes(self) -> list[ProcessInfo]:
        """Every live process of the attempt: its cookie's tree, CARLA included. A process merely on the
        attempt's port is not adopted: on a resume it may be a CARLA the user started there by hand."""
        return proctree.members(self.tree)

    def carla_processes(self) -> list[ProcessInfo]:
        """The attempt's live processes that are its CARLA (the shell, the launcher, the server): those whose
        command line runs something under CARLA_ROOT."""
        return [p for p in self.processes() if _under(p, self.carla_root)]

    def stop(self, grace: float) -> StopResult:
        """TERM, then KILL after `grace`, whatever of the attempt still runs; `left` is what survived."""
        reap = self.popen.poll if self.popen is not None else (lambda: None)
        groups = {self.tree.pid} if self.tree.pid > 0 else set()
        return proctree.stop_found(self.processes, grace, groups=groups, reap=reap)
