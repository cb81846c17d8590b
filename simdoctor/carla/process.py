"""The process backend: `CarlaUE4.sh` in its own session, output to the server's log file.

The packaged launcher is a /bin/sh script that runs the shipping binary as its child
(`"$UE4_PROJECT_ROOT/CarlaUE4/Binaries/Linux/CarlaUE4-Linux-Shipping" CarlaUE4 "$@"`, carla#4193):
killing the script alone leaves the server running, so the whole tree is stopped (proctree).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from simdoctor.config.agentenv import without_tokens
from simdoctor.system import proctree
from simdoctor.system.proctree import StopResult
from simdoctor.system.serverstate import ServerRecord


@dataclass
class Launched:
    record: ServerRecord
    popen: Optional[subprocess.Popen] = None  # set when this simdoctor process is the launcher's parent


class ProcessBackend:
    name = "process"

    def launch(self, record: ServerRecord) -> Launched:
        """Start the recorded command; the returned record carries the process tree."""
        popen, tree = proctree.start(
            record.command, Path(record.log), env=without_tokens(os.environ), cwd=Path(record.carla_root)
        )
        return Launched(replace(record, tree=tree), popen)

    def pids(self, record: ServerRecord) -> set[int]:
        return {p.pid for p in proctree.members(record.tree)} if record.tree else set()

    def alive(self, record: ServerRecord, launched: Optional[Launched] = None) -> bool:
        """While we are the launcher's parent, its running is enough (it waits for the server) and
        costs no scan of the process table; otherwise, or once it exited, look for the tree."""
        if launched is not None and launched.popen is not None and launched.popen.poll() is None:
            return True
        return bool(self.pids(record))

    def log_text(self, record: ServerRecord) -> str:
        return proctree.read_log(Path(record.log))

    def exit_status(self, launched: Launched) -> Optional[int]:
        return launched.popen.poll() if launched.popen is not None else None

    def stop(self, record: ServerRecord, grace: float, launched: Optional[Launched] = None) -> StopResult:
        if record.tree is None:
            return StopResult()
        return proctree.stop(record.tree, grace, popen=launched.popen if launched else None)
