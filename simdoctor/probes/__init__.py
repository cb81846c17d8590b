"""Probes gather facts about the machine into typed data; `simdoctor.probing` loads their modules."""
