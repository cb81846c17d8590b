"""What a person reads on a terminal: `check`, `run --dry-run` and `report` fit 80 columns with their columns
aligned, and NO_COLOR leaves no escape sequence at all on a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import sys
import termios

import pytest
from conftest import REPO
from test_report import bench2drive_run, layout  # noqa: F401  (the fixture)
from test_runplan import stack  # noqa: F401  (the fixture)

H100 = REPO / "tests" / "data" / "h100"
FINDING = re.compile(r"^  [✓!✗-] ")


def piped(*args: str, columns: int = 80) -> str:
    """The command's stdout as a pipe shows it with COLUMNS (80 unless told) (rich reads it when not on a terminal)."""
    done = subprocess.run(
        [sys.executable, "-m", "simdoctor", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env=dict(os.environ, COLUMNS=str(columns), NO_COLOR="1"), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def on_a_terminal(*args: str, env: dict[str, str]) -> bytes:
    """The command's bytes as an 80x40 pseudo-terminal receives them (stdout and stderr are the terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    env = {k: v for k, v in {**os.environ, "TERM": "xterm-256color", **env}.items() if k != "COLUMNS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simdoctor", *args],
        stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    data = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        assert ready, "the command stopped writing for 120 s"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    assert proc.wait(timeout=60) in (0, 1), data.decode(errors="replace")
    return data


def unbreakable(line: str) -> bool:
    """A line that may run past 80 columns: one shell word (an assignment NAME=value, a path), or a fix's
    command that shlex does not read back to the same text (operators, globs, $VARIABLES), which breaking
    between words could change; everything else must wrap."""
    text = line.strip().removeprefix("$ ").removesuffix(" \\")
    try:
        words = shlex.split(text)
    except ValueError:
        return line.lstrip().startswith("$ ")
    if len(words) == 1:
        return True
    return line.lstrip().startswith("$ ") and " ".join(map(shlex.quote, words)) != text


def too_wide(text: str, columns: int = 80) -> list[str]:
    return [line for line in text.splitlines() if len(line) > columns and not unbreakable(line)]


@pytest.mark.parametrize("dump", ["bare", "loader", "deep"])
def test_check_fits_80_columns_with_the_summaries_aligned(home, dump: str) -> None:
    text = piped("check", "--facts", str(H100 / f"facts-{dump}.json"), "-v")
    lines = text.splitlines()
    assert len(lines) > 60 and not too_wide(text), too_wide(text)
    findings = [line for line in lines if FINDING.match(line)]
    column = {len(line) - len(line[4:].split("  ", 1)[1].lstrip()) for line in findings if "  " in line[4:]}
    assert len(column) == 1, column  # every summary starts in the same column
    (summary_at,) = column
    wrapped = [line for line in lines if len(line) - len(line.lstrip()) == summary_at]
    assert wrapped, "no summary needed a second line: the test shows nothing"
    # every other continuation sits under details (8) or a command (12), never at a random column
    assert {len(line) - len(line.lstrip()) for line in lines if line.strip()} <= {0, 2, 6, 8, 11, 12, summary_at}


def test_check_on_a_narrow_terminal_puts_summaries_under_the_titles(home) -> None:
    text = piped("check", "--facts", str(H100 / "facts-bare.json"), "-v", columns=40)
    assert not too_wide(text, 40), too_wide(text, 40)
    assert "  ✗ User\n      running as root:" in text


def test_a_long_fix_command_breaks_between_words_and_still_parses(home) -> None:
    text = piped("check", "--facts", str(H100 / "facts-bare.json"))
    commands, current = [], None
    for line in text.splitlines():
        if line.lstrip().startswith("$ "):
            current = [line.strip()[2:]]
            commands.append(current)
        elif current is not None and line.startswith(" " * 12) and commands[-1][-1].endswith(" \\"):
            current.append(line.strip())
        else:
            current = None
    broken = [parts for parts in commands if len(parts) > 1]
    assert broken, "no command needed breaking: the test shows nothing"
    for parts in broken:
        joined = " ".join(part.removesuffix(" \\") for part in parts)
        assert shlex.split("\n".join(parts).replace("\\\n", "")) == shlex.split(joined)
        assert subprocess.run(["bash", "-n", "-c", "\n".join(parts)]).returncode == 0


def test_run_dry_run_fits_80_columns(stack, tmp_path) -> None:  # noqa: F811
    settings, source = stack
    text = piped("run", "--dry-run", "--gpus", "none", "--workers-per-gpu", "2", "--routes", str(source),
                 "--out", str(tmp_path / "out"), "--work-dir", str(settings.work_dir),
                 "--agent-python", settings.agent_python)  # fmt: skip
    assert "slots (2)" in text and not too_wide(text), too_wide(text)
    assert any(line.endswith(" \\") for line in text.splitlines()), "the evaluator's command did not need breaking"


def test_report_fits_80_columns(layout, tmp_path) -> None:  # noqa: F811
    bench2drive_run(layout, tmp_path)
    text = piped("report", str(layout.root))
    assert "by scenario type" in text and not too_wide(text), too_wide(text)


@pytest.mark.parametrize("no_color", [True, False])
def test_no_color_leaves_no_escape_on_a_terminal(home, no_color: bool) -> None:
    env = {"NO_COLOR": "1"} if no_color else {}
    data = on_a_terminal("check", "--facts", str(H100 / "facts-bare.json"), "-v", env=env)
    assert b"Vulkan loader" in data
    assert (b"\x1b" in data) is not no_color  # without NO_COLOR the terminal gets styles: the test can fail


def test_no_color_report_and_dry_run_on_a_terminal(stack, layout, tmp_path) -> None:  # noqa: F811
    settings, source = stack
    bench2drive_run(layout, tmp_path)
    dry = on_a_terminal("run", "--dry-run", "--gpus", "none", "--routes", str(source), "--out", str(tmp_path / "o"),
                        "--work-dir", str(settings.work_dir), "--agent-python", settings.agent_python,
                        env={"NO_COLOR": "1"})  # fmt: skip
    report = on_a_terminal("report", str(layout.root), env={"NO_COLOR": "1"})
    assert b"slots (" in dry and b"by town" in report
    assert b"\x1b" not in dry + report
