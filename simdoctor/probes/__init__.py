"""Probes gather facts about the machine into typed data. Importing this package registers them all."""

from simdoctor.probes import (  # noqa: F401
    agent,
    carla,
    display,
    gpu,
    network,
    ports,
    server,
    system,
    vulkan,
    weights,
)
