"""`simdoctor report --html OUT`: the run as one page, `OUT/report.html`, that works offline.

Everything the page needs is in the file (styles, the script that ties each video to its commentary, the
plots as inline SVG) except the videos and posters, which it reads beside it (`video/<id>.mp4`, relative
links, so the folder can be copied or served as a whole). The plots are matplotlib's SVG output, the field's
usual tool (Agg, no display needed); it is imported only here. A run of several seeds (`OUT/seed-<n>/`, each
a run folder) gets DS and SR per seed and their mean; the rest of the page covers every seed's routes.
"""

from __future__ import annotations

import html
import importlib.util
import io
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import ConfigError, RunRecipe
from simdoctor.run import profiling, report, results, routes
from simdoctor.run.outdir import Layout
from simdoctor.system import atomic, extras

PAGE = "report.html"
GIB = 2**30


@dataclass(frozen=True)
class Seed:
    label: str  # "" for a run of one seed
    folder: Path
    report: report.Report
    records: dict[str, results.RouteRecord]  # by route id
    steps: list[profiling.StepSummary]  # each timed route's, its latency histogram included


def require_plotting() -> None:
    """matplotlib is an extra (`viz`): without it, say so and how to add it before anything is read or written,
    not as an internal error after the text report."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(
            f"--html draws its plots with matplotlib, which is not installed: {extras.install_command('viz')}"
        )


def require_run_folder(out: Path, names: RunRecipe) -> None:
    """The page is drawn from a run's own files (route files, task records, step timings, videos) and written into
    its folder; results simdoctor did not produce are read as they are, nothing written beside them: refused
    before the text report, not after it."""
    if report.upstream_folder(out, names):
        raise ConfigError(f"--html: {out} holds results simdoctor did not produce, which report reads as they are "
                          "and writes nothing into; the page is drawn from a `simdoctor run` folder")  # fmt: skip


def load(out: Path, names: RunRecipe) -> list[Seed]:
    seeds = []
    for label, folder in report.run_folders(out, names):
        built, records = report.build(folder, names)
        by_route = {report.route_number(r.route_id): r for r in records}
        layout = Layout(folder, names)
        summaries = [report.route_row(text.route, layout)[2] for text in routes.read_routes(layout.routes_dir)]
        seeds.append(Seed(label, folder, built, by_route, [s for s in summaries if s is not None]))
    return seeds


def write(out: Path, names: RunRecipe) -> Path:
    """Build the page from the run folder's files and write it atomically; returns its path."""
    out = Path(out).expanduser().resolve()
    seeds = load(out, names)
    page = out / PAGE
    atomic.write_text(page, render(out, names, seeds))
    return page


