"""`simdoctor watch OUT`: a run, live, in a browser, from another terminal (or over `ssh -L`).

A small HTTP server (the standard library's, one thread per request) that reads only what `simdoctor run`
writes into OUT: the route files (the set), the task records (which attempt runs on which slot), the timing
wrapper's frame logs (`run --viz`: the newest frame, SimLingo's answer, its speed, the route progress), the
evaluator's results (the Driving Score so far) and whether a run holds `OUT/run.lock` (in /proc/locks, without
touching the lock). It keeps nothing of its own, so it carries on through a run that ends, is resumed or
crashes; the page asks it for the state every second.

It binds to loopback unless `--host` says otherwise, and every request needs the token printed in the URL
(as Jupyter's); the first request with it sets a cookie, so the page's own requests carry it. Requests are
not logged (their URLs hold the token). A frame is served only from a PNG inside OUT that the log names.
"""

from __future__ import annotations

import hmac
import http.server
import ipaddress
import json
import os
import secrets
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from simdoctor.config.recipe import ConfigError, RunRecipe
from simdoctor.run import report, results, routes
from simdoctor.run.outdir import Layout
from simdoctor.run.viz import video
from simdoctor.system import filelock

DEFAULT_PORT = 8765
PORT_TRIES = 20
COOKIE = "simdoctor_watch"
RECENT = 8


@dataclass(frozen=True)
class Watched:
    layout: Layout
    token: str


def state(layout: Layout) -> dict[str, Any]:
    """Everything the page shows, from the run folder's files as they are now."""
    try:
        route_set = [t.route for t in routes.read_routes(layout.routes_dir)]
    except ConfigError:  # no route files yet (the run is starting), or none readable
        route_set = []
    slots, finished = [], []
    scores: dict[str, float] = {}
    for route in route_set:
        task = results.read_task(layout.task_file(route.id))
        last = task.last if task else None
        record = results.read_results(layout.results_file(route.id)).last
        if task is not None and task.final is not None:
            scores[route.id] = record.score_composed if record and task.final == "result" else 0.0
            finished.append((last.ended if last and last.ended else 0.0, route, task, record))
        if last is None or last.ended is not None:
            continue
        frame = video.last_frame(layout.frames_file(route.id))
        slots.append({
            "slot": last.slot, "route": route.id, "town": route.town, "scenario": route.scenario_type,
            "attempt": last.number, "started": last.started, "elapsed_s": time.time() - last.started,
            "host": last.host, "step": frame.step if frame else None, "sim_time": frame.sim_time if frame else None,
            "answer": frame.answer if frame else None, "speed": frame.speed if frame else None,
            "progress": frame.progress if frame else None,
            "frame": f"/frame/{urllib.parse.quote(route.id)}?step={frame.step}" if frame else None,
        })  # fmt: skip
    holder = filelock.holder_pid(layout.lock_file)
    if holder is None:
        slots = []  # attempts of a run that is gone never end on their own: nothing runs now
    finished.sort(key=lambda item: -item[0])
    return {
        "out": str(layout.root),
        "running": holder is not None,
        "pid": holder,
        "routes": len(route_set),
        "done": len(scores),
        "driving_score": sum(scores.values()) / len(scores) if scores else None,
        "slots": sorted(slots, key=lambda s: s["slot"]),
        "recent": [
            {
                "route": route.id,
                "town": route.town,
                "final": task.final,
                "status": record.status if record else None,
                "score": scores.get(route.id),
                "video": video.video_of(layout, route.id) is not None,
            }
            for _, route, task, record in finished[:RECENT]
        ],
        "now": time.time(),
    }


