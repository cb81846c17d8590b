"""`check`'s own command-line reader (simdoctor.entry) against typer's: the same options, the same arguments for
every command line it takes, and typer's word on every one it declines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from simdoctor import cli, entry

VALUES = {"flag": None, "str": "x y", "int": "2100", "path": "/tmp/a b.json", "list": "gpu,carla"}


def check_command() -> Any:
    return typer.main.get_command(cli.app).commands["check"]


def kind_of(param: Any) -> Any:
    if param.is_flag:
        return "flag"
    if param.multiple:
        return "list"
    if hasattr(param.type, "choices"):
        return tuple(param.type.choices)
    return {"IntParamType": "int", "TyperPath": "path", "StringParamType": "str"}[type(param.type).__name__]


def test_the_table_holds_exactly_typers_check_options():
    options = [p for p in check_command().params if p.name != "help"]
    assert {o for p in options for o in (*p.opts, *p.secondary_opts)} == set(entry.CHECK_OPTIONS)
    for p in options:
        for spelling in (*p.opts, *p.secondary_opts):
            assert entry.CHECK_OPTIONS[spelling] == (p.name, kind_of(p)), spelling
        assert entry.DEFAULTS[p.name] == p.default, p.name
        assert not p.envvar and p.callback is None and not p.is_eager, f"{p.name}: the reader here would miss it"
    assert set(entry.DEFAULTS) == {p.name for p in options}


def every_option_once() -> list[str]:
    line = ["check"]
    for spelling, (_, kind) in entry.CHECK_OPTIONS.items():
        value = kind[-1] if isinstance(kind, tuple) else VALUES[kind]
        line += [spelling] if value is None else [spelling, value]
    return line


PLAIN = [
    ["check"],
    ["check", "--json"],
    ["check", "-v", "--strict"],
    ["check", "--only", "gpu,carla", "--only", "agent", "--skip", "vulkan", "--skip", " display , "],
    ["check", "--backend", "docker", "--carla-port", "007", "--recipe", "r", "--dump-facts", "f.json"],
    ["check", "--backend", "process", "--backend", "docker"],
    ["check", "--executor", "slurm", "--probe", "--out", "/o", "--partition", "p", "--account", "a", "--qos", "q"],
    ["check", "--executor", "local", "--backend", "docker"],
    ["check", "--facts", "f.json", "--list", "--deep", "--window", "--viz", "--verbose", "--json", "--json"],
    ["check", "--carla-root", "/c", "--work-dir", "w", "--agent-python", "python3", "--carla-host", "h"],
    ["check", "--recipe", "a", "--recipe", "b.toml", "--carla-host", "h", "--carla-host", "::1"],
    every_option_once(),
]
DECLINED = [
    ["check", "--help"],
    ["check", "--only=gpu"],
    ["check", "--backend", "Docker"],
    ["check", "--slurm"],  # the old spelling: typer rewrites it, with its deprecation note
    ["check", "--carla-port", "12a"],
    ["check", "--carla-port", "+5"],
    ["check", "--carla-port", "-1"],
    ["check", "--only"],
    ["check", "--recipe", ""],
    ["check", "--recipe", "--json"],
    ["check", "extra"],
    ["check", "--"],
    ["check", "-vv"],
    ["check", "--bogus"],
    ["--version"],
    ["run", "--json"],
    [],
]


def typers_arguments(monkeypatch, argv: list[str]) -> dict[str, Any]:
    """What typer passes to the check body for `argv`."""
    seen: dict[str, Any] = {}

    def record(**arguments: Any) -> int:
        seen.update(arguments)
        return 0

    monkeypatch.setattr(entry, "check", record)
    cli.app(args=argv, prog_name="simdoctor", standalone_mode=False)
    return seen


@pytest.mark.parametrize("argv", PLAIN, ids=lambda argv: " ".join(argv))
def test_both_readers_give_check_the_same_arguments(monkeypatch, argv):
    ours = entry.check_arguments(argv, {})
    assert ours is not None, "a plain check command line must not need typer"
    assert ours == typers_arguments(monkeypatch, argv)


@pytest.mark.parametrize("argv", DECLINED, ids=lambda argv: " ".join(argv) or "(none)")
def test_anything_else_goes_to_typer(argv):
    assert entry.check_arguments(argv, {}) is None


def test_shell_completion_goes_to_typer():
    assert entry.check_arguments(["check", "--json"], {"_SIMDOCTOR_COMPLETE": "bash_complete"}) is None
    assert entry.check_arguments(["check", "--json"], {"_TYPER_COMPLETE_ARGS": "simdoctor check"}) is None


def imported_uis(*argv: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run `simdoctor ARGV` for real; which of typer, click and rich it imported."""
    code = (
        f"import sys; sys.argv = ['simdoctor', *{list(argv)!r}]\n"
        "try:\n    import simdoctor.entry; simdoctor.entry.main()\n"
        "finally:\n    print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click', 'rich'}),"
        " file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return done, done.stderr.strip().splitlines()[-1]


def test_a_plain_check_never_imports_typer_click_or_rich_for_json(tmp_path: Path):
    """check's own reader needs no typer; --json needs no rich (issue 15: start-up). The report itself does."""
    done, uis = imported_uis("check", "--list")
    assert done.returncode == 0 and "agent.python" in done.stdout and uis == "[]"
    dump = tmp_path / "facts.json"
    done, uis = imported_uis("check", "--dump-facts", str(dump), "--json")
    assert json.loads(done.stdout)["summary"] and uis == "[]"
    done, uis = imported_uis("check", "--facts", str(dump))
    assert "simdoctor check · recipe" in done.stdout and uis == "['rich']"


def test_both_paths_answer_alike_end_to_end(simdoctor, tmp_path: Path):
    """The same replayed facts through this reader (`--facts F`) and through typer (`--facts=F`): the same report
    and exit code; and the same one-line usage error for --probe without --executor slurm."""
    dump = tmp_path / "facts.json"
    simdoctor("check", "--dump-facts", str(dump), "--json")
    fast = simdoctor("check", "--facts", str(dump), "--json", "-v")
    slow = simdoctor("check", f"--facts={dump}", "--json", "-v")
    assert fast.returncode == slow.returncode
    drop = lambda out: {**json.loads(out), "summary": {**json.loads(out)["summary"], "seconds": None}}  # noqa: E731
    assert drop(fast.stdout) == drop(slow.stdout)
    for line in (["--probe"], ["--probe", "--out=/o"]):
        done = simdoctor("check", *line)
        assert (done.returncode, done.stderr) == (2, "simdoctor: --probe needs --executor slurm\n")
