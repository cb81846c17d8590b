"""The ports a CARLA server and its traffic manager bind, and who holds them now."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Callable, Optional

from simdoctor.config.recipe import CarlaRecipe
from simdoctor.doctor.probing import ProbeContext, probe
from simdoctor.system import procs

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


@dataclass(frozen=True)
class PortState:
    role: str  # rpc, streaming, secondary, traffic_manager
    port: int
    listening: bool
    pids: list[int]
    owner: Optional[str]  # command line of the first holder, when readable
    owner_is_carla: bool


@dataclass(frozen=True)
class PortsFacts:
    host: str
    local: bool
    ports: list[PortState]


def carla_ports(carla: CarlaRecipe, rpc_port: int, tm_port: Optional[int] = None) -> dict[str, int]:
    """The four ports one CARLA worker needs, by role."""
    return {
        "rpc": rpc_port,
        "streaming": rpc_port + carla.streaming_port_offset,
        "secondary": rpc_port + carla.secondary_port_offset,
        "traffic_manager": carla.traffic_manager_port if tm_port is None else tm_port,
    }


def bindable(port: int) -> bool:
    """True when a TCP socket can bind the port on every IPv4 address right now, as CARLA's server must
    (the evaluator's find_free_port would otherwise move silently to the next port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def worker_ports(
    carla: CarlaRecipe,
    count: int,
    start: int,
    taken: frozenset[int] = frozenset(),
    is_free: Callable[[int], bool] = bindable,
) -> list[dict[str, int]]:
    """`count` sets of worker ports (carla_ports roles), all free now, distinct and outside `taken`:
    from `start` upwards, each set is the first free RPC block (RPC, +1, +2), then the next free port
    for the traffic manager. A retry passes the ports in use as `taken` to get fresh ones."""
    chosen: list[dict[str, int]] = []
    used = set(taken)

    def usable(port: int) -> bool:
        return 1024 <= port <= 65535 and port not in used and is_free(port)

    cursor = start
    while len(chosen) < count:
        block = carla_ports(carla, cursor, tm_port=0)
        rpc_block = [block["rpc"], block["streaming"], block["secondary"]]
        if max(rpc_block) > 65535:
            raise RuntimeError(f"no {count} free CARLA port sets from {start} up to 65535")
        if not all(map(usable, rpc_block)):
            cursor += 1
            continue
        used.update(rpc_block)
        tm = max(rpc_block) + 1
        while not usable(tm):
            if tm > 65535:
                raise RuntimeError(f"no free traffic-manager port above {max(rpc_block)}")
            tm += 1
        used.add(tm)
        chosen.append(carla_ports(carla, cursor, tm))
        cursor = tm + 1
    return chosen


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS or host == socket.gethostname()


def port_state(role: str, port: int, carla_names: tuple[str, ...], inodes: Optional[set[int]] = None) -> PortState:
    """Who listens on `port`; `inodes` when the caller read the listening sockets already."""
    inodes = procs.listening_inodes(port) if inodes is None else inodes
    if not inodes:
        return PortState(role, port, False, [], None, False)
    pids = sorted({pid for found in procs.socket_owners(inodes).values() for pid in found})
    infos = [p for p in map(procs.process, pids) if p is not None]
    is_carla = any(any(procs.matches_name(p, n) for n in carla_names) for p in infos)
    return PortState(role, port, True, pids, infos[0].command if infos else None, is_carla)


@probe("ports", PortsFacts, timeout=2.0, description="RPC, streaming, secondary and traffic-manager ports")
def probe_ports(ctx: ProbeContext) -> PortsFacts:
    s = ctx.settings
    carla = s.recipe.carla
    local = is_local(s.carla_host)
    names = (carla.process_name, carla.launcher)
    by_role = carla_ports(carla, s.carla_port) if local else {}
    inodes = procs.listening(by_role.values()) if local else {}
    states = [port_state(role, port, names, inodes[port]) for role, port in by_role.items()]
    return PortsFacts(s.carla_host, local, states)
