"""The doctor (`simdoctor check`): probes -> facts -> checks -> findings -> render.

probing.py   the probe registry; runs probes concurrently, each under a timeout, into typed Facts
probes/      one module per subject (gpu, vulkan, display, carla, agent, slurm, ...): facts, never verdicts
checking.py  the check registry; checks/ one module per group: pure functions from facts to Verdicts
findings.py  Finding, Fix, Status and the exit code    distro.py  fixes in this machine's package manager
rootfix.py   what a command refusing root says to do instead   gpumap.py  NVML <-> Vulkan device indexes
render.py    terminal and JSON output (80-column fitting)      diagnosis.py  `check` end to end
"""
