"""Findings to the terminal (rich, grouped) or to JSON, and the wrapping every text report shares: lines fit the
console's width (80 when not a terminal, or COLUMNS) with a hanging indent. Plain text when not a TTY or with
NO_COLOR."""

from __future__ import annotations

import json
import shlex
import textwrap
from typing import TYPE_CHECKING, Any, Optional, Union

from simdoctor.config.typed import to_data
from simdoctor.doctor.findings import Finding, Status, counts

if TYPE_CHECKING:  # rich loads where text is printed, not for --json
    from rich.console import Console

JSON_SCHEMA_VERSION = 1
MARKS = {
    Status.OK: ("✓", "green"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✗", "red"),
    Status.SKIP: ("-", "dim"),
}


def fit(text: str, width: int, indent: int = 0, hang: Optional[int] = None) -> list[str]:
    """Prose wrapped to `width` columns: the first line indented by `indent`, the rest by `hang` (default the
    same). A word longer than a line is broken, so nothing runs past the width."""
    hang = indent if hang is None else hang
    lines = textwrap.wrap(
        text, width, initial_indent=" " * indent, subsequent_indent=" " * hang, break_on_hyphens=False
    )
    return lines or [" " * indent]


def say(out: Console, text: str, indent: int = 0, hang: Optional[int] = None, style: str = "") -> None:
    """Print prose wrapped to the console (fit), each line in `style`."""
    from rich.text import Text

    for line in fit(text, out.width, indent, hang):
        out.print(Text(line, style=style))


SHELL_OPERATORS = ("&&", "||", "|", ";")


def shell_lines(command: Union[str, list[str]], width: int, first: str, rest: str) -> list[str]:
    """A command over lines of `width` columns, broken only between words with ` \\`, so it still runs as
    pasted. An argv is quoted word by word; a command string is broken only when shlex reads it back to exactly
    the same text, its operators (&&, |, ;) as they were: then every break falls on a space outside quotes.
    Otherwise (a glob, a $VARIABLE, odd quoting a split could change) it stays whole."""
    if isinstance(command, str):
        try:
            words = [w if w in SHELL_OPERATORS else shlex.quote(w) for w in shlex.split(command)]
        except ValueError:  # unbalanced quotes: not ours to judge
            words = []
        if " ".join(words) != command:
            words = [command]
    else:
        words = [shlex.quote(word) for word in command]
    lines, line = [], first + words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) + 2 > width:  # room for " \\"
            lines.append(line + " \\")
            line = rest + word
        else:
            line += " " + word
    return [*lines, line]


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
    from rich.text import Text

    if header:
        say(out, header, style="bold")
    width = max((len(f.title) for f in findings), default=0)
    hang = 4 + width + 2  # the summary column: "  ✓ " + title + "  "
    group = None
    for f in findings:
        if f.group != group:
            group = f.group
            out.print(Text(f"\n{group}", style="bold"))
        mark, style = MARKS[f.status]
        line = Text("  ")
        line.append(mark, style=style)
        summary_style = "dim" if f.status is Status.SKIP else ""
        if out.width - hang >= 20:
            first, *rest = fit(f.summary, out.width, hang, hang)
            line.append(f" {f.title.ljust(width)}  ")
            line.append(first[hang:], style=summary_style)
        else:  # too narrow for two columns: the summary goes under the title
            line.append(f" {f.title}")
            rest = fit(f.summary, out.width, 6)
        out.print(line)
        for r in rest:
            out.print(Text(r, style=summary_style))
        if verbose:
            for d in f.details:
                say(out, d, indent=6, hang=8, style="dim")
        if f.fix and f.status in (Status.WARN, Status.FAIL):
            say(out, f"fix: {f.fix.text}", indent=6, hang=11, style="cyan")
            for command in f.fix.commands:
                for row in shell_lines(command, out.width, "        $ ", " " * 12):
                    out.print(Text(row, style="bold cyan"))
    out.print()
    say(out, summary_line(findings), style="bold")


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
    return f"{verdict} ({parts})"
