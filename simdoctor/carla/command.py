"""What `carla start` runs: the server command line, the Vulkan adapter of the chosen GPU, the ports.

`-graphicsadapter` takes UE4's Vulkan enumeration index, which need not match nvidia-smi's: the GPU
is mapped by UUID (simdoctor.doctor.gpumap), never assumed equal (reference/carla.md §2 and §6).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from simdoctor.carla.errors import Refusal
from simdoctor.config.recipe import CarlaRecipe, ConfigError
from simdoctor.doctor.findings import Fix
from simdoctor.doctor.gpumap import adapter_index
from simdoctor.doctor.probes.gpu import GpuDevice, nvml_session, read_gpus
from simdoctor.doctor.probes.ports import carla_ports, port_state
from simdoctor.doctor.probes.vulkan import enumerate_devices
from simdoctor.system import procs

# The RPC port on a CARLA command line: -carla-rpc-port and its aliases (CarlaSettings.cpp, carla.md §1).
PORT_FLAG = re.compile(r"-(?:carla-rpc-port|world-port|carla-port|carla-world-port)=(\d+)")
VULKAN_TIMEOUT_S = 8.0
PORT_SCAN = 500  # candidate RPC ports tried by --port auto
CHECK_FIX = Fix("See what the checks say about the GPU and Vulkan.", ["simdoctor check --only gpu,vulkan -v"])


@dataclass(frozen=True)
class GpuChoice:
    index: Optional[int]
    uuid: Optional[str]
    name: Optional[str]
    adapter: Optional[int]  # the -graphicsadapter value; None: not passed (CARLA picks)


NO_GPU = GpuChoice(None, None, None, None)


def nvml_gpus() -> list[GpuDevice]:
    """The GPUs NVML sees; raises RuntimeError with the reason when there is no usable driver."""
    nvml = nvml_session()
    try:
        return read_gpus(nvml)
    finally:
        nvml.nvmlShutdown()


def pick_gpu(index: int) -> GpuDevice:
    """GPU `index` in nvidia-smi order, or a Refusal that says plainly that there is none."""
    try:
        gpus = nvml_gpus()
    except RuntimeError as exc:
        raise Refusal(
            f"no NVIDIA GPU is visible ({exc}): CARLA would render on the CPU, if at all",
            Fix(
                "Make the GPU visible (driver, container --gpus), or start without choosing a GPU.",
                ["simdoctor check --only gpu -v", "simdoctor carla start --gpu none"],
            ),
        ) from None
    if not gpus:
        raise Refusal("NVML sees no GPU: CARLA would render on the CPU, if at all", CHECK_FIX)
    if not 0 <= index < len(gpus):
        listed = ", ".join(f"{g.index} ({g.name})" for g in gpus)
        raise ConfigError(f"--gpu {index}: this machine has GPU {listed}")
    return gpus[index]


def vulkan_adapter(gpu: GpuDevice) -> int:
    """The Vulkan index of `gpu`, found by its UUID in the loader's device list."""
    listing = enumerate_devices(timeout=VULKAN_TIMEOUT_S)
    if not listing.ok:
        raise Refusal(f"the Vulkan loader cannot list devices ({listing.error}): CARLA cannot render", CHECK_FIX)
    adapter = adapter_index(gpu.uuid, listing.devices)
    if adapter is None:
        names = ", ".join(f"[{d.index}] {d.name} ({d.type})" for d in listing.devices) or "none"
        raise Refusal(
            f"Vulkan does not list GPU {gpu.index} ({gpu.name}, {gpu.uuid}); it lists {names}: "
            "CARLA cannot render on that GPU",
            CHECK_FIX,
        )
    return adapter


def choose_gpu(index: Optional[int]) -> GpuChoice:
    """GPU `index` (None: none asked for) with its Vulkan adapter index for -graphicsadapter."""
    if index is None:
        return NO_GPU
    gpu = pick_gpu(index)
    return GpuChoice(gpu.index, gpu.uuid, gpu.name, vulkan_adapter(gpu))


