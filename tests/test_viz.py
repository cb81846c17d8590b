"""`simdoctor run --viz` end to end on the stand-in stack (the stand-in SimLingo agent draws as upstream's debug
mode does, loading `arial.ttf` by name), the videos checked with the same ffmpeg a user has; `check --viz`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import builders
import pytest

from simdoctor.doctor.probes.viz import find_encoder
from simdoctor.run.viz import video
from tests.browser import not_blank
from tests.conftest import Stack
from tests.test_run import simdoctor_run

LIBERATION = "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"  # tests/setup.sh: fonts-liberation


def route(route_id: str, mode: str = "perfect", sim_s: str = "3", **attrs: str) -> dict:
    return builders.standin_route(route_id, mode, **{"standin_sim_s": sim_s, **attrs})


def stream_info(mp4: Path) -> dict:
    """Codec, size, frame rate, duration and decoded frame count of a video, as ffmpeg itself reads it."""
    encoder = find_encoder()
    done = subprocess.run([encoder.path, "-hide_banner", "-i", str(mp4), "-map", "0:v", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    text = done.stderr
    stream = re.search(r"Video: (\w+).*?, (\d+)x(\d+).*?, ([\d.]+) fps", text)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    frames = re.findall(r"frame=\s*(\d+)", text)
    h, m, s = duration.groups()
    return {
        "codec": stream.group(1), "size": (int(stream.group(2)), int(stream.group(3))), "fps": float(stream.group(4)),
        "duration": int(h) * 3600 + int(m) * 60 + float(s), "frames": int(frames[-1]),
    }  # fmt: skip


def pngs(stack: Stack, route_id: str) -> list[Path]:
    return sorted((stack.home / "out" / "viz" / route_id).glob("**/images/*.png"))


def test_run_viz_records_simlingos_view_per_route(standin_stack: Stack) -> None:
    specs = [route("1"), route("2", "sim_crash", standin_failing_attempts="1")]  # 2: crashes once, then drives
    done = simdoctor_run(standin_stack, specs, "--viz")
    assert done.returncode == 0, done.stdout + done.stderr
    out = standin_stack.home / "out"
    for route_id in ("1", "2"):
        mp4 = out / "video" / f"{route_id}.mp4"
        assert mp4.is_file(), done.stdout + done.stderr
        info = stream_info(mp4)
        # 3 simulated seconds at 20 Hz; SimLingo draws steps 5, 10, ..., 55 (step 0 only initializes): 11 frames
        # at 20/5 = 4 frames per second, i.e. real time.
        assert info["codec"] == "h264" and info["size"] == (1024, 912) and info["fps"] == 4
        assert info["frames"] == 11 and info["duration"] == pytest.approx(11 / 4, abs=0.05)
        assert (out / "video" / f"{route_id}.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # the poster, a JPEG
        lines = (out / "video" / f"{route_id}.commentary.jsonl").read_text().splitlines()
        timeline = [json.loads(line) for line in lines]
        assert [e["step"] for e in timeline] == list(range(5, 60, 5))
        assert [e["sim_time"] for e in timeline] == pytest.approx([(s + 1) / 20 for s in range(5, 60, 5)])
        assert [e["video_time"] for e in timeline] == pytest.approx([k / 4 for k in range(11)])
        assert timeline[0]["answer"] == "Accelerate to reach the target speed."
        captions = (out / "video" / f"{route_id}.vtt").read_text()
        # The answer changes at steps 20 and 40 (the stand-in model's), so three cues up to the end, 2.75 s.
        assert captions.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.750\nAccelerate to reach the target speed.\n")
        last = "00:00:01.750 --> 00:00:02.750\nSlow down for the vehicle ahead that is braking.\n\n"
        assert captions.count(" --> ") == 3 and captions.endswith(last)
        assert pngs(standin_stack, route_id) == []  # removed, the crashed attempt's too
    said = done.stdout + done.stderr
    assert "route 1: video" in said and "(11 frames, 2.8 s at real time, encoded in" in said
    # The font SimLingo loads by name, found where simdoctor put it for the agent.
    assert (out / "viz-share" / "fonts" / "arial.ttf").read_bytes() == Path(LIBERATION).read_bytes()
    assert not list(out.glob("video/.*.tmp*"))  # nothing half-written left


def test_keep_frames_and_every_tenth_step(standin_stack: Stack) -> None:
    done = simdoctor_run(standin_stack, [route("1", sim_s="2")], "--viz-every", "10", "--keep-frames")
    assert done.returncode == 0, done.stdout + done.stderr
    info = stream_info(standin_stack.home / "out" / "video" / "1.mp4")
    assert info["fps"] == 2 and info["frames"] == 3  # steps 10, 20 and 30 of 40
    assert [p.name for p in pngs(standin_stack, "1")] == ["10.png", "20.png", "30.png"]


def test_a_rerun_encodes_a_finished_route_whose_video_is_missing(standin_stack: Stack) -> None:
    """A run killed while encoding leaves the frames and no video: the rerun (which skips the finished route)
    makes it."""
    done = simdoctor_run(standin_stack, [route("1", sim_s="1")], "--viz", "--keep-frames")
    assert done.returncode == 0, done.stdout + done.stderr
    mp4 = standin_stack.home / "out" / "video" / "1.mp4"
    made = stream_info(mp4)
    mp4.unlink()
    done = simdoctor_run(standin_stack, [route("1", sim_s="1")], "--viz", "--keep-frames")
    assert done.returncode == 0 and "0 to run" in done.stdout, done.stdout + done.stderr
    assert "route 1: video" in done.stdout and stream_info(mp4) == made


def test_viz_every_must_be_a_multiple_of_five(standin_stack: Stack) -> None:
    done = simdoctor_run(standin_stack, [route("1")], "--viz-every", "3")
    assert done.returncode == 2 and "--viz-every 3: give a multiple of 5" in done.stderr


def test_check_viz_flags_a_missing_font_and_its_fix_works(simdoctor, tmp_path) -> None:
    source = Path(__file__).resolve().parents[1] / "recipes" / "simlingo-bench2drive.toml"
    recipe = tmp_path / "nofont.toml"
    recipe.write_text(source.read_text().replace(LIBERATION, "/nonexistent/LiberationSans-Regular.ttf"))
    recipe.write_text(re.sub(r'"/usr/share/fonts/[^"]+",', "", recipe.read_text()))
    env = {"SIMDOCTOR_WORK_DIR": str(tmp_path), "XDG_DATA_DIRS": str(tmp_path)}
    done = simdoctor("check", "--viz", "--only", "viz.font", "--json", "--recipe", str(recipe), env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    finding = json.loads(done.stdout)["results"][0]
    assert finding["status"] == "fail" and "OSError: cannot open resource" in finding["summary"]
    command = finding["fix"]["commands"]
    assert command == ["apt-get install -y fonts-liberation"]  # root here: no sudo
    # The fix: its package holds the recipe's font, the command runs as printed, and the check then passes.
    assert LIBERATION in subprocess.run(["dpkg", "-L", "fonts-liberation"], capture_output=True, text=True).stdout
    assert subprocess.run(command[0].split(), capture_output=True, timeout=300).returncode == 0
    done = simdoctor("check", "--viz", "--only", "viz.font", "--json", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["results"][0]["summary"].startswith("arial.ttf: run --viz")


def test_check_viz_sees_an_arial_the_agent_already_finds(simdoctor, tmp_path) -> None:
    (tmp_path / "fonts" / "x").mkdir(parents=True)
    (tmp_path / "fonts" / "x" / "arial.ttf").write_bytes(b"")
    done = simdoctor("check", "--viz", "--only", "viz.font", "--json",
                     env={"SIMDOCTOR_WORK_DIR": str(tmp_path), "XDG_DATA_DIRS": str(tmp_path)})  # fmt: skip
    summary = json.loads(done.stdout)["results"][0]["summary"]
    assert summary == f"arial.ttf: the agent's Pillow opens {tmp_path}/fonts/x/arial.ttf"


# ---- report --html, in a real headless Chromium ----------------------------------------------------------


def keep_screenshot(png: Path) -> None:
    """Screenshots also go to $SIMDOCTOR_SCREENSHOTS when set, for a person to look at."""
    folder = os.environ.get("SIMDOCTOR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, Path(folder) / png.name)


@pytest.fixture
def browser(tmp_path):
    from tests.browser import Browser

    opened = Browser(tmp_path / "chromium-profile")
    yield opened
    opened.close()


def test_report_html_is_one_offline_page_with_plots_and_playable_videos(standin_stack: Stack, browser, tmp_path):
    specs = [route("1", sim_s="4"), route("2", "completed", sim_s="3", town="Town02", kind="HardBreakRoute"),
             route("3", "blocked", sim_s="2", kind="HardBreakRoute")]  # fmt: skip
    done = simdoctor_run(standin_stack, specs, "--viz")
    assert done.returncode == 0, done.stdout + done.stderr
    out = standin_stack.home / "out"
    done = subprocess.run(standin_stack.rt.simdoctor("report", str(out), "--html"), env=standin_stack.env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out / "report.html"
    assert f"HTML report: {page}" in done.stdout
    response = browser.open(page.as_uri())
    assert response.get("mimeType") == "text/html"
    fetched = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched and all(url.startswith(out.as_uri() + "/video/") for url in fetched), fetched  # offline
    assert browser.evaluate("document.querySelectorAll('svg').length") == 3  # latency, steps/s, DS by group
    assert "not sampled (no NVML" in browser.evaluate("document.body.innerText")  # no GPU here: said, not drawn
    assert browser.evaluate("document.querySelectorAll('table tr').length") == 1 + 3
    assert browser.evaluate("document.querySelectorAll('video').length") == 3
    ready = browser.wait_for("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)"
                             " && Array.from(document.querySelectorAll('video')).map(v => v.readyState)")  # fmt: skip
    assert all(state >= 2 for state in ready)
    assert browser.evaluate("document.querySelector('video').duration") == pytest.approx(15 / 4, abs=0.3)
    # The commentary beside the video follows it: seeking to 1 s marks the answer spoken then.
    browser.evaluate("(() => { const v = document.querySelector('video'); v.currentTime = 1.0;"
                     " v.dispatchEvent(new Event('timeupdate')); })()")  # fmt: skip
    now = browser.evaluate("document.querySelector('.commentary li.now').innerText")
    assert now.endswith("Maintain the current speed, the road ahead is clear.")
    shot = browser.screenshot(tmp_path / "report.png")
    keep_screenshot(shot)
    assert not_blank(shot) > 50  # plots, table, video posters: many colours


def test_report_html_of_a_seed_folder_it_cannot_read_is_one_line(standin_stack: Stack) -> None:
    seeds = standin_stack.home / "seeds"
    seeds.mkdir()
    os.chown(seeds, standin_stack.rt.uid, standin_stack.rt.gid)
    (seeds / "seed-1").mkdir(mode=0o700)  # root's: the test user cannot enter it
    done = subprocess.run(standin_stack.rt.simdoctor("report", str(seeds), "--html"), env=standin_stack.env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stderr == f"simdoctor: cannot read {seeds / 'seed-1'}: Permission denied\n"


def test_report_html_of_several_seeds_gives_each_seeds_scores_and_their_mean(standin_stack: Stack, browser, tmp_path):
    """A folder of `seed-<n>/` runs (run --seeds): DS and SR per seed, their mean and spread, every seed's routes."""
    done = simdoctor_run(standin_stack, [route("1", sim_s="1"), route("2", "blocked", sim_s="1")], "--viz")
    assert done.returncode == 0, done.stdout + done.stderr
    seeds = standin_stack.home / "seeds"
    shutil.copytree(standin_stack.home / "out", seeds / "seed-1")
    shutil.copytree(standin_stack.home / "out", seeds / "seed-2")
    result = seeds / "seed-2" / "res" / "2.json"
    data = json.loads(result.read_text())
    data["_checkpoint"]["records"][-1]["scores"]["score_composed"] = 0.0  # seed 2 does worse on route 2
    result.write_text(json.dumps(data))
    standin_stack.rt.chown_tree(seeds)
    done = subprocess.run(standin_stack.rt.simdoctor("report", str(seeds), "--html"), env=standin_stack.env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and f"HTML report: {seeds / 'report.html'}" in done.stdout, done.stderr
    browser.open((seeds / "report.html").as_uri())
    rows = browser.evaluate("Array.from(document.querySelectorAll('section table')[0].rows).map(r => r.innerText)")
    assert [r.split("\t")[:3] for r in rows] == [["seed", "DS", "SR %"], ["seed 1", "68.75", "50.00"],
                                                ["seed 2", "50.00", "50.00"]]  # fmt: skip
    assert "59.38 ± 13.26" in browser.evaluate("document.querySelector('.card b').innerText")
    assert browser.evaluate("document.querySelectorAll('video').length") == 4  # both seeds' routes
    browser.wait_for("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)")
    shot = browser.screenshot(tmp_path / "report-seeds.png")
    keep_screenshot(shot)
    assert not_blank(shot) > 50


def test_frame_log_lines_the_wrapper_does_not_write_are_skipped(tmp_path) -> None:
    """A line cut by a kill, JSON that is not an object, or a frame without a whole-number step: skipped, never an
    exception in the encoder or in watch."""

    log = tmp_path / "1.jsonl"
    good = {"step": 10, "frame": str(tmp_path / "10.png")}
    log.write_text("\n".join(["[1, 2]", '{"frame": "x.png"}', '{"step": "5"}', '{"step": true}', json.dumps(good),
                              '{"step": 15, "fra']) + "\n")  # fmt: skip
    assert [f.step for f in video.read_frames(log)] == [10]
    assert video.last_frame(log).step == 10
