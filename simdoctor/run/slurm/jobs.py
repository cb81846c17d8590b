"""The files a Slurm run keeps under <out>/slurm/ (Layout): what each array task runs, and which jobs
this folder's runs submitted.

- `<n>/spec.json` (Spec): everything the array tasks of submission n need, resolved on the login node:
  the plan with one task per array index, the expanded recipe and the settings. A task reads nothing
  else of the login node's (no config file, no environment variable of simdoctor's), so what runs on a
  node is what `--dry-run` showed.
- `jobs.json` (Ledger): every submission with its job id, its routes by array index, and whether
  simdoctor cancelled it or settled it. A rerun reattaches to the submissions not settled yet; only
  jobs listed here are ever cancelled.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor.carla.errors import Refusal
from simdoctor.config.recipe import ConfigError, Recipe
from simdoctor.config.settings import SETTINGS, Settings, redact_url
from simdoctor.config.typed import DataError, from_data, to_data
from simdoctor.doctor.findings import Fix
from simdoctor.run.outdir import Layout
from simdoctor.run.runplan import Plan
from simdoctor.system import atomic

SPEC_SCHEMA_VERSION = 1
LEDGER_SCHEMA_VERSION = 1
LOGIN_NODE = "the login node's simdoctor"


@dataclass(frozen=True)
class NodeSettings:
    """The login node's resolved settings (settings.SETTINGS, as text); the Hugging Face token is not
    among them: the agent runs offline (HF_HUB_OFFLINE=1)."""

    values: dict[str, str]
    state_dir: str
    config_file: str


@dataclass(frozen=True)
class Spec:
    plan: Plan  # its tasks in array-index order; its slots empty (each task makes its own on its node)
    recipe: Recipe
    settings: NodeSettings
    gpus_per_task: int
    schema_version: int = SPEC_SCHEMA_VERSION


def node_settings(settings: Settings) -> NodeSettings:
    values = {s.name: str(getattr(settings, s.name)) for s in SETTINGS}
    values["hf_endpoint"] = redact_url(values["hf_endpoint"])  # no password in a file on a shared disk
    return NodeSettings(values, str(settings.state_dir), str(settings.config_file))


def settings_of(spec: Spec) -> Settings:
    """The login node's settings, as the array task runs with them."""
    parsed = {s.name: s.parse(spec.settings.values[s.name]) for s in SETTINGS}
    return Settings(
        recipe=spec.recipe,
        hf_token=None,
        state_dir=Path(spec.settings.state_dir),
        config_file=Path(spec.settings.config_file),
        sources={s.name: LOGIN_NODE for s in SETTINGS},
        **parsed,
    )


def write_spec(path: Path, spec: Spec) -> None:
    atomic.write_json(path, to_data(spec))


def read_spec(path: Path) -> Spec:
    """Raises ConfigError when the file is missing, unreadable or of another version."""
    try:
        spec = from_data(Spec, json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, DataError) as exc:
        raise ConfigError(f"cannot read the array job's spec {path}: {exc}") from None
    if spec.schema_version != SPEC_SCHEMA_VERSION:
        raise ConfigError(
            f"{path} is of schema version {spec.schema_version}, this simdoctor reads {SPEC_SCHEMA_VERSION}"
        )
    return spec


@dataclass(frozen=True)
class Submission:
    number: int  # its folder <out>/slurm/<number>/
    comment: str  # the job's --comment: finds it again when simdoctor died before recording its id
    routes: list[str]  # the route of each array index
    submitted: float  # epoch seconds, just before sbatch
    throttle: Optional[int] = None  # its %N (--max-concurrent less the tasks of other arrays then queued)
    job_id: Optional[str] = None
    cancelled: bool = False  # simdoctor cancelled it: its interrupted attempts cost no retry
    done: bool = False  # none of its tasks is in the queue, and each one's attempt was settled

    def label(self, index: int) -> str:
        """The array task as squeue and the attempt records name it."""
        return f"{self.job_id}_{index}"


@dataclass(frozen=True)
class Ledger:
    submissions: list[Submission] = field(default_factory=list)
    schema_version: int = LEDGER_SCHEMA_VERSION

    @property
    def unsettled(self) -> list[Submission]:
        return [s for s in self.submissions if not s.done]

    def next_number(self) -> int:
        return max((s.number for s in self.submissions), default=0) + 1

    def put(self, submission: Submission) -> Ledger:
        """This ledger with `submission` added, or replacing the one of the same number."""
        others = [s for s in self.submissions if s.number != submission.number]
        return dataclasses.replace(self, submissions=sorted([*others, submission], key=lambda s: s.number))


def read_ledger(layout: Layout) -> Ledger:
    """An empty ledger when there is none; ConfigError when it cannot be trusted (a rerun must not
    resubmit routes whose jobs may still run)."""
    try:
        data = json.loads(layout.ledger_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Ledger()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {layout.ledger_file}: {exc}; its Slurm jobs are unknown (see squeue)") from None
    try:
        ledger = from_data(Ledger, data)
    except DataError as exc:
        raise ConfigError(f"{layout.ledger_file} is not simdoctor's: {exc}") from None
    if ledger.schema_version != LEDGER_SCHEMA_VERSION:
        raise ConfigError(f"{layout.ledger_file} is of schema version {ledger.schema_version}")
    return ledger


def write_ledger(layout: Layout, ledger: Ledger) -> None:
    atomic.write_json(layout.ledger_file, to_data(ledger))


def refuse_if_in_flight(layout: Layout) -> None:
    """A local run must not run routes whose Slurm tasks may still run (nor mix their records)."""
    try:
        open_subs = read_ledger(layout).unsettled
    except ConfigError as exc:
        raise Refusal(str(exc), Fix("Look at squeue, then move the ledger away if its jobs are gone.")) from None
    if open_subs:
        ids = [s.job_id or "?" for s in open_subs]
        raise Refusal(
            f"{layout.root} has Slurm job(s) {', '.join(ids)} not followed to their end ({layout.ledger_file})",
            Fix("Follow them to the end with the Slurm backend (it reattaches), or cancel them and then follow.",
                [f"simdoctor run --executor slurm --out {shlex.quote(str(layout.root))}",
                 shlex.join(["scancel", *ids])]),
        )  # fmt: skip
