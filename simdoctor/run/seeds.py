"""`simdoctor run --seeds 1,2,3`: SimLingo's protocol (start_eval_simlingo.py: seeds 1, 2, 3 as full runs), the
routes once per traffic-manager seed into OUT/seed-N/, each a run folder of its own, then the seeds' report.

With --json stdout stays one JSON document for the whole command: each seed's run prints its own document (the
report, the plan, or why it could not start), which is taken from its stdout and nested under `runs`."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings
from simdoctor.config.typed import to_data
from simdoctor.run import report, runplan
from simdoctor.run.supervisor import EXIT_INTERRUPTED

SCHEMA_VERSION = 1
Call = Callable[[runplan.Options], int]


@dataclass(frozen=True)
class SeedRun:
    seed: int
    out: str  # OUT/seed-N
    exit_code: int
    result: Optional[dict[str, Any]]  # what `run --json` prints for this seed alone; None when it printed nothing


@dataclass(frozen=True)
class SeedsRun:
    out: str
    exit_code: int  # the worst seed's
    runs: list[SeedRun]
    report: Optional[dict[str, Any]]  # `report OUT --json`; None for a dry run or an interrupted one


def parse(seeds: str) -> list[int]:
    """1,2,3 -> [1, 2, 3], each once, in the order given."""
    try:
        numbers = list(dict.fromkeys(int(s) for s in seeds.split(",") if s.strip()))
    except ValueError:
        raise ConfigError(f"--seeds takes seed numbers separated by commas (1,2,3), not {seeds!r}") from None
    if not numbers or min(numbers) < 0:
        raise ConfigError(f"--seeds takes seed numbers of 0 or more separated by commas (1,2,3), not {seeds!r}")
    return numbers


def runner(seeds: Optional[str], seed: Optional[int], options: runplan.Options, settings: Settings, json_out: bool):
    """How to run `options`: as given, or with --seeds once per seed into OUT/seed-N/ (each resumable on its own),
    stopping at an interrupt, then the seeds' report (mean ± std) unless `summary` is off (a dry run) or no seed
    could start; returns the worst exit code."""
    if seeds is None:
        return lambda call, summary=True: call(options)
    if seed is not None:
        raise ConfigError("--seed and --seeds: give one of them")
    numbers = parse(seeds)
    base = Path(options.out or settings.recipe.run.out_dir).expanduser()
    names = settings.recipe.run

    def each(call: Call, summary: bool = True) -> int:
        code, runs = 0, []
        for number in numbers:
            seeded = dataclasses.replace(options, out=base / f"seed-{number}", seed=number)
            if json_out:
                with contextlib.redirect_stdout(io.StringIO()) as printed:
                    result = call(seeded)
                runs.append(SeedRun(number, str(seeded.out), result, _document(printed.getvalue())))
            else:
                result = call(seeded)
            code = max(code, result)
            if result == EXIT_INTERRUPTED:
                break
        folders = [base / f"seed-{number}" for number in numbers]  # none when no seed could start
        summary = summary and code != EXIT_INTERRUPTED and any(report.is_run_folder(f, names) for f in folders)
        if not json_out:
            if summary:
                report.publish_seeds(base, names)
            return code
        seeds_report = report.publish_seeds(base, names, display=False) if summary else None
        document = SeedsRun(str(base), code, runs, None if seeds_report is None else report.document(seeds_report))
        sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, **to_data(document)}) + "\n")
        return code

    return each


def _document(printed: str) -> Optional[dict[str, Any]]:
    """A seed's own --json output: one document, or nothing (a run that could not start says why on stderr)."""
    return json.loads(printed) if printed.strip() else None
