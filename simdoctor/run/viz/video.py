"""A route's frames (the PNGs SimLingo drew, listed by the timing wrapper's frame log) into an H.264 MP4 at
real-time speed, a poster image and a commentary timeline; then the frames are removed.

Streaming throughout: the log is read line by line and each PNG is piped to ffmpeg and let go, so memory
stays flat however long the route. Real time: SimLingo draws every N-th step of the leaderboard's 20 Hz
tick, so the video runs at 20/N frames per second and a frame missing from the log (a step the agent did
not draw) is filled with the one before it, keeping each frame at its simulated time. ffmpeg is
imageio-ffmpeg's bundled build when installed (simdoctor's `viz` extra, a static build with
libx264), else the system's.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import VizRecipe
from simdoctor.doctor.probes.viz import Encoder, find_encoder
from simdoctor.run.outdir import Layout
from simdoctor.system import atomic, extras


class VizError(Exception):
    """The video could not be made (no ffmpeg, ffmpeg failed): one line; the frames are kept."""


@dataclass(frozen=True)
class Frame:
    """One line of the wrapper's frame log (scripts/timed_agent.py)."""

    step: int
    sim_time: Optional[float]
    wall: Optional[float]
    frame: Optional[str]
    answer: Optional[str]
    prompt: Optional[str] = None
    speed: Optional[float] = None
    progress: Optional[float] = None


@dataclass(frozen=True)
class Video:
    mp4: str
    poster: Optional[str]
    commentary: str
    captions: str
    frames: int
    seconds: float  # the video's length: the simulated time it shows
    encode_s: float
    removed: int


def read_frames(path: Path) -> Iterator[Frame]:
    """The log's entries in order; unreadable lines (a line cut off by a kill) are skipped."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed below; a generator keeps it open)
    except OSError:
        return
    with handle:
        for line in handle:
            frame = parse_frame(line)
            if frame is not None:
                yield frame


def parse_frame(line: str) -> Optional[Frame]:
    """One log line as a Frame; None for what the wrapper does not write (a line cut off by a kill, JSON that is
    not an object, a step that is not a whole number)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("step"), int) or isinstance(data.get("step"), bool):
        return None
    return Frame(**{k: data.get(k) for k in Frame.__dataclass_fields__})


