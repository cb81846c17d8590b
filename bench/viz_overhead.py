"""What `run --viz` costs per route: encoding as a share of the route's time, and peak memory, for a
10-minute and a 1-hour route, side by side.

The frames are synthesized at SimLingo's size and cadence: 1024x512 camera + the 400 px answer band =
1024x912 RGBA PNGs (agent_simlingo.py:691-763), one every 5th step of the leaderboard's 20 Hz tick, i.e. 4
per simulated second; each is a drawn road with per-pixel noise (so the encoder sees camera-like texture
rather than flat colours, which would flatter it), the three point sets, and the prompt and answer in
Liberation Sans 20 as upstream writes them. 40 distinct frames are drawn and the frame log lists them in
turn, as many times as the route has frames (a 1-hour route would otherwise need ~14400 files, ~10 GB); the
encoder reads and decodes each listed PNG like any other, so its work per frame is the same.

A stand-in route here drives at real time (1 simulated second per wall second): a 1-hour route is 3600 s of
simulated driving, 14400 frames. SimLingo itself drives slower than real time, so a real route of the same
wall time has fewer frames and a smaller share: these shares are upper bounds.

For each length it prints, measured in this run:
- the encoding (simdoctor's video.encode_route in a fresh process: ffmpeg's H.264, the poster, the
  commentary) in seconds and as a share of the route's time (goal: at most 5 %);
- the peak resident memory of that process and of ffmpeg (getrusage): flat if it does not grow with length;
- the agent's side beside it, which upstream's DEBUG drawing costs whoever records: drawing and saving one
  frame (PIL, as upstream) in ms, times 4 frames per simulated second, as a share of real time; with Pillow's
  default PNG compression (upstream alone) and with zlib level 1 (what the timing wrapper sets under --viz).

Run from the repo root: `.venv/bin/python bench/viz_overhead.py [--minutes 10 60]`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simdoctor.config.settings import load_settings  # noqa: E402
from simdoctor.doctor.probes.viz import find_encoder  # noqa: E402
from simdoctor.run.outdir import Layout  # noqa: E402
from simdoctor.run.viz import video  # noqa: E402

WIDTH, HEIGHT, BAND = 1024, 512, 400
EVERY, TICK_HZ = 5, 20
DISTINCT = 40


def camera(step: int):
    """The camera image: a drawn road under texture (noise at 1/8 resolution, smoothed, plus a quarter of
    per-pixel noise): what the encoder meets in rendered frames, not flat colours."""
    from PIL import Image, ImageDraw

    coarse = Image.frombytes("L", (WIDTH // 8, HEIGHT // 8), os.urandom(WIDTH * HEIGHT // 64))
    fine = Image.frombytes("L", (WIDTH, HEIGHT), os.urandom(WIDTH * HEIGHT))
    noise = Image.blend(coarse.resize((WIDTH, HEIGHT), Image.BILINEAR), fine, 0.25)
    scene = Image.new("RGB", (WIDTH, HEIGHT), (120, 150, 190))
    draw = ImageDraw.Draw(scene)
    draw.rectangle((0, HEIGHT // 2, WIDTH, HEIGHT), fill=(70, 110, 60))
    draw.polygon([(WIDTH // 2 - 20, HEIGHT // 2), (WIDTH // 2 + 20, HEIGHT // 2), (WIDTH, HEIGHT), (0, HEIGHT)],
                 fill=(80, 80, 84))  # fmt: skip
    for k in range(8):
        y = HEIGHT // 2 + ((k * 40 + step * 3) % (HEIGHT // 2))
        draw.line((WIDTH // 2, y, WIDTH // 2, y + 12), fill=(235, 235, 235), width=3)
    return Image.blend(scene, Image.merge("RGB", (noise, noise, noise)), 0.25)


def draw_frame(step: int, scene, path: Path, font_path: str, compress_level: int = -1) -> float:
    """What upstream's DEBUG drawing does to the camera image (points, answer band, text, PNG save); its
    seconds."""
    from PIL import Image, ImageDraw, ImageFont

    began = time.perf_counter()
    draw = ImageDraw.Draw(scene)
    for i in range(10):
        for radius, colour, dx in ((4, (0, 0, 255), 0), (3, (255, 0, 0), 6), (2, (0, 255, 0), -6)):
            u, v = WIDTH / 2 + dx * i, HEIGHT - 40 * i
            draw.ellipse((u - radius, v - radius, u + radius, v + radius), fill=colour)
    image = Image.new("RGBA", (WIDTH, HEIGHT + BAND))
    image.paste(scene, (0, 0))
    image.paste(Image.new("RGBA", (WIDTH, BAND), (0, 0, 0, 255)), (0, HEIGHT))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(font_path, 20)
    prompt = f"Prompt: Current speed: {step % 13}.0 m/s. Target waypoint: 20 m ahead. What should the ego do next?"
    answer = f"Answer: Follow the lane and keep a safe distance to the car in front (frame {step})."
    for idx, line in enumerate(textwrap.wrap(prompt, 100) + textwrap.wrap(answer, 100)):
        draw.text((10, HEIGHT + 20 + 30 * idx), line, font=font, fill=(255, 255, 255, 255))
    image.save(path, compress_level=compress_level)  # -1: zlib's default (6), as upstream's plain save
    return time.perf_counter() - began


def encode_child(out: Path, frames: int) -> None:
    """In a fresh process: encode `frames` frames of route 1 and print the measurements as JSON."""
    settings = load_settings()
    layout = Layout(out, settings.recipe.run)
    began = time.monotonic()
    made = video.encode_route(layout, "1", settings.recipe.viz, EVERY, keep_frames=True)
    took = time.monotonic() - began
    print(json.dumps({
        "encode_s": took, "frames": made.frames, "video_s": made.seconds,
        "self_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ffmpeg_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "mp4_mib": Path(made.mp4).stat().st_size / 2**20,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--encode-child", nargs=2, metavar=("OUT", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.encode_child:
        encode_child(Path(args.encode_child[0]), int(args.encode_child[1]))
        return
    settings = load_settings()
    font_path = next(p for p in settings.recipe.viz.fonts if Path(p).is_file())
    encoder = find_encoder()
    with tempfile.TemporaryDirectory(prefix="viz-bench-") as tmp:
        pool = Path(tmp) / "pool"
        pool.mkdir()
        drawing = {-1: 0.0, 1: 0.0}  # zlib level: upstream's default, and the one the wrapper gives Pillow
        for k in range(DISTINCT):
            step = (k + 1) * EVERY
            scene = camera(step)
            drawing[-1] += draw_frame(step, scene.copy(), pool / "upstream.png", font_path)
            drawing[1] += draw_frame(step, scene, pool / f"{step}.png", font_path, compress_level=1)
        (pool / "upstream.png").unlink()
        png_kib = sum(p.stat().st_size for p in pool.iterdir()) / DISTINCT / 1024
        per_sim_s = TICK_HZ / EVERY
        viz = settings.recipe.viz
        print(f"encoder: {encoder.source} {encoder.path}; preset {viz.preset}, crf {viz.crf}")
        print(f"frames: {WIDTH}x{HEIGHT + BAND} RGBA PNG, {png_kib:.0f} KiB each, {per_sim_s:g} per simulated second")
        for level, what in ((-1, "upstream's PNG default, zlib 6"), (1, "zlib 1, as the wrapper has Pillow write")):
            ms = drawing[level] / DISTINCT * 1000
            print(f"agent side, drawing + PNG save ({what}): {ms:.1f} ms per frame = "
                  f"{ms * per_sim_s / 10:.1f} % of a real-time route")  # fmt: skip
        for minutes in args.minutes:
            route_s = minutes * 60
            frames = int(route_s * per_sim_s)
            out = Path(tmp) / f"out-{minutes:g}"
            log = Layout(out, settings.recipe.run).frames_file("1")
            log.parent.mkdir(parents=True)
            with open(log, "w") as handle:
                for k in range(frames):
                    step = (k + 1) * EVERY
                    source = pool / f"{(k % DISTINCT + 1) * EVERY}.png"
                    handle.write(json.dumps({"step": step, "sim_time": (step + 1) / TICK_HZ, "wall": None,
                                             "frame": str(source), "answer": f"answer {k // 20}"}) + "\n")  # fmt: skip
            done = subprocess.run([sys.executable, __file__, "--encode-child", str(out), str(frames)],
                                  capture_output=True, text=True, check=True)  # fmt: skip
            m = json.loads(done.stdout)
            share = 100 * m["encode_s"] / route_s
            print(f"{minutes:g}-minute route ({route_s:.0f} s, {m['frames']} frames, video {m['video_s']:.0f} s, "
                  f"{m['mp4_mib']:.1f} MiB): encode {m['encode_s']:.1f} s = {share:.2f} % of the route; peak memory "
                  f"simdoctor {m['self_peak_mib']:.0f} MiB, ffmpeg {m['ffmpeg_peak_mib']:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
