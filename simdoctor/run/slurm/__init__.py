"""`run --executor slurm`: the login node's side (backend.py), an array task's side (node.py), and the files
they share under <out>/slurm/ (jobs.py). Slurm's tools and batch scripts are simdoctor.system.slurm and .sbatch."""