def last_frame(path: Path, step: Optional[int] = None) -> Optional[Frame]:
    """The newest drawn frame of the log, or the one of `step` (read from its end: `watch` asks often, logs grow
    long, and the page asks for the step it was told of, which newer lines may have passed since)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            tail = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        frame = parse_frame(line)
        if frame is not None and frame.frame and (step is None or frame.step == step):
            return frame
    return None


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3600000:02d}:{millis // 60000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"


def encode_route(layout: Layout, route_id: str, viz: VizRecipe, every: int, keep_frames: bool) -> Optional[Video]:
    """Make `<videos>/<id>.mp4`, `.jpg`, `.commentary.jsonl` and `.vtt` from the route's frame log; None when
    the log lists no frame. Each file appears under its final name only when complete. Raises VizError."""
    log = layout.frames_file(route_id)
    drawn = [0, 0]  # frames, the step of the first
    for entry in read_frames(log):
        if entry.frame and Path(entry.frame).is_file():
            drawn[1] = entry.step if drawn[0] == 0 else drawn[1]
            drawn[0] += 1
    count, first_step = drawn
    if count == 0:
        return None
    encoder = find_encoder()
    if encoder is None:
        raise VizError(f"no ffmpeg: {extras.install_command('viz')} (imageio-ffmpeg bundles one), or install ffmpeg")
    out = layout.videos_dir
    fps = viz.tick_hz / every
    began = time.monotonic()
    poster_source: Optional[str] = None
    poster_index = min(count - 1, int(count * viz.poster_at))
    with contextlib.ExitStack() as files:
        mp4 = files.enter_context(atomic.replacing(out / f"{route_id}.mp4"))
        commentary = files.enter_context(atomic.replacing(out / f"{route_id}.commentary.jsonl"))
        captions = files.enter_context(atomic.replacing(out / f"{route_id}.vtt"))
        errors = files.enter_context(tempfile.TemporaryFile())
        argv = [encoder.path, "-hide_banner", "-loglevel", "error", "-y", "-f", "image2pipe",
                "-framerate", f"{fps:g}", "-c:v", "png", "-i", "-",
                "-c:v", "libx264", "-preset", viz.preset, "-crf", str(viz.crf), "-pix_fmt", "yuv420p",
                "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart", str(mp4)]  # fmt: skip
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        written, seen, cue = 0, 0, None  # frames piped, frames read, (start, text) of the open caption
        with open(commentary, "w", encoding="utf-8") as timeline, open(captions, "w", encoding="utf-8") as vtt:
            vtt.write("WEBVTT\n\n")
            previous = b""
            try:
                for entry in read_frames(log):
                    if not entry.frame or not Path(entry.frame).is_file():
                        continue
                    slot = (entry.step - first_step) // every
                    while previous and written < slot:  # a step not drawn: hold the frame before it
                        proc.stdin.write(previous)
                        written += 1
                    previous = Path(entry.frame).read_bytes()
                    proc.stdin.write(previous)
                    written += 1
                    if seen == poster_index:
                        poster_source = entry.frame
                    seen += 1
                    at = (entry.step - first_step) / viz.tick_hz
                    timeline.write(json.dumps({"step": entry.step, "sim_time": entry.sim_time, "video_time": at,
                                               "answer": entry.answer}) + "\n")  # fmt: skip
                    if cue is not None and cue[1] != entry.answer:
                        vtt.write(f"{_vtt_time(cue[0])} --> {_vtt_time(at)}\n{cue[1]}\n\n")
                        cue = None
                    if cue is None and entry.answer:
                        cue = (at, entry.answer)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            end = written / fps
            if cue is not None:
                vtt.write(f"{_vtt_time(cue[0])} --> {_vtt_time(end)}\n{cue[1]}\n\n")
        if proc.wait() != 0:
            errors.seek(0)
            tail = errors.read().decode("utf-8", "replace").strip().splitlines()[-1:]
            raise VizError(f"ffmpeg exited {proc.returncode}: {' '.join(tail) or 'no message'}")
    poster = _poster(encoder, poster_source, out / f"{route_id}.jpg")
    encode_s = time.monotonic() - began
    removed = 0 if keep_frames else remove_frames(layout, route_id)
    return Video(str(out / f"{route_id}.mp4"), poster, str(out / f"{route_id}.commentary.jsonl"),
                 str(out / f"{route_id}.vtt"), written, written / fps, encode_s, removed)  # fmt: skip


def _poster(encoder: Encoder, frame: Optional[str], target: Path) -> Optional[str]:
    """A JPEG of one frame; a poster that cannot be made costs only the poster."""
    if frame is None:
        return None
    with atomic.replacing(target) as jpg:
        done = subprocess.run(
            [encoder.path, "-hide_banner", "-loglevel", "error", "-y", "-i", frame, "-frames:v", "1", "-q:v", "3",
             str(jpg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            return None
    return str(target)


def remove_frames(layout: Layout, route_id: str) -> int:
    """Remove the PNGs SimLingo drew for the route, every attempt's (`<SAVE_PATH>/**/images/<step>.png`)."""
    removed = 0
    for png in layout.viz_dir(route_id).glob("**/images/*.png"):
        if png.is_file() and not png.is_symlink() and png.stem.isdigit():
            png.unlink(missing_ok=True)
            removed += 1
    return removed


def video_of(layout: Layout, route_id: str) -> Optional[Path]:
    path = layout.videos_dir / f"{route_id}.mp4"
    return path if path.is_file() else None


def record_route(layout: Layout, route_id: str, viz: VizRecipe, every: int, keep_frames: bool) -> Optional[str]:
    """After a route's final attempt: its video, as one progress line; a video that cannot be made is said,
    and costs neither the route nor the run (its frames stay). None when the route drew no frame."""
    try:
        made = encode_route(layout, route_id, viz, every, keep_frames)
    except (VizError, OSError, subprocess.SubprocessError) as exc:
        return f"route {route_id}: no video: {exc}"
    if made is None:
        return None
    removed = f", {made.removed} frames removed" if made.removed else ""
    return (
        f"route {route_id}: video {made.mp4} ({made.frames} frames, {made.seconds:.1f} s at real time, "
        f"encoded in {made.encode_s:.1f} s{removed})"
    )


def unrecorded(layout: Layout, route_id: str) -> bool:
    """A route whose frames were logged but whose video was never made (a run killed while encoding)."""
    return layout.frames_file(route_id).is_file() and video_of(layout, route_id) is None
