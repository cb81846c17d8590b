"""agent.checkout: SimLingo's code at the commit simdoctor follows, where `run` expects it (the work dir)."""

from __future__ import annotations

import shlex
from pathlib import Path

from simdoctor.config.settings import Settings
from simdoctor.doctor.checking import CheckContext, check, fail, ok, warn
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.checkout import CheckoutFacts
from simdoctor.doctor.probing import Facts

SETUP = "simdoctor setup --only checkout"


def download_folders(settings: Settings) -> set[str]:
    """Top-level names simdoctor's own downloads take inside the work dir (the checkout ignores them)."""
    names = set()
    for local_dir in (settings.recipe.weights.local_dir, settings.recipe.base_model.local_dir):
        try:
            names.add(Path(local_dir).relative_to(settings.work_dir).parts[0])
        except (ValueError, IndexError):
            continue
    return names


def is_foreign(c: CheckoutFacts, settings: Settings) -> bool:
    """A folder that is neither a git checkout nor empty but for simdoctor's downloads: setup leaves it alone."""
    return c.exists and not c.git and not set(c.entries) <= download_folders(settings)


def way_out(path: str) -> list[str]:
    return [f"mv {shlex.quote(path)} {shlex.quote(path + '.old')}", SETUP]


@check("agent.checkout", "SimLingo checkout", needs=("checkout",))
def checkout(facts: Facts, ctx: CheckContext):
    c: CheckoutFacts = facts.get("checkout")
    r = ctx.settings.recipe.agent
    pinned = r.commit[:7]
    if not c.exists:
        return fail(f"no SimLingo checkout at {c.path}", Fix(f"Clone {r.repo_url} at {pinned}.", [SETUP]))
    if is_foreign(c, ctx.settings):
        return fail(
            f"{c.path} exists and is not a git checkout of SimLingo",
            Fix("Move it away (or point --work-dir / SIMDOCTOR_WORK_DIR elsewhere), then clone.", way_out(c.path)),
            [f"holds: {', '.join(c.entries[:10])}"],
        )
    if not c.git:
        return fail(f"{c.path} holds only downloads, no checkout", Fix(f"Clone {pinned} into it.", [SETUP]))
    if c.head is None:
        return fail(
            f"{c.path} is an unfinished clone (no commit checked out)",
            Fix("Carry on with the clone (it fetches what is missing).", [SETUP]),
        )
    if c.head != r.commit:
        return warn(
            f"{c.path} is at {c.head[:7]}; simdoctor follows SimLingo {pinned}",
            Fix(
                "Check out the pinned commit (setup leaves a checkout you moved alone).",
                [
                    f"git -C {shlex.quote(c.path)} fetch origin {r.commit}",
                    f"git -C {shlex.quote(c.path)} checkout --detach {r.commit}",
                ],
            ),
        )
    return ok(f"{c.path} at {pinned}" + (f" (from {c.origin})" if c.origin else ""))
