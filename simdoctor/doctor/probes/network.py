"""Whether the Hugging Face endpoint answers, within a bound short enough never to slow `check` down."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from simdoctor.config.settings import redact_url
from simdoctor.doctor.probing import ProbeContext, probe


@dataclass(frozen=True)
class NetworkFacts:
    endpoint: str
    host: str
    port: int
    reachable: bool
    seconds: Optional[float]
    error: Optional[str]


def tcp_reachable(host: str, port: int, bound: float) -> tuple[bool, Optional[str], float]:
    """Resolve and connect in a side thread so a hanging DNS lookup is cut off at `bound` too."""
    result: dict[str, Optional[str]] = {}
    start = time.monotonic()

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=bound).close()
            result["error"] = None
        except OSError as exc:
            result["error"] = exc.strerror or str(exc) or type(exc).__name__

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(bound)
    elapsed = round(time.monotonic() - start, 3)
    if "error" not in result:
        return False, f"no answer within {bound:g}s", elapsed
    return result["error"] is None, result["error"], elapsed


@probe("network", NetworkFacts, timeout=2.0, description="the Hugging Face endpoint (HF_ENDPOINT)")
def probe_network(ctx: ProbeContext) -> NetworkFacts:
    endpoint = ctx.settings.hf_endpoint
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    port = parts.port or (80 if parts.scheme == "http" else 443)
    ok, error, elapsed = tcp_reachable(host, port, ctx.settings.recipe.network.timeout_s)
    return NetworkFacts(redact_url(endpoint), host, port, ok, elapsed, error)