def frame_file(layout: Layout, route_id: str, step: Optional[int] = None) -> Optional[Path]:
    """The frame of `step` (else the newest) the route's log names, only when it is a PNG inside the run folder:
    the picture then shows the answer the page shows beside it."""
    frame = video.last_frame(layout.frames_file(route_id), step)
    if frame is None or not frame.frame:
        return None
    path = Path(os.path.realpath(frame.frame))
    root = Path(os.path.realpath(layout.root))
    if path.suffix != ".png" or root not in path.parents or not path.is_file():
        return None
    return path


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "simdoctor-watch"
    watched: Watched  # set on the subclass the server is made with

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing is logged: request lines carry the token."""

    def _authorized(self, query: dict[str, list[str]]) -> tuple[bool, bool]:
        """(allowed, by the URL's token): the token in the query or in the cookie it set."""
        token = self.watched.token.encode()
        given = query.get("token", [""])[0]
        # compare_digest takes only ASCII str: bytes, so a stranger's non-ASCII token is a refusal, not a traceback
        if given and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token):
            return True, True
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode("utf-8", "surrogateescape"), token):
                return True, False
        return False, False

    def _send(self, code: int, body: bytes, kind: str, cookie: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if cookie:
            self.send_header("Set-Cookie", f"{COOKIE}={self.watched.token}; Path=/; HttpOnly; SameSite=Strict")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        allowed, by_url = self._authorized(urllib.parse.parse_qs(url.query))
        if not allowed:
            self._send(403, b"simdoctor watch: this needs the URL with its token (printed by `simdoctor watch`)\n",
                       "text/plain; charset=utf-8")  # fmt: skip
            return
        layout = self.watched.layout
        try:
            if url.path == "/":
                self._send(200, PAGE.encode(), "text/html; charset=utf-8", cookie=by_url)
            elif url.path == "/api/state":
                self._send(200, json.dumps(state(layout)).encode(), "application/json", cookie=by_url)
            elif url.path.startswith("/frame/"):
                step = urllib.parse.parse_qs(url.query).get("step", [""])[0]
                path = frame_file(
                    layout, urllib.parse.unquote(url.path[len("/frame/") :]), int(step) if step.isdigit() else None
                )
                if path is None:
                    self._send(404, b"no frame\n", "text/plain; charset=utf-8")
                else:
                    self._send(200, path.read_bytes(), "image/png")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
        except (OSError, ValueError, ConfigError) as exc:  # files changing under us: the next poll sees them settled
            self._send(503, f"{type(exc).__name__}\n".encode(), "text/plain; charset=utf-8")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, family: int) -> None:
        self.address_family = family
        super().__init__(address, handler)


def serve(out: Path, names: RunRecipe, host: str, port: Optional[int]) -> tuple[Server, str]:
    """A server for OUT on host:port (the first free from 8765 when no port is given) and its URL."""
    layout = Layout(Path(out).expanduser().resolve(), names)
    if layout.root.exists() and not layout.root.is_dir():
        raise ConfigError(f"{out} is a file, not a folder: give the `simdoctor run` output folder")
    if layout.root.exists() and not layout.routes_dir.is_dir() and any(layout.root.iterdir()):
        seeds = report.run_folders(layout.root, names)  # not a run folder: says so
        shown = ", ".join(p.name for _, p in seeds)
        raise ConfigError(f"{out} holds a run per seed ({shown}): watch one, e.g. `simdoctor watch {seeds[0][1]}`")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise ConfigError(f"--host {host!r}: give an IP address to bind to (127.0.0.1, 0.0.0.0, ::)") from None
    handler = type("BoundHandler", (Handler,), {"watched": Watched(layout, secrets.token_urlsafe(24))})
    candidates = [port] if port is not None else list(range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES))
    for candidate in candidates:
        try:
            server = Server((host, candidate), handler, family)
            break
        except OSError as exc:
            error = exc
    else:
        raise ConfigError(f"cannot listen on {host}:{candidates[0]}: {error.strerror}; pass another --port")
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    bound = server.server_address[1]
    return server, f"http://{shown}:{bound}/?token={handler.watched.token}"


def layout_exists(out: Path) -> bool:
    return Path(out).expanduser().exists()


def run(out: Path, names: RunRecipe, host: str = "127.0.0.1", port: Optional[int] = None) -> int:
    """`simdoctor watch`: serve until Ctrl-C; 0."""
    server, url = serve(out, names, host, port)
    loopback = ipaddress.ip_address(host).is_loopback
    bound = server.server_address[1]
    lines = [f"simdoctor watch: {url}"]
    if loopback:
        lines.append(f"  from your machine: ssh -N -L {bound}:localhost:{bound} <this server>, then open the URL")
    else:
        lines.append(
            f"  listening on {host}:{bound}, reachable from the network: the token is required on every request"
        )
    if not layout_exists(out):
        lines.append(f"  {out} does not exist yet: the page fills in once `simdoctor run --out {out}` starts")
    lines.append("  Ctrl-C stops it (the run goes on)")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


