"""Print, as JSON, what a Slurm array task on this machine would run on, for each GPU and each way a node
names it: simdoctor/run/slurm/node.py's task_gpu with this machine's real NVML and Vulkan facts and the
variables slurmd sets for a task given that GPU, then the evaluator's launch on that slot (runplan.launch,
as `simdoctor run-task` makes it): its CUDA_VISIBLE_DEVICES and --gpu-rank.
`python3 slurm_map.py ROUTES OUT` (a routes file and a fresh output folder for the plan).
No Slurm runs here; the variables are set as a node sets them:
- gres: SLURM_JOB_GPUS and CUDA_VISIBLE_DEVICES = the GPU's global id, i.e. its place among the node's
  /dev/nvidiaN files (gres.conf `File=/dev/nvidia[0-N]`, or AutoDetect=nvml, both in minor-number order),
  with every GPU visible to NVML (ConstrainDevices=no);
- step: SLURM_STEP_GPUS = that id inside a job given every GPU (SLURM_JOB_GPUS = all of them);
- uuid: CUDA_VISIBLE_DEVICES = the GPU's UUID (sites that export UUIDs).
(ConstrainDevices=yes, where NVML sees only the job's GPU, needs cgroups a real slurmd sets up: not here.)"""

import json
import sys
from pathlib import Path

from simdoctor.config.settings import load_settings
from simdoctor.doctor.probes.gpu import GpuFacts
from simdoctor.doctor.probing import ProbeContext, run_probes
from simdoctor.run.runplan import Options, Slot, build, launch, vulkan_devices
from simdoctor.run.slurm.node import NodeError, task_gpu

settings = load_settings()
options = Options(routes=Path(sys.argv[1]), out=Path(sys.argv[2]), fresh=True)
ports = {"rpc": 2000, "streaming": 2001, "secondary": 2002, "traffic_manager": 8000}
facts = run_probes(["gpu", "vulkan"], ProbeContext(settings))
gpus: GpuFacts = facts.get("gpu")
devices = vulkan_devices(facts)
by_minor = sorted(gpus.gpus, key=lambda g: (g.minor_number is None, g.minor_number, g.index))
every = ",".join(str(i) for i in range(len(by_minor)))
cases = []
for global_id, gpu in enumerate(by_minor):
    for how, env in (
        ("gres", {"SLURM_JOB_GPUS": str(global_id), "CUDA_VISIBLE_DEVICES": str(global_id)}),
        ("step", {"SLURM_STEP_GPUS": str(global_id), "SLURM_JOB_GPUS": every, "CUDA_VISIBLE_DEVICES": every}),
        ("uuid", {"CUDA_VISIBLE_DEVICES": gpu.uuid, "SLURM_JOB_GPUS": str(global_id)}),
    ):
        case = {"case": how, "env": env, "expected_index": gpu.index, "expected_uuid": gpu.uuid,
                "minor_number": gpu.minor_number}  # fmt: skip
        try:
            got = task_gpu(env, 1, gpus, devices)
        except NodeError as exc:
            case["error"] = str(exc)
        else:
            case.update(index=got.index, uuid=got.uuid, adapter=got.adapter, how=got.how)
            slot = Slot(0, got.index, got.uuid, got.name, got.adapter, ports)
            plan, _ = build(settings, options, [slot])
            run = launch(plan, plan.tasks[0], slot)
            case["launch"] = {
                "argv": [a for a in run.argv if a.startswith("--gpu-rank")],
                "env": {k: v for k, v in run.env.items() if k.startswith("CUDA_")},
            }
        cases.append(case)
print(json.dumps({"cases": cases}, indent=1))
