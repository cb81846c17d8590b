"""Slurm: the cluster's command-line tools (client.py), the batch scripts simdoctor submits (script.py), and
`run --executor slurm`: the login node's side (backend.py), an array task's side (node.py), and the files
they share under <out>/slurm/ (jobs.py)."""
