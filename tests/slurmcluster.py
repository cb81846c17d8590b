"""A real single-node Slurm cluster for the tests: munged, slurmctld and slurmd from Debian's packages,
configured under a temporary directory (own ports, own munge socket, own state), GPUs modelled as GRES.

Slurm 22.05 drops GPUs that have no device file ("Removing file-less GPU"), so each modelled GPU gets a
character device made with mknod (same numbers as /dev/null): slurmd then sets CUDA_VISIBLE_DEVICES and
SLURM_JOB_GPUS in each job like on a real GPU node. Needs root (mknod, munged --force, slurmd).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("slurmd", "slurmctld", "munged")


@dataclass
class Cluster:
    root: Path
    partition: str
    host: str
    gpus: int

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}

    def pids(self) -> dict[str, int]:
        found = {}
        for name in DAEMONS:
            pid_file = self.root / f"{name}.pid"
            if pid_file.exists():
                found[name] = int(pid_file.read_text().strip())
        return found

    def stop(self) -> None:
        for _name, pid in self.pids().items():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 10
        for pid in self.pids().values():
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def start(root: Path, gpus: int = 2, cpus: int | None = None, timeout: float = 60.0) -> Cluster:
    """Write the config, start the three daemons, wait until the node is idle."""
    for tool in ("munged", "slurmctld", "slurmd", "sinfo"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run `bash tests/setup.sh` (slurm-wlm, munge)")
    if os.geteuid() != 0:
        raise RuntimeError("the Slurm test cluster needs root (mknod for GPU devices, slurmd)")
    host = socket.gethostname()
    cpus = cpus or os.cpu_count() or 1
    for sub in ("state", "spool", "log", "dev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    for i in range(gpus):
        dev = root / "dev" / f"nvidia{i}"
        if not dev.exists():
            os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
    ctld_port, slurmd_port = _free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=simdoctortest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
NodeName={host} CPUs={cpus} RealMemory=4000 Gres=gpu:{gpus} State=UNKNOWN
PartitionName=gpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File={root}/dev/nvidia[0-{gpus - 1}]\n")
    cluster = Cluster(root, "gpu", host, gpus)
    env = cluster.env
    subprocess.run(
        ["munged", f"--key-file={key}", f"--socket={root}/munge.sock", f"--pid-file={root}/munged.pid",
         f"--log-file={root}/log/munged.log", f"--seed-file={root}/munge.seed", "--force"],
        check=True, env=env,
    )  # fmt: skip
    subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
    subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env).stdout.strip()
        if state == "idle":
            return cluster
        time.sleep(0.2)
    log = (root / "log" / "slurmctld.log").read_text()[-2000:]
    cluster.stop()
    raise RuntimeError(f"the Slurm node never became idle (last state {state!r}):\n{log}")
