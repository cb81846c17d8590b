"""`simdoctor run` under faults and hostile folders (issue 13): the real command as the non-root test user on the
stand-in stack. Nothing is written through a planted link, no token reaches the evaluator, a CARLA the user
started by hand is never stopped, a child that escaped the tree is found, and a full disk is one clear line."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_run import background, command, log_has, route, simdoctor_run, tasks, wait_for

from simdoctor.run import results
from simdoctor.system import procs, proctree
from tests.conftest import Stack

SECRET = "hf_never_on_a_node_0123456789"


def owned(stack: Stack, path: Path) -> Path:
    os.lchown(path, stack.rt.uid, stack.rt.gid)
    return path


def made(stack: Stack, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return owned(stack, path)


def plant(stack: Stack, link: Path, target: Path) -> None:
    """A symbolic link the test user owns, as that user (or another) would plant it."""
    link.symlink_to(target)
    owned(stack, link)


def test_a_planted_symlink_is_not_written_through(standin_stack: Stack) -> None:
    """`ln -s victim OUT/run.lock`, then `ln -s victim OUT/logs/1.log`: each run refuses the link with one line
    naming it, and the victim (a file of the same user) is untouched."""
    victim = standin_stack.home / "victim"
    victim.write_text("precious\n")
    owned(standin_stack, victim)
    out = made(standin_stack, standin_stack.home / "out")
    plant(standin_stack, out / "run.lock", victim)
    done = simdoctor_run(standin_stack, [route("1")])
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"cannot use {out} as the output folder: not a regular file of this user" in done.stderr
    assert f"({out}/run.lock)" in done.stderr and "internal error" not in done.stderr
    assert victim.read_text() == "precious\n" and not (out / "tasks").exists()
    (out / "run.lock").unlink()
    logs = made(standin_stack, out / "logs")
    plant(standin_stack, logs / "1.log", victim)
    done = simdoctor_run(standin_stack, [route("1")])
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"simdoctor: cannot write {logs}/1.log: not a regular file of this user" in done.stderr
    assert victim.read_text() == "precious\n"
    assert (out / "run.lock").is_file() and not (out / "run.lock").is_symlink()


def test_the_download_lock_is_not_written_through(simdoctor, hub, tmp_path: Path) -> None:
    """`ln -s victim DIR/.simdoctor/lock`, then `download ... --local-dir DIR` against the Hub stand-in."""
    from simdoctor.download import manifest

    hub.add_repo("org/model", {"README.md": b"# a model\n"})
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    local = tmp_path / "model"
    (local / manifest.STATE_DIR).mkdir(parents=True)
    (local / manifest.STATE_DIR / "lock").symlink_to(victim)
    done = simdoctor("download", "org/model", "--local-dir", str(local), env={"HF_ENDPOINT": hub.endpoint})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{local}/{manifest.STATE_DIR}/lock: not a regular file of this user" in done.stderr
    assert "internal error" not in done.stderr
    assert victim.read_text() == "precious\n" and not (local / "README.md").exists()


def cookie_processes(stack: Stack) -> list[procs.ProcessInfo]:
    """The test user's processes of this session that simdoctor started (they carry its tree cookie)."""
    return [p for p in stack.user_processes() if proctree.COOKIE in (procs.environ(p.pid) or {})]


def test_no_token_reaches_the_evaluator_the_agent_or_carla(standin_stack: Stack) -> None:
    specs = [route("1", "hang", standin_failing_attempts="1")]
    env = standin_stack.env(HF_TOKEN=SECRET, HUGGING_FACE_HUB_TOKEN=SECRET)
    run = subprocess.Popen(command(standin_stack, specs, "--route-timeout", "60"), env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: log_has(standin_stack, "1", "hanging on purpose"), "route 1 hanging")
        started = cookie_processes(standin_stack)
        assert any(procs.matches_name(p, "CarlaUE4-Linux-Shipping") for p in started), [p.command for p in started]
        assert (procs.environ(run.pid) or {}).get("HF_TOKEN") == SECRET  # simdoctor itself had it
        leaked = [p.command for p in started if SECRET in str(procs.environ(p.pid))]
        assert leaked == []
    finally:
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=60) == 130


