"""network: the Hugging Face endpoint. Offline is a warning, never a failure: setup may be done."""

from __future__ import annotations

from simdoctor.doctor.checking import CheckContext, check, ok, warn
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.probes.network import NetworkFacts
from simdoctor.doctor.probing import Facts


@check("network.hf", "Hugging Face endpoint", needs=("network",))
def hf(facts: Facts, ctx: CheckContext):
    n: NetworkFacts = facts.get("network")
    if n.reachable:
        return ok(f"{n.endpoint} answers ({n.host}:{n.port} in {(n.seconds or 0) * 1000:.0f} ms)")
    return warn(
        f"{n.endpoint} is unreachable ({n.error}): downloads need it or a mirror",
        Fix(
            "Use a reachable mirror, or ignore this if the weights are already here.",
            [f"export HF_ENDPOINT={ctx.settings.recipe.network.mirror}"],
        ),
    )
