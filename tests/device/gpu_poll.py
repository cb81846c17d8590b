"""Watch NVML while a device script runs something: every process that holds GPU memory, on which GPUs (by
UUID), its peak memory there, and the CUDA variables and command line it runs with (/proc, as root).
`python3 gpu_poll.py OUT.json` samples every 0.2 s until SIGTERM, then writes OUT.json; an independent
witness beside simdoctor's own sampler (simdoctor/run/sampling.py), which sums a tree over all GPUs."""

import json
import signal
import sys
import time

import pynvml as nvml

seen = {}  # pid -> what it was seen with


def environ(pid: int) -> dict:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            pairs = [p.split(b"=", 1) for p in handle.read().split(b"\0") if b"=" in p]
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return {}
    env = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}
    return {"CUDA_VISIBLE_DEVICES": env.get("CUDA_VISIBLE_DEVICES"), "CUDA_DEVICE_ORDER": env.get("CUDA_DEVICE_ORDER"),
            "argv": argv}  # fmt: skip


def sample(handles: dict) -> None:
    for uuid, handle in handles.items():
        for getter in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            try:
                entries = getter(handle)
            except nvml.NVMLError:
                continue
            for e in entries:
                used = e.usedGpuMemory if isinstance(e.usedGpuMemory, int) else 0
                rec = seen.setdefault(str(e.pid), {"gpus": {}, **environ(e.pid)})
                rec["gpus"][uuid] = max(rec["gpus"].get(uuid, 0), used)


def main() -> None:
    out = sys.argv[1]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    nvml.nvmlInit()
    handles = {}
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        uuid = nvml.nvmlDeviceGetUUID(handle)
        handles[uuid.decode() if isinstance(uuid, bytes) else uuid] = handle
    while not stop:
        sample(handles)
        time.sleep(0.2)
    with open(out, "w") as handle:
        json.dump(seen, handle, indent=1)


main()