def server_args(carla: CarlaRecipe, port: int, adapter: Optional[int], quality: str, window: bool) -> list[str]:
    """`-RenderOffScreen -nosound -carla-rpc-port=P -graphicsadapter=V -quality-level=Q` (carla.md §1)."""
    args = [*([] if window else carla.offscreen_args), *carla.server_args, f"{carla.rpc_port_flag}={port}"]
    if adapter is not None:
        args.append(f"{carla.adapter_flag}={adapter}")
    return [*args, f"{carla.quality_flag}={quality}"]


def check_quality(carla: CarlaRecipe, quality: Optional[str]) -> str:
    if quality is None:
        return carla.quality
    match = next((q for q in carla.qualities if q.lower() == quality.lower()), None)
    if match is None:
        raise ConfigError(f"--quality must be one of {', '.join(carla.qualities)}, not {quality!r}")
    return match


def server_ports(carla: CarlaRecipe, rpc: int) -> dict[str, int]:
    """The ports the server itself binds: RPC P, streaming P+1, secondary P+2."""
    roles = carla_ports(carla, rpc)
    del roles["traffic_manager"]  # bound by the client (the evaluator), not the server
    return roles


def in_use(port: int) -> bool:
    """Listened on (any address), or bound by a socket that would make CARLA's bind fail: CARLA
    (asio, SO_REUSEADDR) binds every address, so try exactly that."""
    if procs.listening_inodes(port):
        return True
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def unprivileged_start() -> int:
    """The first port a normal user may bind (net.ipv4.ip_unprivileged_port_start; 1024 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def privileged(port: int) -> bool:
    """A port this user may not bind at all (below ip_unprivileged_port_start, not root): not "taken"."""
    return os.geteuid() != 0 and port < unprivileged_start()


def check_port(carla: CarlaRecipe, port: int) -> None:
    """--port P where the server could never bind P, P+1 or P+2 as this user: refused with the other argument
    checks, before CARLA_ROOT, the GPU or the display are looked at."""
    for role, p in server_ports(carla, port).items():
        if privileged(p):
            raise Refusal(
                f"{role} port {p} is privileged: only root may bind ports below {unprivileged_start()}, "
                "and CARLA refuses to run as root",
                Fix("Pick a port from 1024 up (P, P+1 and P+2 must be free), or let simdoctor choose.",
                    ["simdoctor carla start --port auto"]),
            )  # fmt: skip


def _taken_by(carla: CarlaRecipe, role: str, port: int, reserved: set[int]) -> str:
    state = port_state(role, port, (carla.process_name, carla.launcher))
    if state.pids and state.owner:
        return f"`{state.owner}` (pid {state.pids[0]})"
    return "a CARLA server simdoctor is starting" if port in reserved and not state.listening else "another process"


def choose_ports(carla: CarlaRecipe, port: Optional[int], first: int, reserved: set[int]) -> dict[str, int]:
    """RPC port P (given, or the first from `first` on with P, P+1 and P+2 free) and a free TM port.

    `reserved` holds the ports of servers simdoctor recorded, which may not be bound yet. A given P that no user
    but root could bind was refused before, with the other arguments (check_port, called by lifecycle.start)."""

    def free(p: int) -> bool:
        return p not in reserved and not in_use(p)

    if port is not None:
        for role, p in server_ports(carla, port).items():
            if not free(p):
                raise Refusal(
                    f"{role} port {p} is taken by {_taken_by(carla, role, p, reserved)}: "
                    "CARLA would fail with `bind: Address already in use`",
                    Fix("Pick another port (P, P+1 and P+2 must be free), or let simdoctor choose.",
                        ["simdoctor carla start --port auto"]),
                )  # fmt: skip
        rpc = port
    else:
        last = min(first + PORT_SCAN, 65535 - carla.secondary_port_offset)
        candidates = (p for p in range(first, last) if all(map(free, server_ports(carla, p).values())))
        rpc = next(candidates, None)
        if rpc is None:
            raise Refusal(f"no free ports P, P+1, P+2 for P in {first}-{last}", Fix("Free ports, or pass --port."))
    ours = set(server_ports(carla, rpc).values())
    tm = next((p for p in range(carla.traffic_manager_port, 65536) if p not in ours and free(p)), None)
    if tm is None:
        raise Refusal("no free traffic-manager port", Fix("Free some ports."))
    return carla_ports(carla, rpc, tm)
