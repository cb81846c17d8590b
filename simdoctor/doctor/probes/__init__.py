"""Probes gather facts about the machine into typed data; `simdoctor.doctor.probing` loads their modules."""
