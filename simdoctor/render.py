"""Findings to the terminal (rich, grouped) or to JSON. Plain text when not a TTY or with NO_COLOR."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional, TextIO

from rich.console import Console
from rich.text import Text

from simdoctor.findings import Finding, Status, counts
from simdoctor.typed import to_data

JSON_SCHEMA_VERSION = 1
MARKS = {
    Status.OK: ("✓", "green"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✗", "red"),
    Status.SKIP: ("-", "dim"),
}


def console(file: Optional[TextIO] = None, stderr: bool = False) -> Console:
    """A console that styles only on a terminal and honours NO_COLOR."""
    return Console(
        file=file,
        stderr=stderr,
        highlight=False,
        no_color=bool(os.environ.get("NO_COLOR")),
        soft_wrap=True,
    )


def findings_json(findings: list[Finding], extra: Optional[dict[str, Any]] = None) -> str:
    summary: dict[str, Any] = counts(findings)
    summary.update(extra or {})
    payload = {
        "schema_version": JSON_SCHEMA_VERSION,
        "results": [to_data(f) for f in findings],
        "summary": summary,
    }
    return json.dumps(payload, indent=2)


def report(findings: list[Finding], out: Console, verbose: bool = False, header: str = "") -> None:
    """Grouped report: one line per finding, the fix under each warning and failure, a summary last."""
    if header:
        out.print(Text(header, style="bold"))
    width = max((len(f.title) for f in findings), default=0)
    group = None
    for f in findings:
        if f.group != group:
            group = f.group
            out.print(Text(f"\n{group}", style="bold"))
        mark, style = MARKS[f.status]
        line = Text("  ")
        line.append(mark, style=style)
        line.append(f" {f.title.ljust(width)}  ")
        line.append(f.summary, style="dim" if f.status is Status.SKIP else "")
        out.print(line)
        if verbose:
            for d in f.details:
                out.print(Text(f"      {d}", style="dim"))
        if f.fix and f.status in (Status.WARN, Status.FAIL):
            out.print(Text(f"      fix: {f.fix.text}", style="cyan"))
            for command in f.fix.commands:
                out.print(Text(f"        $ {command}", style="bold cyan"))
    out.print(Text(summary_line(findings), style="bold"))


def summary_line(findings: list[Finding]) -> str:
    c = counts(findings)
    parts = ", ".join(f"{c[s.value]} {s.value}" for s in Status)
    problems = c["fail"] + c["warn"]
    if c["fail"]:
        verdict = f"{c['fail']} to fix before CARLA and the agent can run"
    elif problems:
        verdict = "ready, with warnings"
    else:
        verdict = "ready"
    return f"\n{verdict} ({parts})"


def is_plain() -> bool:
    return bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
