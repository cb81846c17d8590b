"""Batch scripts for sbatch, written as files: every value shell-quoted, nothing interpolated by us.

simdoctor never runs a shell itself; Slurm runs these scripts with /bin/sh on the node, so each
argument and variable goes through shlex.quote.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Optional

from simdoctor.config.agentenv import TOKEN_VARIABLES
from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings

UNSAFE = set(" \t\"'\\")  # in a #SBATCH value, besides control characters


def check_values(values: dict[str, object]) -> None:
    """Refuse a #SBATCH value sbatch would not read as one value: a line break ends the directive and starts
    a shell line (the directives after it are then ignored), whitespace or a quote makes sbatch split it."""
    for key, value in values.items():
        if isinstance(value, str) and any(c in UNSAFE or not c.isprintable() for c in value):
            flag = f"--{key.replace('_', '-')}"
            raise ConfigError(f"{flag} {value!r}: a #SBATCH value cannot hold spaces, quotes, backslashes or "
                              f"control characters such as a line break (check {flag}, its SIMDOCTOR_SLURM_* "
                              "variable and the config file)")  # fmt: skip


def directives(settings: Settings, **options: object) -> list[str]:
    """#SBATCH lines: the user's partition, account and QOS (when set), then the given options (True: a
    flag without a value, such as --no-requeue; "" or None: left out)."""
    values: dict[str, object] = {
        "partition": settings.slurm_partition,
        "account": settings.slurm_account,
        "qos": settings.slurm_qos,
        **options,
    }
    check_values(values)
    lines = []
    for key, value in values.items():
        if value is None or value is False or value == "":
            continue
        flag = f"--{key.replace('_', '-')}"
        lines.append(f"#SBATCH {flag}" if value is True else f"#SBATCH {flag}={value}")
    return lines


def array(count: int, throttle: Optional[int] = None) -> str:
    """--array for tasks 0..count-1, at most `throttle` of them running at once."""
    span = "0" if count == 1 else f"0-{count - 1}"
    return span + (f"%{throttle}" if throttle else "")


def render(
    sbatch: Sequence[str],
    env: dict[str, str],
    command: Sequence[str],
    stdin: Optional[str] = None,
    stdout: Optional[str] = None,
) -> str:
    """A complete job script: directives, exported variables, then `exec command [<stdin] [>stdout]`."""
    lines = ["#!/bin/sh", *sbatch, "set -u"]
    # sbatch exports the login shell's environment into the job; jobs run offline (HF_HUB_OFFLINE=1)
    # and never need a Hugging Face token, so it does not travel to the nodes.
    lines.append(f"unset {' '.join(TOKEN_VARIABLES)}")
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    redirect = (f" < {shlex.quote(stdin)}" if stdin else "") + (f" > {shlex.quote(stdout)}" if stdout else "")
    lines.append("exec " + " ".join(shlex.quote(a) for a in command) + redirect)
    return "\n".join(lines) + "\n"
