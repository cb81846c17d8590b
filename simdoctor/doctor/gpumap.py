"""Which Vulkan device is which NVIDIA GPU: `-graphicsadapter` takes the Vulkan enumeration index,
not the nvidia-smi one. The Vulkan deviceUUID is the NVML UUID without its `GPU-` prefix
(verified on an H100, reference/carla.md §6)."""

from __future__ import annotations

from typing import Optional


def vulkan_uuid(nvml_uuid: str) -> str:
    text = nvml_uuid.lower()
    return text[4:] if text.startswith("gpu-") else text


def adapter_index(nvml_uuid: str, devices: list) -> Optional[int]:
    """The first Vulkan index whose deviceUUID is this GPU's (UE4 takes OriginalOrderedDevices[N])."""
    wanted = vulkan_uuid(nvml_uuid)
    return next((d.index for d in devices if (d.uuid or "").lower() == wanted), None)


def adapter_map(gpus: list, devices: list) -> dict[int, Optional[int]]:
    """NVML index -> Vulkan index (None when Vulkan does not list that GPU)."""
    return {g.index: adapter_index(g.uuid, devices) for g in gpus}
