"""`simdoctor watch OUT` in a real headless Chromium while a real `simdoctor run --viz` drives the stand-in stack
(two slots), through the run's crash (SIGKILL), its resumption and its end; the token checked with plain HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import builders
import pytest

from tests.browser import Browser, not_blank
from tests.conftest import Stack
from tests.test_run import command
from tests.test_viz import keep_screenshot


def route(route_id: str, wall_s: str) -> dict:
    spec = builders.standin_route(route_id, "perfect", standin_sim_s=wall_s, standin_wall_s=wall_s)
    return {**spec, "points": 12}  # a route with a GPS plan of 12 points: progress moves


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_watch(stack: Stack, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(stack.rt.simdoctor("watch", str(stack.home / "out"), "--port", "0", *extra),
                            env=stack.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    first = proc.stdout.readline()
    assert first.startswith("simdoctor watch: http://"), first + proc.stderr.read()
    return proc, first.split(": ", 1)[1].strip()


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=15)


@pytest.fixture
def browser(tmp_path):
    opened = Browser(tmp_path / "chromium-profile")
    yield opened
    opened.close()


def test_watch_follows_a_run_through_crash_resume_and_end(standin_stack: Stack, browser: Browser, tmp_path) -> None:
    specs = [route("1", "6"), route("2", "6"), route("3", "3")]
    run_command = command(standin_stack, specs, "--viz", "--workers-per-gpu", "2", "--route-timeout", "60")
    watch, url = start_watch(standin_stack)  # before the run has made its folder: the page fills in later
    run = subprocess.Popen(run_command, env=standin_stack.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = url.split("/?", 1)[0]
        # The token: without it (or with another) nothing is served, the page, the state or a frame.
        for path in ("/", "/api/state", "/frame/1"):
            assert get(base + path)[0] == 403
            assert get(base + path + "?token=not-the-token")[0] == 403
        assert get(base + "/api/state", {"Cookie": "simdoctor_watch=guess"})[0] == 403
        assert url.startswith("http://127.0.0.1:")  # loopback unless --host asks

        assert browser.open(url).get("status") == 200
        images = "Array.from(document.querySelectorAll('.slot img'))"
        browser.wait_for(f"{images}.length == 2 && {images}.every(i => i.naturalWidth == 1024)")
        first = browser.evaluate("document.querySelector('.slot img').dataset.src")
        browser.wait_for(f"document.querySelector('.slot img').dataset.src != {json.dumps(first)}")  # it moves
        text = browser.evaluate("document.body.innerText")
        assert "run in progress (pid" in text and "slot 0" in text and "slot 1" in text and "km/h" in text
        answers = ("Accelerate to reach", "Maintain the current speed", "Slow down for", "Follow the lane")
        assert any(answer in text for answer in answers), text
        progress = browser.evaluate("document.querySelector('.bar i').style.width")
        assert 0 < float(progress.rstrip("%")) <= 100
        shot = browser.screenshot(tmp_path / "watch.png")
        keep_screenshot(shot)
        assert not_blank(shot) > 50

        # The run dies (SIGKILL, as an OOM kill): the page says nothing runs, and keeps answering.
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        browser.wait_for("document.body.innerText.includes('no run is using this folder')")
        assert browser.evaluate("document.querySelectorAll('.slot').length") == 0
        # Resumed: the same command stops the dead run's evaluators and drives the routes again.
        rerun = subprocess.run(run_command, env=standin_stack.env(), capture_output=True, text=True, timeout=180)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        browser.wait_for("document.getElementById('done').textContent == '3' && "
                         "document.body.innerText.includes('no run is using this folder')")  # fmt: skip
        ended = browser.evaluate("document.body.innerText")
        assert "no run is using this folder" in ended and "Driving Score so far 100.00" in ended.replace("\n", " ")
        assert get(base + "/api/state?token=" + url.rsplit("=", 1)[1])[0] == 200
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        assert stop(watch) == 0


def test_watch_refuses_what_is_not_a_run_folder_and_bad_hosts(standin_stack: Stack) -> None:
    done = subprocess.run(standin_stack.rt.simdoctor("watch", str(standin_stack.home)), env=standin_stack.env(),
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and "is not a `simdoctor run` output folder" in done.stderr
    (standin_stack.home / "out" / "routes").mkdir(parents=True)
    done = subprocess.run(standin_stack.rt.simdoctor("watch", str(standin_stack.home / "out"), "--host", "example"),
                          env=standin_stack.env(), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and "--host 'example': give an IP address" in done.stderr


def test_watch_on_a_file_is_one_line_and_exit_2(home: Path, tmp_path: Path) -> None:
    """A file given as OUT was an internal error (NotADirectoryError from listing it), exit 70."""
    (tmp_path / "notes.txt").write_text("not a run\n")
    done = subprocess.run([sys.executable, "-m", "simdoctor", "watch", str(tmp_path / "notes.txt")],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2, done.stderr
    said = f"simdoctor: {tmp_path / 'notes.txt'} is a file, not a folder: give the `simdoctor run` output folder\n"
    assert done.stderr == said
    assert done.stdout == ""


def test_watch_with_host_listens_wider_and_still_needs_the_token(standin_stack: Stack) -> None:
    (standin_stack.home / "out" / "routes").mkdir(parents=True)
    watch, url = start_watch(standin_stack, "--host", "0.0.0.0")
    try:
        assert url.startswith("http://0.0.0.0:")
        port = url.split(":")[2].split("/")[0]
        assert get(f"http://127.0.0.1:{port}/api/state")[0] == 403
        status, body = get(f"http://127.0.0.1:{port}/api/state?token={url.rsplit('=', 1)[1]}")
        assert status == 200 and json.loads(body)["routes"] == 0
    finally:
        assert stop(watch) == 0


def test_a_frame_outside_the_run_folder_is_not_served(standin_stack: Stack, tmp_path) -> None:
    out = standin_stack.home / "out"
    (out / "routes").mkdir(parents=True)
    (out / "frames").mkdir()
    secret = Path("/etc/hostname")
    (out / "frames" / "1.jsonl").write_text(json.dumps({"step": 5, "frame": str(secret)}) + "\n")
    (out / "frames" / "2.jsonl").write_text(json.dumps({"step": 5, "frame": f"{out}/../../x.png"}) + "\n")
    watch, url = start_watch(standin_stack)
    try:
        base, token = url.split("/?", 1)[0], url.rsplit("=", 1)[1]
        assert get(f"{base}/frame/1?token={token}")[0] == 404
        assert get(f"{base}/frame/2?token={token}")[0] == 404
        assert get(f"{base}/frame/..%2F..%2Fetc%2Fpasswd?token={token}")[0] == 404
    finally:
        assert stop(watch) == 0


def test_the_frame_served_is_the_step_the_page_was_told_of(standin_stack: Stack) -> None:
    """The page shows a step's answer, then asks for its frame; lines written in between must not swap the picture."""
    out = standin_stack.home / "out"
    (out / "routes").mkdir(parents=True)
    (out / "frames").mkdir()
    (out / "frames" / "5.png").write_bytes(b"\x89PNG step 5")
    (out / "frames" / "10.png").write_bytes(b"\x89PNG step 10")
    lines = [{"step": n, "frame": str(out / "frames" / f"{n}.png")} for n in (5, 10)]
    (out / "frames" / "1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    standin_stack.rt.chown_tree(out)
    watch, url = start_watch(standin_stack)
    try:
        base, token = url.split("/?", 1)[0], url.rsplit("=", 1)[1]
        assert get(f"{base}/frame/1?step=5&token={token}")[1] == b"\x89PNG step 5"
        assert get(f"{base}/frame/1?step=10&token={token}")[1] == b"\x89PNG step 10"
        assert get(f"{base}/frame/1?token={token}")[1] == b"\x89PNG step 10"
    finally:
        assert stop(watch) == 0


def test_watch_on_a_folder_of_seeds_names_the_seed_folders(home: Path, tmp_path: Path) -> None:
    """`run --seeds 1,2` writes OUT/seed-1/ and OUT/seed-2/; `watch OUT` called that 'not a run folder'."""
    for seed in ("seed-1", "seed-2"):
        (tmp_path / "out" / seed / "routes").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "simdoctor", "watch", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2, done.stderr
    out = tmp_path / "out"
    said = (
        f"simdoctor: {out} holds a run per seed (seed-1, seed-2): watch one, e.g. `simdoctor watch {out / 'seed-1'}`\n"
    )
    assert done.stderr == said


def test_a_token_or_cookie_that_is_not_ascii_is_refused_not_a_traceback(standin_stack: Stack) -> None:
    out = standin_stack.home / "out"
    (out / "routes").mkdir(parents=True)
    standin_stack.rt.chown_tree(out)
    watch, url = start_watch(standin_stack)
    try:
        base = url.split("/?", 1)[0]
        assert get(f"{base}/api/state?token=%C3%A9t%C3%A9")[0] == 403
        assert get(f"{base}/api/state", headers={"Cookie": "simdoctor_watch=\xe9t\xe9"})[0] == 403
        assert get(url)[0] == 200  # still serving
    finally:
        assert stop(watch) == 0
    assert "Traceback" not in watch.stderr.read()
