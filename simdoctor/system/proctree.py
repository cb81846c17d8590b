"""Process trees simdoctor starts and must stop whole, with nothing left behind.

A command is started in its own session with its output appended to a log file, and with a cookie
in its environment (SIMDOCTOR_TREE=<id>) that every descendant inherits. Later, from any simdoctor
process, the tree is found again in the process table: the leader's process group and session, the
cookie (which survives `setsid` and reparenting to init: CARLA started by the Bench2Drive evaluator
with `preexec_fn=os.setsid` keeps it), and the descendants of all of these by parent pid.
Stopping sends TERM to the group and to every member, KILL after a grace period, then checks the
process table again: `StopResult.left` says what truly survived.

Generic: CARLA servers (`simdoctor carla`) and evaluator runs (`simdoctor run`) both use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from simdoctor.system import procs, safefile
from simdoctor.system.procs import ProcessInfo

COOKIE = "SIMDOCTOR_TREE"
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
OWNER = "SIMDOCTOR_OWNER"  # "<pid>:<start ticks>" of the simdoctor process that started the tree
POLL_S = 0.02
KILL_WAIT_S = 5.0


@dataclass(frozen=True)
class Tree:
    """Enough to find a started command's processes again, from another simdoctor process too."""

    id: str  # the cookie value
    pid: int  # the leader: it runs in its own session, so its pid is also the pgid and sid
    start_ticks: int
    boot_id: str


@dataclass(frozen=True)
class StopResult:
    terminated: list[int] = field(default_factory=list)  # pids sent TERM
    killed: list[int] = field(default_factory=list)  # pids still there after the grace period, sent KILL
    left: list[ProcessInfo] = field(default_factory=list)  # still in the process table at the end
    denied: list[int] = field(default_factory=list)  # pids we may not signal (another user's)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.left


def new_id() -> str:
    return uuid.uuid4().hex


def read_log(path: Path, offset: int = 0) -> str:
    """A log `start` writes, from `offset` (bytes) on (one attempt's output in a route's log); "" when it cannot
    be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_lines(path: Path, offset: int) -> tuple[str, int]:
    """The whole lines a log holds from `offset` on, and the offset after them (to read on from there)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return "", offset
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", "replace"), offset + end


def start(
    args: list[str],
    log: Path,
    env: Optional[dict[str, str]] = None,
    cwd: Optional[Path] = None,
    tree_id: Optional[str] = None,
) -> tuple[subprocess.Popen, Tree]:
    """Start `args` (never through a shell) in a new session, stdout and stderr appended to `log`.

    `tree_id`: a cookie chosen (and recorded) beforehand, so that a record written before the start
    finds the tree even when the caller dies before it learns the leader's pid."""
    tree_id = tree_id or new_id()
    full_env = dict(os.environ if env is None else env)
    full_env[COOKIE] = tree_id
    me = procs.process(os.getpid())
    full_env[OWNER] = f"{os.getpid()}:{me.start_ticks if me else 0}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with safefile.open_append(log) as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
            close_fds=True,
        )
    info = procs.process(proc.pid)
    return proc, Tree(tree_id, proc.pid, info.start_ticks if info else 0, procs.boot_id())


def become_subreaper() -> bool:
    """Make this process the subreaper of its descendants (Linux PR_SET_CHILD_SUBREAPER): one that left its
    tree with setsid and a cleared environment, then lost its parent, is reparented here instead of to init,
    so it can still be found (`orphans`), stopped and reaped. False where the kernel refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def orphans(table: list[ProcessInfo], leaders: set[int]) -> list[ProcessInfo]:
    """This subreaper's children that it did not start: descendants reparented to it. The children it starts
    itself run in its session, except the trees started with `start` (their leaders: `leaders`) and
    subproc.run_bounded's, which `simdoctor run` does not start while its routes run."""
    me, session = os.getpid(), os.getsid(0)
    return [p for p in table if p.ppid == me and p.sid != session and p.pid not in leaders]


def reap_orphans(leaders: set[int]) -> None:
    """Collect the exit status of orphans that ended (zombies), never that of a leader a Popen waits for."""
    for p in orphans(procs.processes(), leaders):
        if not procs.is_alive(p.pid):
            with contextlib.suppress(OSError):
                os.waitpid(p.pid, os.WNOHANG)


