"""`simdoctor check --executor slurm` against a real single-node Slurm cluster (tests/slurmcluster.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from builders import bench2drive_standin, carla_root

import simdoctor
from simdoctor.doctor.checking import CheckContext
from simdoctor.doctor.diagnosis import Selection, applicable, diagnose, select
from simdoctor.doctor.findings import Status
from simdoctor.doctor.probes.slurm import SlurmIntent
from simdoctor.doctor.probing import ProbeContext, run_probes
from simdoctor.system.slurm import gpu_count

SLURM_IDS = ["slurm.tools", "slurm.controller", "slurm.partition", "slurm.gpus", "slurm.out_dir", "slurm.accounting"]


def slurm_findings(settings, intent, probes=("slurm",)):
    facts = run_probes(list(probes), ProbeContext(settings, slurm=intent))
    ctx = CheckContext(settings, slurm=intent)
    return {f.id: f for f in diagnose(facts, applicable(select(Selection(only=("slurm",))), ctx), ctx)}, facts


def test_a_healthy_single_node_cluster(on_cluster, make_settings, tmp_path):
    found, facts = slurm_findings(make_settings(), SlurmIntent(str(tmp_path / "out")))
    assert list(found) == SLURM_IDS  # the probe job is only asked for with --probe
    s = facts.get("slurm")
    assert s.version == "22.05.8" or s.version.count(".") == 2
    assert [p.name for p in s.partitions] == ["gpu"] and s.partitions[0].gpus_per_node == [2]
    assert found["slurm.controller"].status is Status.OK and "is UP" in found["slurm.controller"].summary
    assert (
        found["slurm.partition"].status is Status.OK
        and "gpu (the cluster's default)" in found["slurm.partition"].summary
    )
    assert found["slurm.gpus"].status is Status.WARN  # 2 CPUs / 4000 MB: below one worker's 8 CPUs / 40 GiB
    assert "2 GPUs in all" in found["slurm.gpus"].summary
    assert found["slurm.out_dir"].status is Status.OK and "only node is this host" in found["slurm.out_dir"].summary
    assert found["slurm.accounting"].status is Status.WARN and "disabled" in found["slurm.accounting"].summary


def test_an_unknown_partition_lists_the_real_ones(on_cluster, make_settings, tmp_path):
    found, _ = slurm_findings(make_settings(slurm_partition="a100"), SlurmIntent(str(tmp_path)))
    f = found["slurm.partition"]
    assert f.status is Status.FAIL and "'a100' does not exist" in f.summary and "gpu*" in f.summary
    assert f.fix.commands == ["export SIMDOCTOR_SLURM_PARTITION=gpu"]
    assert found["slurm.gpus"].status is Status.SKIP


def test_a_controller_that_is_down(make_settings, tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=gone\nSlurmctldHost=localhost\nSlurmctldPort=1\nAuthType=auth/none\n"
                    "NodeName=localhost\nPartitionName=p Nodes=localhost\n")  # fmt: skip
    monkeypatch.setenv("SLURM_CONF", str(conf))
    found, _ = slurm_findings(make_settings(), SlurmIntent(str(tmp_path)))
    f = found["slurm.controller"]
    assert f.status is Status.FAIL and "DOWN" in f.summary and f.fix.commands == ["scontrol ping"]


def test_the_probe_job_runs_the_agent_probe_on_the_node(on_cluster, make_settings, agent_python, tmp_path):
    settings = make_settings(agent_python=agent_python, carla_root=str(tmp_path / "carla"),
                             work_dir=str(tmp_path / "simlingo"))  # fmt: skip
    carla_root(tmp_path / "carla", settings.recipe)
    bench2drive_standin(tmp_path / "simlingo")
    found, facts = slurm_findings(settings, SlurmIntent(str(tmp_path / "out"), probe_job=True), ("slurm", "slurm_job"))
    job = facts.get("slurm_job")
    assert job.error is None and job.agent.node.hostname == on_cluster.host
    assert job.agent.node.variables["CUDA_VISIBLE_DEVICES"] in ("0", "1")  # Slurm gave it one of the 2 GPUs
    assert job.agent.version.startswith("3.") and job.agent.modules["srunner"].found
    # simdoctor's own interpreter and package, which `run --executor slurm` runs in each task, are there too
    assert job.agent.node.paths[sys.executable] and job.agent.node.paths[str(Path(simdoctor.__file__).parent)]
    f = found["slurm.probe_job"]
    assert f.status is Status.OK and f"job {job.job_id} ran on {on_cluster.host}" in f.summary


def test_the_probe_job_names_what_the_node_lacks(on_cluster, make_settings, agent_python, tmp_path):
    settings = make_settings(agent_python=agent_python, carla_root=str(tmp_path / "no-carla"),
                             work_dir=str(tmp_path / "simlingo"))  # fmt: skip
    bench2drive_standin(tmp_path / "simlingo")
    found, _ = slurm_findings(settings, SlurmIntent(str(tmp_path / "out"), probe_job=True), ("slurm", "slurm_job"))
    f = found["slurm.probe_job"]
    assert f.status is Status.FAIL
    assert f"{tmp_path / 'no-carla'}/CarlaUE4.sh missing there" in f.details


def test_the_check_command_speaks_slurm_only_when_asked(on_cluster, home, tmp_path):
    from test_cli import simdoctor

    assert "slurm" not in simdoctor("check", "--only", "system", "--json").stdout
    done = simdoctor("check", "--executor", "slurm", "--only", "slurm", "--out", str(tmp_path))
    assert "Slurm controller" in done.stdout and "is UP" in done.stdout
    assert simdoctor("check", "--probe").returncode == 2


def test_gres_strings_as_sinfo_prints_them():
    assert gpu_count("gpu:4", "gpu") == 4
    assert gpu_count("gpu:a100:4(S:0-1)", "gpu") == 4
    assert gpu_count("gpu:2,shard:8", "gpu") == 2
    assert gpu_count("(null)", "gpu") == 0
    assert gpu_count("gpu:a100:2,gpu:v100:1", "gpu") == 3