# ---- plots -------------------------------------------------------------------------------------------


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plots(seeds: list[Seed]) -> dict[str, Optional[str]]:
    """The four plots as inline SVG (None where there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(s.label, row) for s in seeds for row in s.report.rows]
    names = [f"{row.route_id}" + (f" ({label})" if label else "") for label, row in rows]
    found: dict[str, Optional[str]] = {}
    histogram = profiling.merged_histogram([summary for s in seeds for summary in s.steps])
    if histogram:
        fig, ax = plt.subplots(figsize=(7, 3))
        values = [profiling.bucket_value(index) * 1000 for index, _ in histogram]
        ax.hist(values, weights=[n for _, n in histogram], bins=min(60, max(10, len(histogram))), color="#4878a8")
        for q, style in ((50, "-"), (95, "--")):
            value = profiling.histogram_percentile(histogram, q) * 1000
            ax.axvline(value, color="#c44e52", linestyle=style, label=f"p{q} {value:.1f} ms")
        ax.set_xlabel("run_step latency (ms)")
        ax.set_ylabel("steps")
        ax.legend()
        found["latency"] = _svg(fig)
    else:
        found["latency"] = None

    def per_route(values: list[Optional[float]], label: str, colour: str) -> Optional[str]:
        if not any(v is not None for v in values):
            return None
        fig, ax = plt.subplots(figsize=(max(4, min(14, 0.35 * len(values) + 2)), 3))
        ax.bar(range(len(values)), [v or 0 for v in values], color=colour)
        ax.set_ylabel(label)
        ax.set_xticks(range(len(values)), names if len(values) <= 40 else [""] * len(values), rotation=90)
        ax.set_xlabel("route")
        return _svg(fig)

    profiles = [row.profile for _, row in rows]
    found["steps"] = per_route([p.steps_per_wall_s if p else None for p in profiles], "sim steps / s", "#55a868")
    found["gpu"] = per_route([p.peak_gpu_bytes / GIB if p and p.peak_gpu_bytes is not None else None for p in profiles],
                             "peak GPU memory (GiB)", "#8172b2")  # fmt: skip
    groups = [("scenario type", [g for s in seeds for g in s.report.scenario_types]),
              ("town", [g for s in seeds for g in s.report.towns])]  # fmt: skip
    if rows:
        fig, axes = plt.subplots(1, 2, figsize=(11, max(2.5, 0.3 * max(len(g) for _, g in groups) + 1)))
        for ax, (title, members) in zip(axes, groups):
            merged: dict[str, list[float]] = {}
            for g in members:
                merged.setdefault(g.name, []).append(g.driving_score)
            labels = sorted(merged)
            ax.barh(labels, [statistics.mean(merged[k]) for k in labels], color="#dd8452")
            ax.set_xlim(0, 100)
            ax.set_xlabel("Driving Score")
            ax.set_title(f"by {title}")
            ax.invert_yaxis()
        found["groups"] = _svg(fig)
    else:
        found["groups"] = None
    return found


# ---- the page ----------------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#aeb8c6}main{padding:20px 28px;max-width:1400px}
.cards{display:flex;gap:16px;flex-wrap:wrap}.card{background:#fff;border-radius:8px;padding:14px 18px;
box-shadow:0 1px 3px #0002;min-width:160px}.card b{display:block;font-size:28px}.card span{color:#5b6675}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;margin:18px 0;padding:14px 18px}
h2{font-size:16px;margin:0 0 10px}table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;
border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}th{background:#f0f2f5}
.ok{color:#2f7d32}.bad{color:#b3261e}.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));
gap:12px}.plots svg{max-width:100%;height:auto}.plots .wide{grid-column:1/-1}
.route{display:grid;grid-template-columns:minmax(320px,640px) 1fr;
gap:16px;margin:14px 0;border-top:1px solid #e3e6ea;padding-top:14px}video{width:100%;background:#000}
.commentary{max-height:420px;overflow:auto;margin:0;padding:0;list-style:none}.commentary li{padding:3px 6px;
cursor:pointer;border-radius:4px}.commentary li.now{background:#fff3c4}.commentary .t{color:#5b6675;
font-variant-numeric:tabular-nums;margin-right:8px}.muted{color:#5b6675}
"""
SCRIPT = """
document.querySelectorAll('.route').forEach(function (route) {
  var video = route.querySelector('video'), items = route.querySelectorAll('.commentary li');
  items.forEach(function (li) { li.onclick = function () { video.currentTime = +li.dataset.t; video.play(); }; });
  video.addEventListener('timeupdate', function () {
    var now = null;
    items.forEach(function (li) {
      if (+li.dataset.t <= video.currentTime + 0.01) now = li;
      li.classList.remove('now');
    });
    if (now) now.classList.add('now');
  });
});
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:05.2f}"


def commentary(path: Path) -> list[tuple[float, str]]:
    """The answers of a route's commentary timeline, each from the moment it changes."""
    kept: list[tuple[float, str]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return kept
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        answer = entry.get("answer")
        if answer and (not kept or kept[-1][1] != answer):
            kept.append((float(entry.get("video_time") or 0.0), answer))
    return kept


def _scores(seeds: list[Seed]) -> str:
    cards = []
    ds = [s.report.driving_score for s in seeds if s.report.driving_score is not None]
    sr = [s.report.success_rate for s in seeds if s.report.success_rate is not None]
    spread = lambda v: f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else ""  # noqa: E731
    mean = "mean of seeds" if len(seeds) > 1 else f"{seeds[0].report.successes} of {seeds[0].report.routes} routes"
    cards.append(f"<div class=card><span>Driving Score</span><b>{_pct(statistics.mean(ds) if ds else None)}"
                 f"{spread(ds)}</b><span>{mean}</span></div>")  # fmt: skip
    cards.append(f"<div class=card><span>Success Rate</span><b>{_pct(statistics.mean(sr) if sr else None)} %"
                 f"{spread(sr)}</b><span>{mean}</span></div>")  # fmt: skip
    routes = sum(s.report.routes for s in seeds)
    crashed = sum(len(s.report.crashed) for s in seeds)
    missing = sum(len(s.report.missing) for s in seeds)
    cards.append(f"<div class=card><span>routes</span><b>{routes}</b><span>crashed {crashed} · missing {missing}"
                 "</span></div>")  # fmt: skip
    text = f"<div class=cards>{''.join(cards)}</div>"
    if len(seeds) > 1:
        body = "".join(
            f"<tr><td>{_e(s.label)}</td><td>{_pct(s.report.driving_score)}</td><td>{_pct(s.report.success_rate)}</td>"
            f"<td>{s.report.routes}</td><td>{len(s.report.crashed)}</td><td>{len(s.report.missing)}</td></tr>"
            for s in seeds
        )
        text += ("<section><h2>Per seed</h2><table><tr><th>seed</th><th>DS</th><th>SR %</th><th>routes</th>"
                 f"<th>crashed</th><th>missing</th></tr>{body}</table></section>")  # fmt: skip
    return text


def _infractions(record: Optional[results.RouteRecord]) -> str:
    if record is None:
        return ""
    found = [f"{name} ×{len(items)}" for name, items in record.infractions.items() if items]
    return ", ".join(found)


def _route_table(seeds: list[Seed], videos: dict[tuple[str, str], str]) -> str:
    head = ("<tr>" + ("<th>seed</th>" if len(seeds) > 1 else "") + "<th>route</th><th>town</th><th>scenario</th>"
            "<th>status</th><th>DS</th><th>infractions</th><th>attempts</th><th>game / system s</th>"
            "<th>sim steps/s</th><th>peak GPU</th><th>video</th></tr>")  # fmt: skip
    body = []
    for s in seeds:
        for row in s.report.rows:
            p = row.profile
            gpu = f"{p.peak_gpu_bytes / GIB:.1f} GiB" if p and p.peak_gpu_bytes is not None else "-"
            rate = f"{p.steps_per_wall_s:.1f}" if p and p.steps_per_wall_s else "-"
            times = (f"{row.duration_game:.1f} / {row.duration_system:.1f}"
                     if row.duration_game is not None and row.duration_system is not None else "-")  # fmt: skip
            status = "ok" if row.success else "bad"
            anchor = videos.get((s.label, row.route_id))
            link = f"<a href='#{anchor}'>watch</a>" if anchor else ""
            reason = f"<div class=muted>{_e(row.reason)}</div>" if row.reason else ""
            body.append(
                "<tr>" + (f"<td>{_e(s.label)}</td>" if len(seeds) > 1 else "")
                + f"<td>{_e(row.route_id)}</td><td>{_e(row.town)}</td><td>{_e(row.scenario_type)}</td>"
                f"<td class={status}>{_e(row.status)}{reason}</td><td>{row.score_composed:.2f}</td>"
                f"<td>{_e(_infractions(s.records.get(row.route_id)))}</td><td>{row.attempts}</td><td>{times}</td>"
                f"<td>{rate}</td><td>{gpu}</td><td>{link}</td></tr>"
            )  # fmt: skip
    return f"<section><h2>Routes</h2><table>{head}{''.join(body)}</table></section>"


def _videos(out: Path, names: RunRecipe, seeds: list[Seed]) -> tuple[str, dict[tuple[str, str], str]]:
    blocks, anchors = [], {}
    for s in seeds:
        videos = Layout(s.folder, names).videos_dir
        for row in s.report.rows:
            mp4 = videos / f"{row.route_id}.mp4"
            if not mp4.is_file():
                continue
            anchor = f"video-{len(anchors)}"
            anchors[(s.label, row.route_id)] = anchor
            rel = mp4.relative_to(out).as_posix()
            poster = videos / f"{row.route_id}.jpg"
            captions = videos / f"{row.route_id}.vtt"
            vtt = _e(captions.relative_to(out).as_posix())
            track = f"<track kind=captions srclang=en label=answer default src='{vtt}'>" if captions.is_file() else ""
            poster_attr = f" poster='{_e(poster.relative_to(out).as_posix())}'" if poster.is_file() else ""
            items = "".join(f"<li data-t='{t:.2f}'><span class=t>{_clock(t)}</span>{_e(text)}</li>"
                            for t, text in commentary(videos / f"{row.route_id}.commentary.jsonl"))  # fmt: skip
            title = f"route {row.route_id}" + (f" · {s.label}" if s.label else "")
            blocks.append(
                f"<div class=route id={anchor}><div><h2>{_e(title)} · {_e(row.town)} · {_e(row.scenario_type)} · "
                f"{_e(row.status)} · DS {row.score_composed:.2f}</h2><video controls preload=metadata{poster_attr} "
                f"src='{_e(rel)}'>{track}</video></div><div><h2>SimLingo says</h2><ul class=commentary>{items}"
                "</ul></div></div>"
            )  # fmt: skip
    if not blocks:
        return "", anchors
    return f"<section><h2>SimLingo's view, route by route</h2>{''.join(blocks)}</section>", anchors


def render(out: Path, names: RunRecipe, seeds: list[Seed]) -> str:
    figures = plots(seeds)
    videos, anchors = _videos(out, names, seeds)
    captions = {"latency": "Step latency (run_step, every step of every route)",
                "steps": "Simulation steps per second, per route", "gpu": "Peak GPU memory per route",
                "groups": "Driving Score by scenario type and by town"}  # fmt: skip
    missing = {"latency": "no step timings (the agent never ran a step)", "steps": "no step timings",
               "gpu": "not sampled (no NVML on the machine that ran the routes)", "groups": "no routes"}  # fmt: skip
    plot_html = "".join(
        f"<div{' class=wide' if k == 'groups' else ''}><h2>{captions[k]}</h2>"
        f"{figures[k] or f'<p class=muted>{missing[k]}</p>'}</div>"
        for k in captions
    )
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>simdoctor report · {_e(out.name)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>SimLingo on Bench2Drive · {_e(out)}</h1><p>simdoctor report, {when}</p></header><main>"
        f"{_scores(seeds)}<section><h2>Plots</h2><div class=plots>{plot_html}</div></section>"
        f"{_route_table(seeds, anchors)}{videos}</main><script>{SCRIPT}</script></body></html>\n"
    )
