"""weights: the SimLingo checkpoint, its Hydra config, and the pre-fetched InternVL2-1B."""

from __future__ import annotations

from simdoctor.checks import CheckContext, Verdict, check, fail, gib, ok, warn
from simdoctor.findings import Fix
from simdoctor.probes.weights import WeightFile, WeightsFacts
from simdoctor.probing import Facts


def download_fix(f: WeightFile, revision: str) -> Fix:
    return Fix(
        f"Download {f.repo} with simdoctor: pinned to a commit, resumable, every file checked against its hash.",
        [f"simdoctor download {f.repo} --revision {revision} --local-dir {f.local_dir}"],
    )


def verify_fix(f: WeightFile) -> Fix:
    return Fix(
        "Hash the files against the repository's pinned hashes (no download).",
        [f"simdoctor download {f.repo} --local-dir {f.local_dir} --verify-only"],
    )


def judge(files: list[WeightFile], revision: str, what: str) -> Verdict:
    """One verdict for a group of files: the worst problem wins."""
    for f in files:
        path = f"{f.local_dir}/{f.relpath}"
        if f.lfs_pointer:
            return fail(
                f"{path} is a Git LFS pointer ({f.size} bytes), not the file: git lfs did not fetch it",
                download_fix(f, revision),
            )
        if not f.exists:
            extra = f" (an unfinished download lies at {f.partials[0]})" if f.partials else ""
            return fail(f"{path} is missing{extra}", download_fix(f, revision))
    details = [f"{f.relpath}: {gib(f.size)}{', verified' if f.verified else ''}" for f in files]
    leftovers = [p for f in files for p in f.partials]
    if leftovers:
        return warn(
            f"{what} present, but unfinished downloads lie beside them",
            download_fix(files[0], revision),
            [*details, *leftovers],
        )
    unverified = [f for f in files if not f.verified]
    if unverified:
        f = unverified[0]
        changed = " (changed since it was verified)" if f.in_manifest else ""
        return warn(
            f"{what} present but {f.relpath} is not verified against its hash{changed}",
            verify_fix(f),
            details,
        )
    return ok(f"{what} present and verified", details)


@check("weights.checkpoint", "SimLingo checkpoint", needs=("weights",))
def checkpoint(facts: Facts, ctx: CheckContext):
    w: WeightsFacts = facts.get("weights")
    return judge([f for f in w.files if f.role == "checkpoint"], ctx.settings.recipe.weights.revision, "checkpoint")


@check("weights.config", "Hydra config", needs=("weights",))
def config(facts: Facts, ctx: CheckContext):
    w: WeightsFacts = facts.get("weights")
    return judge([f for f in w.files if f.role == "config"], ctx.settings.recipe.weights.revision, "Hydra config")


@check("weights.base_model", "InternVL2-1B", needs=("weights",))
def base_model(facts: Facts, ctx: CheckContext):
    w: WeightsFacts = facts.get("weights")
    r = ctx.settings.recipe.base_model
    return judge([f for f in w.files if f.role == "base_model"], r.revision, r.repo)