def test_resume_leaves_a_carla_the_user_started_on_the_recorded_port(standin_stack: Stack) -> None:
    """simdoctor is killed with a route hanging; the user stops that route's CARLA and starts one by hand on the
    very port the attempt recorded. The rerun stops the stale evaluator (it carries the cookie) and leaves the
    user's CARLA running."""
    specs = [route("1", "hang", standin_failing_attempts="1")]
    first = background(standin_stack, specs, "--route-timeout", "60")
    try:
        wait_for(lambda: log_has(standin_stack, "1", "hanging on purpose"), "route 1 hanging")
        attempt = results.read_task(standin_stack.home / "out" / "tasks" / "1.json").last
    finally:
        first.kill()
        first.wait()
    stale = proctree.members(attempt.tree)
    carla = [p for p in stale if procs.matches_name(p, "CarlaUE4-Linux-Shipping") or "CarlaUE4.sh" in p.command]
    evaluator = [p for p in stale if p not in carla]
    assert carla and evaluator
    port = next(int(a.split("=")[1]) for p in carla for a in p.cmdline if a.startswith("-carla-rpc-port="))
    proctree.stop_processes(carla, grace=2)  # the user stops the stale CARLA ...
    wait_for(lambda: not procs.listening_inodes(port), "the port to be free")
    decoy = subprocess.Popen(standin_stack.rt.command([str(standin_stack.carla_root / "CarlaUE4.sh"),
                                                       "-RenderOffScreen", f"-carla-rpc-port={port}"]),
                             env=standin_stack.env(), start_new_session=True, stdout=subprocess.DEVNULL)  # fmt: skip
    try:  # ... and starts one by hand on the same port
        wait_for(lambda: procs.listening_inodes(port), "the user's CARLA")
        mine = [p for p in procs.processes() if p.sid == decoy.pid]
        # --retries 3: other suites' CARLAs on this machine may take a port between its check and CARLA's bind
        done = simdoctor_run(standin_stack, specs, "--route-timeout", "60", "--retries", "3")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "route 1 attempt 1 of an earlier run: stopped" in done.stdout
        assert [p for p in evaluator if procs.is_alive(p.pid)] == []
        assert all(procs.is_alive(p.pid) for p in mine) and procs.listening_inodes(port)
    finally:
        proctree.stop_processes([p for p in procs.processes() if p.sid == decoy.pid], grace=2)
        decoy.wait()
    assert tasks(standin_stack)["1"].final == "result"


def test_a_child_that_left_the_tree_is_found_stopped_and_reported(standin_stack: Stack) -> None:
    """The agent starts `setsid env -i sleep S` (own session, no environment: no cookie) and the route then ends
    normally: the sleep is stopped with the attempt, and the run says so."""
    mark = f"77.{os.getpid()}{int(time.monotonic() * 1000) % 100000}"  # a sleep no one else runs

    def sleepers() -> list[procs.ProcessInfo]:
        return [p for p in procs.processes() if p.uid == standin_stack.rt.uid and p.cmdline == ["sleep", mark]]

    done = subprocess.run(command(standin_stack, [route("1", standin_wall_s="2")], "--retries", "3"),
                          env=standin_stack.env(STANDIN_AGENT_ESCAPE=mark), capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    left = sleepers()
    proctree.stop_processes(left, grace=1)
    assert left == [], "the escaped child survived the run"
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"route 1 attempt \d: stopped 1 process\(es\) that had left its process tree: pid ", done.stdout)
    assert f"(sleep {mark})" in done.stdout
    record = tasks(standin_stack)["1"]
    assert record.final == "result" and record.last.steps.steps > 0  # its step file summarised for `report`


def fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def small_disk(standin_stack: Stack):
    """A 2 MiB tmpfs the test user owns (unmounted at the end)."""
    mount = standin_stack.home / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=2m,uid={standin_stack.rt.uid},gid={standin_stack.rt.gid}",
                    "tmpfs", str(mount)], check=True)  # fmt: skip
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=False)


def test_a_disk_that_fills_during_the_run_says_which_file(standin_stack: Stack, small_disk: Path) -> None:
    specs = [route("1", "hang", standin_failing_attempts="1")]
    out = small_disk / "out"
    cmd = command(standin_stack, specs, "--route-timeout", "3")
    cmd[cmd.index("--out") + 1] = str(out)
    run = subprocess.Popen(cmd, env=standin_stack.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out / "logs" / "1.log").exists() and "hanging on purpose" in
                 (out / "logs" / "1.log").read_text(errors="replace"), "route 1 hanging")  # fmt: skip
        fill(small_disk / "filler")  # the disk fills while the route runs
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 1, stdout + stderr
    assert f"simdoctor: cannot write {out}/tasks/1.json: No space left on device" in stderr, stderr
    assert "(None)" not in stderr and "internal error" not in stderr
    assert "Free space on that disk, then rerun the same command" in stderr
    assert standin_stack.user_processes() == []
    record = results.read_task(out / "tasks" / "1.json")  # the last record written whole; a rerun resumes it
    assert record is not None and record.last.ended is None