def descendants(roots: set[int], table: list[ProcessInfo]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p.pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def members(tree: Tree, table: Optional[list[ProcessInfo]] = None) -> list[ProcessInfo]:
    """Live processes of the tree, the leader included while it runs. A tree recorded before its start
    (pid 0: the leader's pid not known yet) is found by its cookie alone."""
    if tree.boot_id and tree.boot_id != procs.boot_id():
        return []  # recorded before a reboot: those pids name nothing now
    table = procs.processes() if table is None else table
    leader = next((p for p in table if p.pid == tree.pid), None)
    # The kernel keeps a pid reserved while any process uses it as pgid or sid; so a group or
    # session `tree.pid` is ours unless a different process now holds that very pid.
    group_is_ours = tree.pid > 0 and (leader is None or leader.start_ticks == tree.start_ticks)

    def ours(p: ProcessInfo) -> bool:
        if group_is_ours and tree.pid in (p.pgid, p.sid, p.pid):
            return True
        return p.pid != os.getpid() and (procs.environ(p.pid) or {}).get(COOKIE) == tree.id

    found = descendants({p.pid for p in table if ours(p)}, table)
    return [p for p in table if p.pid in found and procs.is_alive(p.pid)]


def listeners(port: int) -> list[ProcessInfo]:
    """Processes holding a listening TCP socket on `port` (other users' only when root)."""
    owners = procs.socket_owners(procs.listening_inodes(port))
    pids = sorted({pid for found in owners.values() for pid in found})
    return [p for p in map(procs.process, pids) if p is not None]


def live_owner(pid: int) -> Optional[int]:
    """The pid of the simdoctor process (a `simdoctor run`, say) that started `pid`'s tree, while that
    process still runs; None for a process simdoctor did not start, or whose simdoctor is gone."""
    env = procs.environ(pid) or {}
    owner, _, ticks = env.get(OWNER, "").partition(":")
    if COOKIE not in env or not owner.isdigit():
        return None
    info = procs.process(int(owner))
    alive = info is not None and procs.is_alive(info.pid) and str(info.start_ticks) == ticks
    return info.pid if alive else None


def named(name: str, table: Optional[Iterable[ProcessInfo]] = None) -> list[ProcessInfo]:
    """Live processes whose executable (or comm) is `name`."""
    table = procs.processes() if table is None else table
    return [p for p in table if procs.matches_name(p, name) and procs.is_alive(p.pid)]


def _signal(found: list[ProcessInfo], sig: int, groups: set[int], denied: set[int]) -> list[int]:
    sent = []
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            denied.add(pgid)
    for p in found:
        current = procs.process(p.pid)
        if current is None or current.start_ticks != p.start_ticks:
            continue  # gone, or the pid was reused in between
        try:
            os.kill(p.pid, sig)
            sent.append(p.pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            denied.add(p.pid)
    return sent


def _wait_gone(find: Callable[[], list[ProcessInfo]], seconds: float, reap: Callable[[], None]) -> list[ProcessInfo]:
    deadline = time.monotonic() + seconds
    while True:
        reap()
        found = find()
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_S)


def stop_found(
    find: Callable[[], list[ProcessInfo]],
    grace: float,
    groups: Iterable[int] = (),
    reap: Callable[[], None] = lambda: None,
) -> StopResult:
    """TERM what `find` returns (and the process `groups`), KILL what is left after `grace`, then
    check again: `find` is called anew each time, so children born meanwhile are caught too."""
    began = time.monotonic()
    denied: set[int] = set()
    found = find()
    if not found:
        return StopResult(seconds=round(time.monotonic() - began, 3))
    groups = set(groups) & {p.pgid for p in found}
    terminated = _signal(found, signal.SIGTERM, groups, denied)
    found = _wait_gone(find, grace, reap)
    killed: list[int] = []
    if found:
        killed = _signal(found, signal.SIGKILL, groups & {p.pgid for p in found}, denied)
        found = _wait_gone(find, KILL_WAIT_S, reap)
    return StopResult(terminated, killed, found, sorted(denied), round(time.monotonic() - began, 3))


def stop(tree: Tree, grace: float, popen: Optional[subprocess.Popen] = None) -> StopResult:
    """Stop every process of the tree; `popen` (when we are the leader's parent) is reaped too."""
    reap = popen.poll if popen is not None else (lambda: None)
    return stop_found(lambda: members(tree), grace, groups={tree.pid}, reap=reap)


def stop_processes(targets: list[ProcessInfo], grace: float) -> StopResult:
    """Stop given processes (not started by simdoctor) and their descendants, by (pid, start time)."""
    wanted = {(p.pid, p.start_ticks) for p in targets}

    def find() -> list[ProcessInfo]:
        table = procs.processes()
        roots = {p.pid for p in table if (p.pid, p.start_ticks) in wanted}
        found = descendants(roots, table)
        return [p for p in table if p.pid in found and procs.is_alive(p.pid)]

    return stop_found(find, grace)
