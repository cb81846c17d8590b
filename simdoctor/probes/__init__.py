"""Probes gather facts about the machine into typed data. Importing this package registers them all."""

from simdoctor.probes import (  # noqa: F401
    agent,
    carla,
    display,
    docker,
    gpu,
    network,
    ports,
    server,
    servers,
    slurm,
    system,
    viz,
    vulkan,
    weights,
    window,
)
