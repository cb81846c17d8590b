"""What `simdoctor carla` prints: plain lines for people, one JSON object with --json."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional, TextIO

from simdoctor.carla.diagnose import Diagnosis
from simdoctor.carla.errors import Refusal
from simdoctor.carla.lifecycle import StartResult, StatusReport, Stopped
from simdoctor.carla.rendering import BAD, GPU
from simdoctor.config.typed import to_data
from simdoctor.doctor import distro
from simdoctor.doctor.checking import gib
from simdoctor.doctor.findings import Fix
from simdoctor.system.proctree import StopResult

JSON_SCHEMA_VERSION = 1


def _json(payload: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **payload}, indent=2) + "\n")


def _fix(fix: Optional[Fix], out: TextIO, indent: str = "  ") -> None:
    if fix is None:
        return
    if fix.text:
        out.write(f"{indent}fix: {fix.text}\n")
    for command in fix.commands:
        out.write(f"{indent}  $ {command}\n")


def refusal(exc: Refusal, json_out: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
    """A refusal's fixes are written canonically (`simdoctor ...`, `sudo ...`): printed as they run here."""
    fix = distro.localize(exc.fix, distro.Machine.here())
    if json_out:
        _json({"status": "refused", "exit_code": 1, "summary": str(exc), "fix": to_data(fix),
               "details": exc.details}, out)  # fmt: skip
        return
    err.write(f"simdoctor: {exc}\n")
    for line in exc.details:
        err.write(f"  {line}\n")
    _fix(fix, err)


def _cleanup(result: StopResult) -> str:
    if not result.terminated and not result.left:
        return "nothing was left running"
    if result.left:
        return "STILL RUNNING: " + ", ".join(f"pid {p.pid} ({p.command})" for p in result.left)
    killed = f", {len(result.killed)} needed KILL" if result.killed else ""
    return f"stopped {len(result.terminated)} process(es){killed}; nothing left running"


def _diagnosis(d: Diagnosis, out: TextIO, cause_known: bool) -> None:
    label = {"cause": "cause", "trailer": "crash", "harmless": "note"}[d.kind]
    out.write(f"  {label}: {d.cause}  [{', '.join(d.sources)}]\n")
    for line in d.lines:
        out.write(f"      | {line}\n")
    if d.kind == "cause" or (d.kind == "trailer" and not cause_known):  # a known cause's fix says it all
        _fix(distro.localize(d.fix, distro.Machine.here()), out, "    ")


def start(result: StartResult, json_out: bool, out: TextIO = sys.stdout) -> None:
    if json_out:
        _json(to_data(result), out)
        return
    rec = result.record
    mark = "✓" if result.exit_code == 0 else "✗" if result.status != "ready" else "!"
    out.write(f"{mark} {result.summary}\n")
    for note in result.notes:
        out.write(f"  note: {note}\n")
    if rec is not None and result.status in ("ready", "started"):
        pid = f", pid {rec.tree.pid}" if rec.tree and rec.backend == "process" else ""
        where = f", container {rec.container_name}" if rec.container_name else ""
        out.write(f"  server {rec.id} ({rec.backend} backend{pid}{where})\n")
        if rec.gpu_index is not None:
            name = " ".join(filter(None, (rec.gpu_name, rec.gpu_uuid)))
            adapter = f", Vulkan adapter {rec.adapter}" if rec.adapter is not None else ""
            out.write(f"  GPU {rec.gpu_index}{' ' + name if name else ''}{adapter}\n")
        out.write(
            f"  ports: rpc {rec.port}, streaming {rec.streaming_port}, secondary {rec.secondary_port}, "
            f"traffic manager {rec.tm_port}\n"
        )
    if result.ready is not None:
        out.write(f"  version {result.ready.version} (read via {result.ready.via})\n")
    if result.rendering is not None:
        r = result.rendering
        mark = "✓" if r.verdict == GPU else "✗" if r.verdict in BAD else "?"
        out.write(f"  rendering {mark} {r.summary}\n")
        for line in r.details:
            out.write(f"      {line}\n")
    cause_known = any(d.kind == "cause" for d in result.diagnoses)
    for d in result.diagnoses:
        _diagnosis(d, out, cause_known)
    if result.diagnoses == [] and result.log_tail:
        out.write("  no known failure string in the log; its last lines:\n")
        for line in result.log_tail:
            out.write(f"      | {line}\n")
    if result.cleanup is not None:
        out.write(f"  cleanup: {_cleanup(result.cleanup)}\n")
    if rec is not None:
        out.write(f"  log: {rec.log}\n")
        if result.status in ("ready", "started"):
            out.write(f"  stop it: simdoctor carla stop {rec.id}\n")


def _age(started: Optional[float]) -> str:
    if started is None:
        return "-"
    seconds = int(time.time() - started)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def status(report: StatusReport, json_out: bool, out: TextIO = sys.stdout) -> None:
    if json_out:
        _json(to_data(report), out)
        return
    if not report.servers:
        out.write("no CARLA server is running\n")
    rows = [("ID", "STATE", "VERSION", "PORT", "GPU", "GPU MEMORY", "PIDS", "UP", "STARTED BY")]
    for s in report.servers:
        state_text = ("ready" if s.version else "running") if s.alive else ("dead" if s.id else "not visible")
        memory = ", ".join(f"GPU {u.gpu_index}: {gib(u.used_bytes)}" for u in s.gpu) or "-"
        gpu = str(s.gpu_index) if s.gpu_index is not None else "-"
        started_by = f"simdoctor ({s.backend})" if s.started_by_simdoctor else "NOT simdoctor"
        rows.append((s.id or "-", state_text, s.version or "-", str(s.port or "-"), gpu, memory,
                     ",".join(map(str, s.pids)) or "-", _age(s.started_at), started_by))  # fmt: skip
    if report.servers:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    for s in report.servers:
        if not s.started_by_simdoctor:
            out.write(f"not started by simdoctor: pid {s.pids[0]}: {s.command}\n")
        elif not s.alive:
            out.write(f"server {s.id} is dead (log {s.log}); `simdoctor carla stop {s.id}` drops its record\n")
    if any(not s.started_by_simdoctor for s in report.servers):
        out.write("stop those (only if nothing of yours uses them): simdoctor carla stop --orphans\n")
    if report.nvml_error:
        out.write(f"GPU memory unknown: {report.nvml_error}\n")


def stopped(done: list[Stopped], json_out: bool, out: TextIO = sys.stdout) -> None:
    if json_out:
        _json({"stopped": [{**to_data(s), "clean": s.clean} for s in done]}, out)
        return
    if not done:
        out.write("nothing to stop\n")
    for s in done:
        if s.error:
            out.write(f"✗ {s.label}: {s.error}\n")
        else:
            mark = "✓" if s.clean else "✗"
            out.write(f"{mark} {s.label}: {_cleanup(s.result)} ({s.result.seconds:.2f} s)\n")
