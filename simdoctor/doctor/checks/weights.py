"""weights: the SimLingo checkpoint, its Hydra config, and the pre-fetched InternVL2-1B."""

from __future__ import annotations

from simdoctor.doctor.checking import CheckContext, Verdict, check, fail, gib, ok, skip, warn
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.weights import WeightFile, WeightsFacts
from simdoctor.doctor.probing import Facts


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


@check("weights.hub_cache", "InternVL2-1B by hub name (offline)", needs=("weights",))
def hub_cache(facts: Facts, ctx: CheckContext):
    """The agent loads its base model by hub name, and `run` sets HF_HUB_OFFLINE=1: it must resolve through the
    Hugging Face cache (upstream-behaviour.md §4); a copy in pretrained/ alone ends every route in 'Failed -
    Agent couldn't be set up'."""
    w: WeightsFacts = facts.get("weights")
    r = ctx.settings.recipe.base_model
    h = w.hub
    if h is None:
        return skip("not probed")
    fix = Fix(
        f"Put the verified download of {r.repo} into the Hugging Face cache (links, no second copy).",
        ["simdoctor setup --only base_model"],
    )
    details = [f"cache: {h.cache}", f"refs/{h.revision}: {h.commit or 'none'}"]
    if h.commit is None:
        return fail(f"{r.repo} does not resolve by name offline: no {h.folder}/refs/{h.revision}", fix, details)
    if h.missing:
        return fail(f"{r.repo}@{h.commit[:12]} in the cache lacks {', '.join(h.missing)}", fix, details)
    if h.downloaded_commit and h.downloaded_commit != h.commit:
        return warn(
            f"the cache resolves {r.repo} to {h.commit[:12]}, the verified download is {h.downloaded_commit[:12]}",
            fix,
            details,
        )
    return ok(f"{r.repo} resolves offline to {h.commit[:12]} in {h.cache}", details)
