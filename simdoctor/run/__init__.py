"""The run (`simdoctor run`, `report`, `watch`): plan -> slots -> supervised attempts -> results -> report,
on this machine's GPUs or as a Slurm array.

runplan.py     routes, GPUs, ports and preflight into a Plan     routes.py   the routes file and its ids
outdir.py      where each route's files live under --out         evaluator.py  one Bench2Drive evaluator run
supervisor.py  slots, attempts, retries, interrupts              sampling.py  peak GPU memory and RAM
progress.py    the live view or plain lines                       results.py  route records and merged.json
profiling.py   latency and FPS from the timing wrapper's steps    report.py  DS/SR and the figures
htmlreport.py  `report --html`     watch.py  `watch`: a live page     viz/  SimLingo's view as video
seeds.py       `run --seeds`: one run per seed, then their report
slurm/         `run --executor slurm`: submission, array tasks, the files they share
"""
