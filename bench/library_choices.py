"""simdoctor's hand-written MessagePack codec and /proc walker beside the libraries that could replace them.

Issue 15 asks, per module, to measure both choices in the same run and then adopt the library or keep the code:
- the hand-written codec of rpc.py's msgpack-rpc `version` call (simdoctor/msgpack.py, read from git at
  HANDWRITTEN, the last commit that shipped it, since the msgpack package was adopted) against that package;
- simdoctor.system.procs (the process table proctree builds on, kept) against psutil.
For each it prints side by side:
- import time in a fresh interpreter, median of --runs: bare, and on top of the standard-library modules
  `simdoctor check` imports anyway (what the choice would add to check's start-up, whose goal is <= 0.2 s);
- the operations simdoctor performs with it: encode the request and decode the replies rpc.py reads (whole,
  and arriving in two pieces); one scan of the process table as `check` and the run supervisor make it
  (proctree.members, which reads every process's environ for a tree's cookie, and proctree.listeners, the
  owners of a listening port), against a live tree of --procs processes started with proctree.start;
- the lines adopting the library removes (msgpack) or would remove (psutil).

    .venv/bin/python bench/library_choices.py [--runs 15] [--rounds 20000] [--scans 30] [--procs 40]

Needs psutil (`pip install -e '.[bench]'`), git and Python >= 3.10 (sys.stdlib_module_names).
"""

from __future__ import annotations

import argparse
import ast
import compileall
import contextlib
import functools
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

try:
    import msgpack
    import psutil
except ImportError as exc:
    sys.exit(f"{exc.name} is not installed here: {sys.executable} -m pip install -e '{REPO}[bench]'")

from simdoctor.system import procs, proctree  # noqa: E402

HANDWRITTEN = "2a2c4ad824e68a9369555900de7a9f587a24984a"  # main before issue 15 adopted the msgpack package

VERSION_REPLY = [1, 7, None, [[1, "0.9.15"]]]
ERROR_REPLY = [1, 8, "rpclib: server could not find function 'load_world' with argument count 0.", None]

# Functions of procs.py psutil has an equivalent for; the rest (matches_name, boot_id) is simdoctor's own.
PSUTIL_EQUIVALENTS = {
    "_stat_fields": "Process.ppid/name/create_time",
    "process": "psutil.Process (no pgid/sid: os.getpgid/os.getsid; start as a float)",
    "age": "Process.create_time",
    "pids": "psutil.pids",
    "processes": "psutil.process_iter",
    "is_alive": "Process.is_running + status",
    "environ": "Process.environ",
    "rss_bytes": "Process.memory_info().rss",
    "socket_owners": "psutil.net_connections",
    "listening_inodes": "psutil.net_connections",
    "listening": "psutil.net_connections",
}


