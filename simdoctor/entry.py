"""The console entry point, and `check`'s command line read without typer.

Importing typer (with its click) costs about 40 ms, a sixth of a whole `check`; `check` is the command meant to
answer at once, so a `check` command line made only of its own options, each in its plain spelling
(`--only X`, not `--only=X`), is read here and the command runs without typer. Anything else: another command,
help, shell completion, a value the option would refuse, an unknown option, goes to the typer app in
simdoctor.cli, which says what it always said. tests/test_entry.py proves that both read every such command line
into the same arguments, and that this table holds exactly the options typer's `check` has.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings, load_settings, redact_url

EXIT_USAGE = 2
# check's options: spelling -> (parameter, kind); a kind is "flag", "str", "int", "path", "list" (repeatable) or
# the tuple of the values a choice takes. Parameters absent from the command line keep DEFAULTS.
CHECK_OPTIONS: dict[str, tuple[str, Any]] = {
    "--json": ("json_out", "flag"),
    "-v": ("verbose", "flag"),
    "--verbose": ("verbose", "flag"),
    "--only": ("only", "list"),
    "--skip": ("skip", "list"),
    "--strict": ("strict", "flag"),
    "--deep": ("deep", "flag"),
    "--window": ("window", "flag"),
    "--viz": ("viz", "flag"),
    "--backend": ("backend", ("process", "docker")),
    "--list": ("list_checks", "flag"),
    "--dump-facts": ("dump_facts", "path"),
    "--facts": ("facts_file", "path"),
    "--recipe": ("recipe", "str"),
    "--carla-root": ("carla_root", "str"),
    "--work-dir": ("work_dir", "str"),
    "--agent-python": ("agent_python", "str"),
    "--carla-host": ("carla_host", "str"),
    "--carla-port": ("carla_port", "int"),
    "--executor": ("executor", ("local", "slurm")),
    "--probe": ("probe", "flag"),
    "--out": ("out", "path"),
    "--partition": ("partition", "str"),
    "--account": ("account", "str"),
    "--qos": ("qos", "str"),
}
DEFAULTS: dict[str, Any] = {
    name: False if kind == "flag" else kind[0] if isinstance(kind, tuple) else None
    for name, kind in CHECK_OPTIONS.values()
}  # a choice's default is its first value


class Interrupted(Exception):
    """Ctrl-C (or TERM/HUP while a command turns them into Ctrl-C) that the command did not handle itself."""


def main() -> NoReturn:
    """`simdoctor`: a plain `check` runs from here; every other command line goes through typer (simdoctor.cli)."""
    arguments = check_arguments(sys.argv[1:], os.environ)
    if arguments is None:
        from simdoctor import cli

        cli.main()
    guarded(lambda: check(**arguments))


def check_arguments(argv: list[str], env: Any) -> Optional[dict[str, Any]]:
    """check's arguments when `argv` is a `check` command line this parser takes exactly as typer does; else
    None. Declined: another command, help, `--name=value`, a value that starts with '-' or is empty, an int
    that is not plain digits, a choice not among its values, a positional argument, shell completion."""
    if not argv or argv[0] != "check" or any(k.startswith("_") and "COMPLETE" in k for k in env):
        return None
    arguments = dict(DEFAULTS)
    rest = iter(argv[1:])
    for arg in rest:
        if arg not in CHECK_OPTIONS:
            return None
        name, kind = CHECK_OPTIONS[arg]
        if kind == "flag":
            arguments[name] = True
            continue
        value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        if kind == "int":
            if not (value.isascii() and value.isdigit()):
                return None
            arguments[name] = int(value)
        elif kind == "path":
            arguments[name] = Path(value)
        elif kind == "list":
            arguments[name] = [*(arguments[name] or []), value]
        elif isinstance(kind, tuple) and value not in kind:
            return None
        else:
            arguments[name] = value
    return arguments


def guarded(command: Callable[[], Any]) -> NoReturn:
    """Run a command and exit with its code: configuration errors exit 2 with one line, never a traceback."""
    start = time.monotonic()
    try:
        code = command()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except (KeyboardInterrupt, Interrupted):
        sys.stderr.write("simdoctor: interrupted\n")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("SIMDOCTOR_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {redact_url(str(exc))} (after {time.monotonic() - start:.1f}s; "
             "set SIMDOCTOR_DEBUG=1 for the traceback)", 70)  # fmt: skip
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr; under --json also one JSON object on stdout, where the command's result would be."""
    sys.stderr.write(f"simdoctor: {message}\n")
    if "--json" in sys.argv[1:]:
        sys.stdout.write(json.dumps({"status": "error", "exit_code": code, "error": message}) + "\n")
    sys.exit(code)


