"""The run plan: worker slots from the machine's GPUs, one task per route, each task's exact command."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import builders
import pytest
from test_cli import simdoctor

from simdoctor.config.agentenv import agent_environment
from simdoctor.config.recipe import ConfigError
from simdoctor.doctor import diagnosis, rootfix
from simdoctor.doctor.checking import CheckContext
from simdoctor.doctor.probes.ports import worker_ports
from simdoctor.doctor.probing import load_facts
from simdoctor.run import results, runplan
from simdoctor.scripts import path as script_path

H100 = Path(__file__).parent / "data" / "h100"
ROUTES = [
    {"id": "1711", "town": "Town12", "type": "ParkingCutIn"},
    {"id": "1773", "town": "Town12", "type": "Accident"},
    {"id": "2084", "town": "Town13", "type": "HardBreakRoute"},
]
ANY_PORT = {"is_free": lambda port: True}


def h100(name="loader"):
    facts = load_facts(H100 / f"facts-{name}.json")
    return facts, facts.get("gpu"), runplan.vulkan_devices(facts)


def two_gpus():
    """The H100 machine with a second GPU (20 GiB free) that Vulkan lists first."""
    _, gpus, devices = h100()
    other = dataclasses.replace(gpus.gpus[0], index=1, uuid="GPU-11111111-2222-3333-4444-555555555555",
                                memory_free_bytes=20 * 2**30)  # fmt: skip
    vk = [dataclasses.replace(devices[0], index=0, uuid="11111111-2222-3333-4444-555555555555"),
          dataclasses.replace(devices[0], index=1)]  # fmt: skip
    return dataclasses.replace(gpus, gpus=[gpus.gpus[0], other]), vk


@pytest.fixture
def stack(make_settings, tmp_path, agent_python):
    """Settings for a SimLingo checkout and CARLA package under tmp_path, and a routes file."""
    work = builders.bench2drive_standin(tmp_path / "simlingo")
    settings = make_settings(work_dir=str(work), carla_root=str(tmp_path / "carla"), agent_python=agent_python)
    return settings, builders.routes_xml(tmp_path / "bench2drive220.xml", ROUTES)


def test_the_gpu_checks_decide_whether_a_run_can_start(make_settings):
    settings = make_settings()
    checks = diagnosis.select(diagnosis.Selection(only=runplan.GPU_CHECKS))
    for name, fatal in (("loader", []), ("bare", ["vulkan.loader"])):
        facts, gpus, devices = h100(name)
        findings = diagnosis.diagnose(facts, checks, CheckContext(settings))
        assert [f.id for f in runplan.gpu_gate(findings, gpus, devices, None)] == fatal


def test_an_unmapped_gpu_stops_the_run_only_when_selected(make_settings):
    settings = make_settings()
    facts, _, _ = h100()
    gpus, devices = two_gpus()
    facts.by_probe["gpu"] = gpus
    checks = diagnosis.select(diagnosis.Selection(only=runplan.GPU_CHECKS))
    findings = diagnosis.diagnose(facts, checks, CheckContext(settings))  # Vulkan lists only GPU 0 there
    assert [f.id for f in runplan.gpu_gate(findings, gpus, devices[1:], (0,))] == []
    assert [f.id for f in runplan.gpu_gate(findings, gpus, devices[1:], (1,))] == ["vulkan.adapter_map"]
    assert [f.id for f in runplan.gpu_gate(findings, gpus, devices[1:], None)] == ["vulkan.adapter_map"]


def test_auto_workers_from_free_memory_on_the_h100(make_settings):
    _, gpus, devices = h100()
    slots, notes = runplan.plan_slots(make_settings(), None, None, gpus, devices, **ANY_PORT)
    assert len(slots) == 6 and notes == []  # 79.2 GiB free // 12 GiB per worker
    assert {(s.gpu, s.graphics_adapter, s.gpu_uuid) for s in slots} == {(0, 0, gpus.gpus[0].uuid)}
    assert slots[0].ports == {"rpc": 20000, "streaming": 20001, "secondary": 20002, "traffic_manager": 20003}
    ports = [p for s in slots for p in s.ports.values()]
    assert len(ports) == len(set(ports)) == 24


def test_slots_spread_over_gpus_with_their_vulkan_index(make_settings):
    gpus, devices = two_gpus()
    slots, _ = runplan.plan_slots(make_settings(), None, None, gpus, devices, **ANY_PORT)
    assert [(s.gpu, s.graphics_adapter) for s in slots][:4] == [(0, 1), (1, 0), (0, 1), (0, 1)]
    assert len(slots) == 6 + 1  # 20 GiB free on GPU 1: one worker
    only, _ = runplan.plan_slots(make_settings(), (1,), 2, gpus, devices, **ANY_PORT)
    assert [(s.index, s.gpu, s.graphics_adapter) for s in only] == [(0, 1, 0), (1, 1, 0)]
    _, notes = runplan.plan_slots(make_settings(), (1,), 3, gpus, devices, **ANY_PORT)
    assert notes == ["GPU 1: 20.0 GiB free for 3 workers of 12 GiB each"]


def test_slots_without_a_gpu(make_settings):
    slots, notes = runplan.plan_slots(make_settings(), (), 3, None, [], **ANY_PORT)
    assert [(s.gpu, s.graphics_adapter) for s in slots] == [(None, None)] * 3 and notes == []
    assert len({p for s in slots for p in s.ports.values()}) == 12


def test_gpu_selection_errors(make_settings):
    gpus, devices = two_gpus()
    with pytest.raises(ConfigError, match="no GPU 5"):
        runplan.plan_slots(make_settings(), (5,), None, gpus, devices, **ANY_PORT)
    full = dataclasses.replace(gpus, gpus=[dataclasses.replace(g, memory_free_bytes=2**30) for g in gpus.gpus])
    with pytest.raises(runplan.RunError, match="no selected GPU has the 12 GiB"):
        runplan.plan_slots(make_settings(), None, None, full, devices, **ANY_PORT)
    with pytest.raises(runplan.RunError, match="no NVIDIA GPU"):
        runplan.plan_slots(make_settings(), None, None, None, [], **ANY_PORT)
    assert runplan.parse_gpus("0, 2") == (0, 2) and runplan.parse_gpus("none") == ()
    assert runplan.parse_gpus(None) is None and runplan.parse_gpus("all") is None
    for bad in ("x", "0,0", "-1"):
        with pytest.raises(ConfigError):
            runplan.parse_gpus(bad)
    assert runplan.parse_workers("auto", 16) is None and runplan.parse_workers("4", 16) == 4
    for bad in ("0", "17"):
        with pytest.raises(ConfigError):
            runplan.parse_workers(bad, 16)


def test_worker_ports_skip_ports_in_use_and_taken(make_settings):
    carla = make_settings().recipe.carla
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        # A block starting two below the busy port cannot be used (its secondary port is busy).
        sets = worker_ports(carla, 2, busy - 2, taken=frozenset({busy + 4}))
    used = [p for s in sets for p in s.values()]
    assert busy not in used and busy + 4 not in used and len(set(used)) == 8
    assert sets[0]["rpc"] == busy + 1 and sets[0]["traffic_manager"] == busy + 5


def test_each_task_gets_the_exact_evaluator_command(stack, tmp_path):
    settings, source = stack
    gpus, devices = two_gpus()
    slots, _ = runplan.plan_slots(settings, (1,), 1, gpus, devices, **ANY_PORT)
    plan, _ = runplan.build(settings, runplan.Options(routes=source, out=tmp_path / "out", seed=3), slots)
    assert [t.route.id for t in plan.tasks] == ["1711", "1773", "2084"] and plan.pending == plan.tasks
    task, slot = plan.tasks[1], slots[0]
    run = runplan.launch(plan, task, slot)
    out, work = tmp_path / "out", tmp_path / "simlingo"
    checkpoint = f"{work}/outputs/simlingo/checkpoints/epoch=013.ckpt/pytorch_model.pt"
    assert run.argv == [
        settings.agent_python,
        f"{work}/Bench2Drive/leaderboard/leaderboard/leaderboard_evaluator.py",
        f"--routes={out}/routes/1773.xml",
        "--repetitions=1",
        "--track=SENSORS",
        f"--checkpoint={out}/res/1773.json",
        "--timeout=600",
        f"--agent={script_path('timed_agent.py')}",
        f"--agent-config={checkpoint}",
        "--traffic-manager-seed=3",
        "--port=20000",
        "--traffic-manager-port=20003",
        "--gpu-rank=0",
    ]
    assert run.env == {
        **agent_environment(settings),
        "SAVE_PATH": f"{out}/viz/1773/",
        "ROUTES": f"{out}/routes/1773.xml",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": "1",
        "SIMDOCTOR_AGENT_FILE": f"{work}/team_code/agent_simlingo.py",
        "SIMDOCTOR_STEPS_FILE": f"{out}/steps/1773.jsonl",
        "PYTHONUNBUFFERED": "1",
    }
    assert run.cwd == str(work)
    bare, _ = runplan.plan_slots(settings, (), 1, None, [], **ANY_PORT)
    plain = runplan.launch(plan, task, bare[0])
    assert not any(a.startswith("--gpu-rank") for a in plain.argv) and "CUDA_VISIBLE_DEVICES" not in plain.env
    assert (plan.retries, plan.route_timeout_s, plan.seed) == (1, 10800.0, 3)


def test_resume_skips_finished_routes_and_refuses_other_runs(stack, tmp_path):
    settings, source = stack
    slots, _ = runplan.plan_slots(settings, (), 1, None, [], **ANY_PORT)
    options = runplan.Options(routes=source, out=tmp_path / "out")
    plan, texts = runplan.build(settings, options, slots)
    runplan.prepare(plan, texts, settings)
    assert sorted(p.name for p in (tmp_path / "out" / "routes").iterdir()) == ["1711.xml", "1773.xml", "2084.xml"]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["seed"] == 1
    builders.results_file(Path(plan.tasks[0].results_file), "1711", "Town12", "ParkingCutIn")
    builders.results_file(Path(plan.tasks[1].results_file), "1773", "Town12", "Accident", completion=9.0,
                          failure="Simulation crashed", crashed=True)  # fmt: skip
    results.write_task(Path(plan.tasks[2].task_file), results.TaskRecord("2084", final="crashed"))
    again, _ = runplan.build(settings, options, slots)
    assert [t.finished for t in again.tasks] == [True, False, True]
    fresh, _ = runplan.build(settings, dataclasses.replace(options, fresh=True, seed=2), slots)
    assert [t.finished for t in fresh.tasks] == [False, False, False]
    with pytest.raises(ConfigError, match="seed 1"):
        runplan.build(settings, dataclasses.replace(options, seed=2), slots)
    builders.routes_xml(source, [{**ROUTES[0], "points": 7}, *ROUTES[1:]])
    with pytest.raises(ConfigError, match="route 1711 differs"):
        runplan.build(settings, options, slots)


def test_option_errors(stack, tmp_path):
    settings, source = stack
    for options, message in (
        (runplan.Options(routes=source, retries=-1), "--retries"),
        (runplan.Options(routes=source, route_timeout_s=0), "--route-timeout"),
        (runplan.Options(routes=source, route_ids="42"), "no route '42'"),
    ):
        with pytest.raises(ConfigError, match=message):
            runplan.build(settings, dataclasses.replace(options, out=tmp_path / "o"), [])
    nowhere = dataclasses.replace(settings, agent_python=str(tmp_path / "python3.8"))
    # a new user without one is told how to make it, not only how to name one
    with pytest.raises(ConfigError, match=r"no agent interpreter found .*`simdoctor setup --only checkout,agent_env`"):
        runplan.build(nowhere, runplan.Options(routes=source, out=tmp_path / "o"), [])


def test_dry_run_command(stack, tmp_path):
    settings, source = stack
    common = ["--routes", str(source), "--out", str(tmp_path / "out"), "--work-dir", str(settings.work_dir),
              "--agent-python", settings.agent_python]  # fmt: skip
    no_gpu = simdoctor("run", "--dry-run", *common, env={**os.environ, "NO_COLOR": "1"})
    if no_gpu.returncode == 0:
        pytest.skip("this machine has a GPU CARLA can use")
    assert no_gpu.returncode == 1 and "NVIDIA driver" in no_gpu.stdout and "--gpus none" in no_gpu.stdout
    text = simdoctor("run", "--dry-run", "--gpus", "none", "--workers-per-gpu", "2", *common)
    assert text.returncode == 0, text.stderr
    assert "slots (2)" in text.stdout and "route 1773 (Town12, Accident) on slot 1" in text.stdout
    assert f"--checkpoint={tmp_path}/out/res/2084.json" in text.stdout
    data = json.loads(simdoctor("run", "--dry-run", "--json", "--gpus", "none", "--route-ids", "1773", *common).stdout)
    assert data["schema_version"] == 1 and [t["route"]["id"] for t in data["plan"]["tasks"]] == ["1773"]
    (launch,) = data["launches"]
    assert launch["argv"][2] == f"--routes={tmp_path}/out/routes/1773.xml" and launch["cwd"] == str(settings.work_dir)
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    assert "running as root: `simdoctor run` refuses to start" in text.stdout  # the plan says so up front
    as_root = simdoctor("run", "--gpus", "none", *common)  # CI runs the suite as root
    assert as_root.returncode == 1 and as_root.stderr.startswith("simdoctor: refusing to run as root")
    # the same path as check's root finding: hand the stack to carla, then continue as carla
    assert "simdoctor setup --user carla" in as_root.stderr and not (tmp_path / "out").exists()
    assert f"su - carla -c '{rootfix.home_of('carla')}/.local/bin/simdoctor run'" in as_root.stderr
    bad = simdoctor("run", "--dry-run", "--gpus", "x", *common)
    assert bad.returncode == 2 and "--gpus 'x'" in bad.stderr
