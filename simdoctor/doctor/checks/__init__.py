"""The checks, one module per group: pure functions from facts to one Verdict each, registered with
simdoctor.doctor.checking's @check. Importing this package registers them all."""

from simdoctor.doctor.checks import (  # noqa: F401  (registers every check)
    agent,
    carla,
    checkout,
    display,
    docker,
    gpu,
    network,
    slurm,
    system,
    viz,
    vulkan,
    weights,
)
