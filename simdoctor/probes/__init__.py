"""Probes gather facts about the machine into typed data. Importing this package registers them all."""

from simdoctor.probes import (  # noqa: F401
    agent,
    carla,
    checkout,
    display,
    docker,
    gpu,
    network,
    packages,
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
