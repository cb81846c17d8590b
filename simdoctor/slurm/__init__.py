"""Slurm: the cluster's command-line tools (client.py) and the batch scripts simdoctor submits (script.py)."""
