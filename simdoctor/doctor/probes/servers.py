"""The CARLA servers simdoctor started on this host (its state records) and their live processes, so
a check can tell simdoctor's own servers from leftovers. No docker SDK: a container's processes are
found by the container id in their cgroup path."""

from __future__ import annotations

from dataclasses import dataclass, field

from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system import procs, proctree, serverstate


@dataclass(frozen=True)
class RecordedServer:
    id: str
    backend: str
    port: int
    pids: list[int]  # live processes of the server now (empty: dead)


@dataclass(frozen=True)
class ServersFacts:
    servers: list[RecordedServer]
    run_pids: list[int] = field(default_factory=list)  # CARLA processes of a simdoctor run still running


def container_pids(container_id: str) -> list[int]:
    found = []
    for pid in procs.pids():
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as handle:
                if container_id in handle.read():
                    found.append(pid)
        except OSError:
            continue
    return found


@probe("carla_servers", ServersFacts, timeout=2.0, description="CARLA servers simdoctor started (state records)")
def probe_servers(ctx: ProbeContext) -> ServersFacts:
    servers = []
    for rec in serverstate.records(ctx.settings):
        if rec.backend == "docker" and rec.container_id:
            pids = container_pids(rec.container_id)
        else:
            pids = [p.pid for p in proctree.members(rec.tree)] if rec.tree else []
        servers.append(RecordedServer(rec.id, rec.backend, rec.port, sorted(pids)))
    name = ctx.settings.recipe.carla.process_name
    runs = sorted(p.pid for p in proctree.named(name) if proctree.live_owner(p.pid) is not None)
    return ServersFacts(servers, runs)