def settings_from(recipe: Optional[str] = None, **flags: object) -> Settings:
    """Flags win over environment, config file and recipe (simdoctor.config.settings)."""
    return load_settings({k: v for k, v in flags.items() if v is not None}, recipe=recipe)


def items(
    values: Optional[list[str]], flag: str, choices: Optional[Collection[str]] = None, what: str = "", listing: str = ""
) -> tuple[str, ...]:
    """A list option as every command takes it: repeatable and comma-separated (`--only a,b --only c`), in order.
    With `choices` it is a selection of `what`: each value once, and an unknown one is one usage error naming the
    valid ones (`listing` names them instead where they are too many to list)."""
    found = tuple(v.strip() for item in values or [] for v in item.split(",") if v.strip())
    if choices is None:
        return found
    unknown = [v for v in found if v not in choices]
    if unknown:
        raise ConfigError(f"{flag}: unknown {what} {unknown[0]!r}; {listing or 'choose from ' + ', '.join(choices)}")
    return tuple(dict.fromkeys(found))


def check(
    json_out: bool, verbose: bool, only: Optional[list[str]], skip: Optional[list[str]], strict: bool, deep: bool,
    window: bool, viz: bool, backend: str, list_checks: bool, dump_facts: Optional[Path], facts_file: Optional[Path],
    recipe: Optional[str], carla_root: Optional[str], work_dir: Optional[str], agent_python: Optional[str],
    carla_host: Optional[str], carla_port: Optional[int], executor: str, probe: bool, out: Optional[Path],
    partition: Optional[str], account: Optional[str], qos: Optional[str],
) -> int:  # fmt: skip
    """`simdoctor check`, from either reader; returns the exit code."""
    from simdoctor.doctor import probing
    from simdoctor.doctor.probes.slurm import SlurmIntent

    if probe and executor != "slurm":
        raise ConfigError("--probe needs --executor slurm")
    settings = settings_from(
        recipe, carla_root=carla_root, work_dir=work_dir, agent_python=agent_python,
        carla_host=carla_host, carla_port=carla_port,
        slurm_partition=partition, slurm_account=account, slurm_qos=qos,
    )  # fmt: skip
    intent = SlurmIntent(str(out or settings.recipe.run.out_dir), probe) if executor == "slurm" else None
    every_check = not (only or skip or facts_file or list_checks)  # then the slow probes are surely needed
    early = (
        probing.start_probes(list(probing.SLOW_PROBES), probing.ProbeContext(settings, deep, intent))
        if every_check
        else None
    )
    from simdoctor.doctor import diagnosis  # the checks and the other probes import while the slow probes run

    groups = sorted({c.group for c in diagnosis.CHECKS})
    names = {c.id for c in diagnosis.CHECKS} | set(groups)
    listing = f"the groups are {', '.join(groups)}; `simdoctor check --list` shows the check ids"
    return diagnosis.run(
        settings,
        only=items(only, "--only", names, "check or group", listing),
        skip=items(skip, "--skip", names, "check or group", listing),
        json_out=json_out,
        verbose=verbose,
        strict=strict,
        deep=deep,
        window=window,
        viz=viz,
        backend=backend,
        list_checks=list_checks,
        dump_facts=dump_facts,
        facts_file=facts_file,
        slurm=intent,
        early=early,
    )
