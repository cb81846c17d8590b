"""Stand-in for CARLA 0.9.15's server binary, `CarlaUE4/Binaries/Linux/CarlaUE4-Linux-Shipping`.

The packaged `CarlaUE4.sh` (tests/builders.py writes its real text, carla#4193) runs this file as
its child, so the process table shows the real shape: `sh CarlaUE4.sh ...` and under it a process
whose comm is `CarlaUE4-Linux-` (the kernel's 15-character cut of the file name, as for the real
binary). Contract kept, with sources:

- Command line: `CarlaUE4 -RenderOffScreen -nosound -carla-rpc-port=P -graphicsadapter=V
  -quality-level=Q` (the script passes the project name first); `-world-port=`, `-carla-port=`,
  `-carla-world-port=` are aliases of `-carla-rpc-port=` (CarlaSettings.cpp, reference/carla.md §1).
- Root: UE4 exits with `Refusing to run with the root privileges.` when geteuid() == 0 (carla#9049).
- Start-up: the engine banner and `Disabling core dumps.` (UE4 turns core dumps off), then the
  VulkanRHI lines in UE 4.26's format (VulkanRHI.cpp, VulkanDevice.cpp: `Found %d device(s)`,
  `Device %d: %s`, `- API ... VendorId 0x%x`, `- DeviceID 0x%x Type %s`, `Using Device %d: ...`,
  `Nvidia User Driver Version = %s`). `-graphicsadapter=N` picks device N of the enumeration order.
- Ports: binds P (RPC), P+1 (streaming), P+2 (secondary) [src CarlaSettings.cpp / CarlaServer.h];
  the RPC port answers `version` exactly as CARLA (tests/standins/carla_rpc.py, msgpack-rpc).
  A port that cannot be bound ends as CARLA does: `LowLevelFatalError ... bind: Address already in
  use`, then `Signal 11 caught.` and death by SIGSEGV (carla#225, carla#6992).
- TERM ends it (UE requests exit on SIGTERM).

Behaviour the test chooses, as JSON in `<CARLA_ROOT>/standin.json` or in $CARLA_STANDIN:
  ready_after: seconds before binding the ports (a slow start)        [0]
  vulkan: "nvidia" (a made-up H100), "llvmpipe" (Mesa's CPU device), "real" (ask libvulkan)
  fail: one of FAILURES: print those real failure lines, then exit or crash as CARLA does
  hang: never bind (the server never comes up)
  reply_delay: seconds before each RPC answer (a huge value: listens but never answers)
  crash_after: seconds after the ports are up, then `Signal 11 caught.` and SIGSEGV
  ignore_term: ignore SIGTERM (only KILL ends it)
  escape_child: start a child that leaves the session (setsid), like a detached helper
  gpu_memory_mib: allocate that much on the CUDA device of the chosen Vulkan device (torch, shown only
                  that device by its UUID; the device scripts use it so that NVML lists this process
                  with memory in use on that GPU and no other)
  answering_file: write time.time() there once the RPC port answers (bench/carla_ready.py)
  death_file: write time.time() there as a `fail` or crash ends it (bench/carla_dies.py)
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # simdoctor and tests, from anywhere

from tests.standins import carla_rpc

VERSION = "0.9.15"
PORT_FLAGS = ("-carla-rpc-port=", "-world-port=", "-carla-port=", "-carla-world-port=")
BANNER = ["4.26.2-0+++UE4+Release-4.26 522 0", "Disabling core dumps."]
CRASH = ["Signal 11 caught.", "Malloc Size=65538 LargeMemoryPoolOffset=65554",
         "CommonUnixCrashHandler: Signal=11"]  # fmt: skip
FAILURES = {
    "root": (["Refusing to run with the root privileges."], 1),
    "icd_missing": (["Cannot find a compatible Vulkan driver (ICD). Please look at the Getting Started guide for "
                     "additional information."], 1),
    "no_device": (["Cannot find a compatible Vulkan device or driver. Try updating your video driver to a more "
                   "recent version and make sure your video card supports Vulkan."], 1),
    "address_in_use": (["LowLevelFatalError [File:Unknown] [Line: 102] ",
                        "Exception thrown: bind: Address already in use", *CRASH], -11),
    "out_of_memory": (["LogVulkanRHI: Error: VulkanRHI::vkAllocateMemory(Device, &Info, VULKAN_CPU_ALLOCATOR, "
                       "&Handle) failed, VkResult=-2", " with error VK_ERROR_OUT_OF_DEVICE_MEMORY", *CRASH], -11),
    "x_error": (["X Error of failed request:  BadMatch (invalid parameter attributes)",
                 "  Major opcode of failed request:  152 (GLX)"], 1),
    "signal11": (["LogVulkanRHI: Error: VulkanRHI::vkQueueSubmit(Queue, 1, &SubmitInfo, Fence->GetHandle()) "
                  "failed, VkResult=-4", *CRASH], -11),
    "silent": ([], 1),
}  # fmt: skip
H100 = {"name": "NVIDIA H100 80GB HBM3", "vendor": 0x10DE, "device": 0x2330, "type": "Discrete GPU",
        "driver": 0x91264000}  # fmt: skip
LLVMPIPE = {"name": "llvmpipe (LLVM 15.0.6, 256 bits)", "vendor": 0x10005, "device": 0x0, "type": "CPU",
            "driver": 0x5C0000A}  # fmt: skip
VK_TYPES = {"DISCRETE_GPU": "Discrete GPU", "INTEGRATED_GPU": "Integrated GPU", "VIRTUAL_GPU": "Virtual GPU",
            "CPU": "CPU", "OTHER": "Other"}  # fmt: skip


def say(line: str) -> None:
    print(line, flush=True)


def behaviour(root: Path) -> dict:
    text = os.environ.get("CARLA_STANDIN") or ""
    path = root / "standin.json"
    if not text and path.is_file():
        text = path.read_text()
    return json.loads(text) if text else {}


def flag(args: list[str], prefixes: tuple[str, ...], default: str) -> str:
    for a in args:
        for p in prefixes:
            if a.startswith(p):
                return a[len(p) :]
    return default


DEATH_FILE: list[str] = []  # behaviour's death_file, once read


def crash(lines: list[str], code: int) -> None:
    for line in lines:
        say(line)
    for path in DEATH_FILE:
        Path(path).write_text(f"{time.time()}\n")
    if code < 0:
        os.kill(os.getpid(), -code)
        time.sleep(5)
    sys.exit(code)


def vulkan_devices(kind: str) -> list[dict]:
    if kind == "llvmpipe":
        return [LLVMPIPE]
    if kind != "real":
        return [H100]
    from simdoctor.doctor.probes.vulkan import enumerate_devices

    listing = enumerate_devices(timeout=10)
    if not listing.ok:
        say(f"LogVulkanRHI: Error: {listing.error}")
        crash(FAILURES["no_device"][0], 1)
    return [{"name": d.name, "vendor": d.vendor_id, "device": d.device_id, "type": VK_TYPES.get(d.type, d.type),
             "driver": d.driver_version, "uuid": d.uuid} for d in listing.devices]  # fmt: skip


def log_vulkan(devices: list[dict], adapter: int) -> dict:
    say(f"LogVulkanRHI: Display: Found {len(devices)} device(s)")
    for i, d in enumerate(devices):
        say(f"LogVulkanRHI: Display: Device {i}: {d['name']}")
        say(f"LogVulkanRHI: Display: - API 1.3.277(0x4031bd) Driver 0x{d['driver']:x} VendorId 0x{d['vendor']:x}")
        say(f"LogVulkanRHI: Display: - DeviceID 0x{d['device']:x} Type {d['type']}")
    if adapter >= len(devices):
        say(f"LogVulkanRHI: Warning: Tried to use r.GraphicsAdapter={adapter}, but only {len(devices)} "
            "Adapter(s) found. Falling back to first device...")  # fmt: skip
        adapter = 0
    if adapter < 0:  # UE: the first discrete device, else the first one
        adapter = next((i for i, d in enumerate(devices) if d["type"] == "Discrete GPU"), 0)
    chosen = devices[adapter]
    say(f"LogVulkanRHI: Display: Using Device {adapter}: Geometry 1 Tessellation 1")
    if chosen["vendor"] == 0x10DE:
        major, minor = chosen["driver"] >> 22, chosen["driver"] >> 14 & 0xFF  # NVIDIA's packing
        say(f"LogVulkanRHI: Display: Nvidia User Driver Version = {major}.{minor:02d}")
    return chosen


def hold_gpu_memory(chosen: dict, mib: int) -> object:
    """Allocate on the CUDA device that is the chosen Vulkan device, as CARLA's renderer would. Vulkan
    ignores CUDA_VISIBLE_DEVICES (the evaluator's, which CARLA inherits), so torch is shown only the chosen
    device, by its UUID: no other GPU is touched, and a device CUDA does not have (llvmpipe) gets nothing."""
    uuid = (chosen.get("uuid") or "").lower()
    os.environ["CUDA_VISIBLE_DEVICES"] = f"GPU-{uuid}" if uuid else "-1"  # read when CUDA starts, below
    import torch

    if torch.cuda.device_count() != 1:
        say(f"LogCarla: stand-in: no CUDA device is Vulkan's {chosen['name']} (UUID {uuid or '?'}): holding nothing")
        return None
    say(f"LogCarla: stand-in: holding {mib} MiB on GPU-{uuid} (pid {os.getpid()})")
    return torch.empty(mib * 2**20, dtype=torch.uint8, device="cuda:0")


def bind_all(ports: list[int]) -> list[socket.socket]:
    held = []
    for p in ports:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            s.listen(16)
        except OSError:
            s.close()
            crash(FAILURES["address_in_use"][0], -11)
        held.append(s)
    return held


def main() -> None:
    args = sys.argv[1:]
    root = Path(sys.argv[0]).resolve().parents[3]  # argv[0]: <root>/CarlaUE4/Binaries/Linux/<binary>
    b = behaviour(root)
    DEATH_FILE.extend([b["death_file"]] if b.get("death_file") else [])
    if os.geteuid() == 0:
        crash(FAILURES["root"][0], 1)
    for line in BANNER:
        say(line)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if b.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if b.get("escape_child") and os.fork() == 0:
        os.setsid()
        time.sleep(3600)
        os._exit(0)
    if b.get("fail"):
        lines, code = FAILURES[b["fail"]]
        crash(lines, code)
    port = int(flag(args, PORT_FLAGS, "2000"))
    adapter = int(flag(args, ("-graphicsadapter=",), "-1"))
    chosen = log_vulkan(vulkan_devices(b.get("vulkan", "nvidia")), adapter)
    memory = hold_gpu_memory(chosen, int(b["gpu_memory_mib"])) if b.get("gpu_memory_mib") else None
    if b.get("hang"):
        while True:
            time.sleep(3600)
    time.sleep(float(b.get("ready_after", 0)))
    streaming = bind_all([port + 1, port + 2])
    try:
        rpc = carla_rpc.Server(("127.0.0.1", port), carla_rpc.make_handler(VERSION, float(b.get("reply_delay", 0))))
    except OSError:
        crash(FAILURES["address_in_use"][0], -11)
    say(f"LogCarla: Display: Listening on port {port} (streaming {port + 1}, secondary {port + 2})")
    if b.get("answering_file"):
        Path(b["answering_file"]).write_text(f"{time.time()}\n")
    if b.get("crash_after") is not None:
        signal.signal(signal.SIGALRM, lambda *_: crash(CRASH, -11))
        signal.setitimer(signal.ITIMER_REAL, float(b["crash_after"]))
    try:
        rpc.serve_forever()
    finally:
        del memory, streaming


if __name__ == "__main__":
    main()
