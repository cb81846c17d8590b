"""Print, as JSON, the GPUs NVML sees, the Vulkan devices, and simdoctor's NVML index -> Vulkan index map
(the -graphicsadapter / --gpu-rank of each GPU): what the device scripts check the commands against."""

import json

from simdoctor.doctor.gpumap import adapter_map
from simdoctor.doctor.probes.gpu import nvml_session, read_gpus
from simdoctor.doctor.probes.vulkan import enumerate_devices

gpus = read_gpus(nvml_session())
listing = enumerate_devices(timeout=10)
print(json.dumps({
    "gpus": [{"index": g.index, "name": g.name, "uuid": g.uuid} for g in gpus],
    "vulkan": [{"index": d.index, "name": d.name, "type": d.type, "vendor": hex(d.vendor_id), "uuid": d.uuid}
               for d in listing.devices],
    "vulkan_error": listing.error,
    "adapter_map": {str(k): v for k, v in adapter_map(gpus, listing.devices).items()},
}, indent=1))  # fmt: skip
