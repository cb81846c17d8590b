"""Where `simdoctor run` keeps each route's files under --out (folder names from the recipe's [run])."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simdoctor.config.recipe import RunRecipe
from simdoctor.run import routes


@dataclass(frozen=True)
class Layout:
    root: Path
    names: RunRecipe

    @property
    def routes_dir(self) -> Path:
        return self.root / self.names.routes_dir

    @property
    def run_file(self) -> Path:
        return self.root / self.names.run_file

    @property
    def merged_file(self) -> Path:
        return self.root / self.names.merged_file

    @property
    def metric_dir(self) -> Path:
        """efficiency_smoothness_benchmark.py's --metric_dir: <save_name>/metric_info.json links."""
        return self.root / self.names.metric_dir

    @property
    def results_dir(self) -> Path:
        return self.root / self.names.results_dir

    @property
    def lock_file(self) -> Path:
        return self.root / self.names.lock_file

    @property
    def tasks_dir(self) -> Path:
        return self.root / self.names.tasks_dir

    def route_file(self, route_id: str) -> Path:
        return routes.route_file(self.routes_dir, route_id)

    def results_file(self, route_id: str) -> Path:
        """The evaluator's --checkpoint."""
        return self.results_dir / f"{route_id}.json"

    def viz_dir(self, route_id: str) -> Path:
        """The agent's SAVE_PATH (it appends the save name without a separator)."""
        return self.root / self.names.viz_dir / route_id

    def log_file(self, route_id: str) -> Path:
        return self.root / self.names.logs_dir / f"{route_id}.log"

    def steps_file(self, route_id: str) -> Path:
        return self.root / self.names.steps_dir / f"{route_id}.jsonl"

    def task_file(self, route_id: str) -> Path:
        return self.tasks_dir / f"{route_id}.json"

    # --- run --viz ---

    def frames_file(self, route_id: str) -> Path:
        """The timing wrapper's log of the frames SimLingo drew on the route's last attempt."""
        return self.root / self.names.frames_dir / f"{route_id}.jsonl"

    @property
    def share_dir(self) -> Path:
        """Put first on the agent's XDG_DATA_DIRS: fonts/arial.ttf, where PIL looks for it."""
        return self.root / self.names.share_dir

    @property
    def videos_dir(self) -> Path:
        return self.root / self.names.videos_dir

    # --- the Slurm backend's files ---

    @property
    def slurm_dir(self) -> Path:
        return self.root / self.names.slurm_dir

    @property
    def ledger_file(self) -> Path:
        """The submissions of this folder's runs (simdoctor/run/slurm/jobs.py), which a rerun reattaches from."""
        return self.slurm_dir / "jobs.json"

    def submission_dir(self, number: int) -> Path:
        return self.slurm_dir / str(number)

    def spec_file(self, number: int) -> Path:
        return self.submission_dir(number) / "spec.json"

    def script_file(self, number: int) -> Path:
        return self.submission_dir(number) / "job.sh"

    def job_log(self, number: int, label: str) -> Path:
        """An array task's Slurm output (`#SBATCH --output=<dir>/%A_%a.log`); `label` is `<job id>_<index>`."""
        return self.submission_dir(number) / f"{label}.log"

    def job_log_pattern(self, number: int) -> Path:
        return self.submission_dir(number) / "%A_%a.log"