PAGE = """<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>
<title>simdoctor watch</title><style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#10151d;color:#e8edf3}
header{padding:14px 24px;background:#1b2330;display:flex;gap:28px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}.stat b{font-size:20px}.muted{color:#93a1b3}
main{padding:16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:16px}
.slot{background:#1b2330;border-radius:8px;overflow:hidden}.slot img{width:100%;display:block;background:#000;
min-height:120px}.slot .body{padding:10px 14px}.answer{font-size:16px;margin:6px 0}.bar{height:6px;
background:#2c3747;border-radius:3px;overflow:hidden}.bar i{display:block;height:100%;background:#4cc38a}
table{border-collapse:collapse;width:100%}td{padding:3px 8px;border-bottom:1px solid #2c3747}
#idle{padding:24px;color:#93a1b3}
</style></head><body>
<header><h1>simdoctor watch</h1><span class=stat>routes <b id=done>-</b> of <b id=routes>-</b></span>
<span class=stat>Driving Score so far <b id=ds>-</b></span><span id=run class=muted></span>
<span id=out class=muted></span></header>
<main id=slots></main><div id=idle></div>
<section style='padding:0 24px 24px'><h2 style='font-size:15px'>Last finished</h2><table id=recent></table></section>
<script>
const cards = {};
function esc(t) { const d = document.createElement('div'); d.textContent = t == null ? '' : t; return d.innerHTML; }
function card(s) {
  let c = cards[s.slot];
  if (!c) {
    c = document.createElement('div'); c.className = 'slot';
    c.innerHTML = "<img alt=''><div class=body><div class=title></div><div class=answer></div>" +
      "<div class=bar><i></i></div><div class=facts muted></div></div>";
    document.getElementById('slots').appendChild(c); cards[s.slot] = c;
  }
  return c;
}
async function poll() {
  try {
    const r = await fetch('/api/state', {cache: 'no-store'});
    if (!r.ok) throw new Error(r.status);
    const st = await r.json();
    document.getElementById('done').textContent = st.done;
    document.getElementById('routes').textContent = st.routes;
    document.getElementById('ds').textContent = st.driving_score == null ? '-' : st.driving_score.toFixed(2);
    document.getElementById('run').textContent = st.running ? 'run in progress (pid ' + st.pid + ')' :
      'no run is using this folder (finished, stopped or crashed; rerun to resume)';
    document.getElementById('out').textContent = st.out;
    const live = new Set(st.slots.map(s => String(s.slot)));
    for (const k of Object.keys(cards)) if (!live.has(k)) { cards[k].remove(); delete cards[k]; }
    for (const s of st.slots) {
      const c = card(s), img = c.querySelector('img');
      if (s.frame && img.dataset.src !== s.frame) { img.dataset.src = s.frame; img.src = s.frame; }
      c.querySelector('.title').innerHTML = '<b>slot ' + s.slot + '</b> · route ' + esc(s.route) + ' · ' +
        esc(s.town) + ' · ' + esc(s.scenario) + ' · attempt ' + s.attempt;
      c.querySelector('.answer').textContent = s.answer || (s.frame ? '' : 'no frame yet (run --viz draws them)');
      c.querySelector('.bar i').style.width = ((s.progress || 0) * 100).toFixed(1) + '%';
      c.querySelector('.facts').textContent = [
        s.speed == null ? null : (s.speed * 3.6).toFixed(1) + ' km/h',
        s.progress == null ? null : 'route ' + (s.progress * 100).toFixed(0) + ' %',
        s.sim_time == null ? null : 'simulated ' + s.sim_time.toFixed(1) + ' s (step ' + s.step + ')',
        'running ' + Math.round(s.elapsed_s) + ' s'].filter(Boolean).join(' · ');
    }
    document.getElementById('idle').textContent = st.slots.length ? '' : 'No route is running now.';
    document.getElementById('recent').innerHTML = st.recent.map(r => '<tr><td>route ' + esc(r.route) + '</td><td>' +
      esc(r.town) + '</td><td>' + esc(r.status || r.final) + '</td><td>' +
      (r.score == null ? '' : 'DS ' + r.score.toFixed(2)) + '</td></tr>').join('');
  } catch (e) {
    document.getElementById('run').textContent = 'simdoctor watch is not answering (' + e.message + ')';
  }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
"""
