"""The helpers every subsystem shares: processes, files, and the wire formats simdoctor speaks. They know the
settings (simdoctor.config) and nothing above them.

subproc.py   bounded subprocess runs            procs.py     /proc: processes, their environ, sockets
proctree.py  process trees simdoctor started, found again and stopped whole
libs.py      where the dynamic linker finds a library           mounts.py  local or shared filesystem
atomic.py    whole-file writes (temp file + rename)             safefile.py  in-place writes, no planted links
filelock.py  advisory locks on such files       strictjson.py  JSON as the standard says
extras.py    simdoctor's optional parts and the command that adds one
terminal.py  the rich console every command prints to (NO_COLOR honoured alike)
rpc.py              CARLA's msgpack-rpc wire, over the msgpack package (the server probe, the ready wait)
serverstate.py      records of the CARLA servers simdoctor started (the doctor reads them, carla writes them)
slurm.py, sbatch.py Slurm's command-line tools and the batch scripts given to sbatch (doctor and run)
"""