def check_stdlib_modules() -> list[str]:
    """The standard-library modules `simdoctor check` imports, read from its -X importtime trace."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simdoctor", "check"],
        capture_output=True, text=True, cwd=REPO, env=env, check=False,
    ).stderr  # fmt: skip
    names = []
    for line in trace.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name.split(".")[0] in sys.stdlib_module_names and name != "__main__":
                names.append(name)
    return names


def import_seconds(module: str, preload: Iterable[str], runs: int, path: str = "") -> float:
    """Median wall time of `import module` in a fresh interpreter that has imported `preload` first (a trace
    also names the modules a platform lacks, such as _winapi, whose import check tried and caught)."""
    code = f"for m in {list(preload)!r}:\n    try:\n        __import__(m)\n    except ImportError:\n        pass\n"
    code += f"import time\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = path
    times = []
    for _ in range(runs + 1):  # the first run warms the page cache and is dropped
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
        if done.returncode != 0:
            sys.exit(f"import {module} failed: {done.stderr[-500:]}")
        times.append(float(done.stdout))
    return statistics.median(times[1:])


def per_call(fn: Callable[[], object], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def from_git(path: str) -> str:
    return subprocess.run(["git", "show", f"{HANDWRITTEN}:{path}"], capture_output=True, text=True, cwd=REPO,
                          check=True).stdout  # fmt: skip


def codec_ours(ours_msgpack: ModuleType) -> tuple:
    request = ours_msgpack.packb([0, 7, "version", []])
    reply = ours_msgpack.packb(VERSION_REPLY)
    error = ours_msgpack.packb(ERROR_REPLY)
    whole = ours_msgpack.unpack_from(reply)[0]
    with contextlib.suppress(ours_msgpack.Incomplete):  # rpc.call's loop: a first piece is Incomplete
        ours_msgpack.unpack_from(error[:20])
    return request, whole, ours_msgpack.unpack_from(error)[0]


def codec_library() -> tuple:
    request = msgpack.packb([0, 7, "version", []])
    reply = msgpack.packb(VERSION_REPLY)
    error = msgpack.packb(ERROR_REPLY)
    whole = msgpack.unpackb(reply)
    unpacker = msgpack.Unpacker()  # the streaming reader a socket loop would feed
    unpacker.feed(error[:20])
    first = next(unpacker, None)
    unpacker.feed(error[20:])
    return request, whole, first or next(unpacker)


def function_lines(source: str, names: Iterable[str]) -> int:
    tree = ast.parse(source)
    wanted = set(names)
    return sum(n.end_lineno - n.lineno + 1 for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted)


def test_lines(source: str, names: Iterable[str]) -> int:
    """Lines of the named test functions and module-level assignments (their data)."""
    tree = ast.parse(source)
    wanted = set(names)
    total = 0
    for n in tree.body:
        named = n.name if isinstance(n, ast.FunctionDef) else getattr(getattr(n, "targets", [None])[0], "id", None)
        if named in wanted:
            total += n.end_lineno - n.lineno + 1 + len(getattr(n, "decorator_list", []))
    return total


def start_tree(count: int, log: Path) -> tuple[proctree.Tree, int]:
    """A leader listening on a loopback port, with `count` sleeping children (one in its own session)."""
    script = (
        "import socket, subprocess, sys, time\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        f"kids = [subprocess.Popen(['sleep', '600'], start_new_session=i == 0) for i in range({count})]\n"
        "print(s.getsockname()[1], flush=True)\n"
        "time.sleep(600)\n"
    )
    _, tree = proctree.start([sys.executable, "-c", script], log)
    deadline = time.monotonic() + 30
    while not log.read_text().strip():
        if time.monotonic() > deadline:
            sys.exit(f"the bench's process tree did not start: {log.read_text()}")
        time.sleep(0.05)
    while len(proctree.members(tree)) < count + 1:
        time.sleep(0.05)
    return tree, int(log.read_text().split()[0])


def scan_ours(tree: proctree.Tree, port: int) -> tuple:
    members = {p.pid for p in proctree.members(tree)}
    return members, {p.pid for p in proctree.listeners(port)}


def scan_psutil(tree: proctree.Tree, port: int) -> tuple:
    """proctree.members and proctree.listeners with psutil's data; the tree is built from the table's ppids (as
    proctree does: psutil's children(recursive=True) rescans the whole table per root)."""
    table = []
    for p in psutil.process_iter(["ppid", "environ", "status"]):
        try:
            table.append((p.pid, p.info["ppid"], os.getpgid(p.pid), os.getsid(p.pid), p.info["environ"] or {}, p))
        except ProcessLookupError:
            continue
    me = os.getpid()
    roots = {
        pid for pid, _, pgid, sid, env, _ in table
        if tree.pid in (pid, pgid, sid) or (pid != me and env.get(proctree.COOKIE) == tree.id)
    }  # fmt: skip
    found = proctree.descendants(roots, [procs.ProcessInfo(pid, ppid, 0, 0, 0, "", []) for pid, ppid, *_ in table])
    members = {pid for pid, *_, p in table if pid in found and p.info["status"] != psutil.STATUS_ZOMBIE}
    listeners = {
        c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }  # fmt: skip
    return members, listeners


def medians(fns: list[Callable[[], object]], times: int) -> list[float]:
    """Median seconds of each function, called in turn so that the load of a shared machine falls on all alike."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(times):
        for fn, took in zip(fns, samples):
            start = time.perf_counter()
            fn()
            took.append(time.perf_counter() - start)
    return [statistics.median(took) for took in samples]


def row(label: str, ours: str, theirs: str) -> None:
    print(f"  {label:<44} {ours:>18} {theirs:>18}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per import figure")
    parser.add_argument("--rounds", type=int, default=20000, help="codec rounds timed")
    parser.add_argument("--scans", type=int, default=30, help="process-table scans timed (median)")
    parser.add_argument("--procs", type=int, default=40, help="children in the bench's process tree")
    args = parser.parse_args()

    compileall.compile_dir(REPO / "simdoctor", quiet=1)
    baseline = check_stdlib_modules()
    print(f"python {sys.version.split()[0]}; msgpack {msgpack.version} ({msgpack.Packer.__module__}); "
          f"psutil {psutil.__version__}; check imports {len(baseline)} standard-library modules")  # fmt: skip

    print(f"\nMessagePack (rpc.py's msgpack-rpc wire); the hand-written codec as of {HANDWRITTEN[:7]}")
    row("", "hand-written", "msgpack")
    codec = from_git("simdoctor/msgpack.py")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "handwritten_msgpack.py").write_text(codec)
        for label, preload in (("import, bare interpreter (ms)", []), ("import, after check's stdlib (ms)", baseline)):
            mine = import_seconds("handwritten_msgpack", preload, args.runs, tmp)
            theirs = import_seconds("msgpack", preload, args.runs)
            row(label, f"{mine * 1e3:.2f}", f"{theirs * 1e3:.2f}")
        sys.path.insert(0, tmp)
        ours = functools.partial(codec_ours, importlib.import_module("handwritten_msgpack"))
    if ours() != codec_library():
        print("  !! the two codecs disagree on rpc.py's messages")
        return 1
    mine, theirs = per_call(ours, args.rounds), per_call(codec_library, args.rounds)
    row("request + 2 replies, encode+decode (us)", f"{mine * 1e6:.1f}", f"{theirs * 1e6:.1f}")
    codec_tests = test_lines(
        from_git("tests/test_wire.py"),
        ("VALUES", "test_pack_matches_the_reference_implementation", "test_truncated_input_is_incomplete_not_garbage"),
    )  # fmt: skip
    row("lines adopting it removes (module + tests)", "-", f"{len(codec.splitlines())} + {codec_tests}")

    print(f"\nProcess table (procs.py under proctree.py), a tree of {args.procs + 1} processes")
    row("", "hand-written", "psutil")
    for label, preload in (("import, bare interpreter (ms)", []), ("import, after check's stdlib (ms)", baseline)):
        mine = import_seconds("simdoctor.system.procs", preload, args.runs)
        theirs = import_seconds("psutil", preload, args.runs)
        row(label, f"{mine * 1e3:.2f}", f"{theirs * 1e3:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tree, port = start_tree(args.procs, Path(tmp) / "tree.log")
        try:
            a, b = scan_ours(tree, port), scan_psutil(tree, port)
            same = "yes" if a == b else f"NO: ours {a}, psutil {b}"
            mine, theirs = medians([lambda: scan_ours(tree, port), lambda: scan_psutil(tree, port)], args.scans)
        finally:
            stopped = proctree.stop(tree, grace=2.0)
    print(f"  ({len(psutil.pids())} processes on this host; both found the same members and port owner: {same}; "
          f"tree stopped clean: {stopped.clean})")  # fmt: skip
    row("scan: members by cookie + port owner (ms)", f"{mine * 1e3:.2f}", f"{theirs * 1e3:.2f}")
    table = (REPO / "simdoctor" / "system" / "procs.py").read_text()
    replaceable = function_lines(table, PSUTIL_EQUIVALENTS)
    row("lines of procs.py with a psutil equivalent", "-", f"{replaceable} of {len(table.splitlines())}")
    print("  (an adapter to ProcessInfo stays either way: psutil has no pgid, sid or start ticks, which\n"
          "   proctree.members, the SIMDOCTOR_OWNER mark and the state records use)")  # fmt: skip
    return 0 if same == "yes" else 1


if __name__ == "__main__":
    sys.exit(main())
