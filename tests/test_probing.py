"""The probe runner: concurrency, per-probe deadlines, and failures that never reach the caller."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from simdoctor.doctor import probing
from simdoctor.doctor.probing import (
    PROBE_MODULES,
    SLOW_PROBES,
    Facts,
    Probe,
    ProbeContext,
    ProbeFailure,
    dump_facts,
    load_facts,
    run_probes,
)


@dataclass(frozen=True)
class Answer:
    value: int


@pytest.fixture
def fake_probes(monkeypatch):
    release = threading.Event()

    def hangs(ctx):
        release.wait(30)
        return Answer(0)

    def raises(ctx):
        raise OSError("the driver said no")

    def answers(ctx):
        time.sleep(0.2)
        return Answer(42)

    for name, fn, timeout in (("hangs", hangs, 0.3), ("raises", raises, 1.0), ("answers", answers, 2.0)):
        monkeypatch.setitem(probing.REGISTRY, name, Probe(name, fn, Answer, timeout, f"{name} probe"))
    yield
    release.set()


def test_a_hanging_probe_times_out_and_a_raising_one_is_recorded(fake_probes, make_settings):
    start = time.monotonic()
    facts = run_probes(["hangs", "raises", "answers"], ProbeContext(make_settings()))
    elapsed = time.monotonic() - start
    assert facts.get("answers") == Answer(42)
    hung = facts.failure("hangs")
    assert hung.timed_out and "no answer within 0.3s" in hung.error
    assert facts.failure("raises") == ProbeFailure("raises", "OSError: the driver said no")
    assert elapsed < 1.5  # the probes ran concurrently: not 0.3 + 0.2 + the hang


def test_dump_and_load_round_trip_typed_facts(fake_probes, make_settings, tmp_path):
    facts = run_probes(["raises", "answers"], ProbeContext(make_settings()))
    dump_facts(facts, tmp_path / "f.json")
    again = load_facts(tmp_path / "f.json")
    assert again.by_probe == facts.by_probe


def test_loading_rejects_foreign_files(tmp_path):
    (tmp_path / "x.json").write_text('{"schema_version": 99}')
    with pytest.raises(ValueError, match="not a simdoctor facts dump"):
        load_facts(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"schema_version": 1, "probes": {"nosuch": {"facts": {}}}}')
    with pytest.raises(ValueError, match="unknown probe 'nosuch'"):
        load_facts(tmp_path / "y.json")


def test_every_registered_probe_has_a_facts_type_that_round_trips(make_settings, tmp_path):
    probing._load_all()

    names = sorted(probing.REGISTRY)
    assert {"system", "gpu", "vulkan", "display", "carla", "ports", "server", "agent", "weights", "network"} <= set(
        names
    )
    facts = run_probes(names, ProbeContext(make_settings()))
    dump_facts(facts, tmp_path / "all.json")
    assert load_facts(tmp_path / "all.json").by_probe == facts.by_probe
    assert isinstance(facts, Facts) and not any(isinstance(v, ProbeFailure) for v in facts.by_probe.values())


def test_probe_modules_name_every_module_of_the_package():
    """Probes register on import and only PROBE_MODULES get imported: a module left out would never run."""
    import simdoctor.doctor.probes

    package = Path(simdoctor.doctor.probes.__file__).parent
    assert sorted(PROBE_MODULES) == sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")


def test_a_slow_probe_imports_its_own_module_only(home):
    """`check` starts the slow probes before the other probe modules load (issue 15)."""
    code = (
        "import sys; from simdoctor.doctor import probing; from simdoctor.config.settings import load_settings;"
        "probing.start_probes(list(probing.SLOW_PROBES), probing.ProbeContext(load_settings({}))).wait();"
        "print(sorted(m for m in sys.modules if m.startswith('simdoctor.doctor.probes.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split("\n")[0] == str(sorted(f"simdoctor.doctor.probes.{n}" for n in SLOW_PROBES))


def test_started_probes_are_kept_and_collected_in_the_last_order_asked(fake_probes, make_settings):
    pending = probing.start_probes(["answers"], ProbeContext(make_settings()))
    first = pending._threads["answers"][0]
    pending.start(["raises", "answers"])
    assert pending._threads["answers"][0] is first  # not started twice
    facts = pending.wait()
    assert list(facts.by_probe) == ["raises", "answers"]
    assert facts.get("answers") == Answer(42)


def test_slow_probes_are_needed_by_every_check_run_without_a_selection(make_settings):
    """entry.check starts SLOW_PROBES before knowing the checks whenever no --only/--skip narrows them."""
    from simdoctor.doctor import diagnosis
    from simdoctor.doctor.checking import CheckContext
    from simdoctor.doctor.probes.slurm import SlurmIntent

    for backend in ("process", "docker"):
        for flags in range(16):
            deep, window, viz, slurm = (bool(flags & bit) for bit in (1, 2, 4, 8))
            intent = SlurmIntent("/tmp/out", probe_job=deep) if slurm else None
            ctx = CheckContext(make_settings(), window=window, deep=deep, backend=backend, slurm=intent, viz=viz)
            needed = diagnosis.needed_probes(diagnosis.applicable(diagnosis.select(diagnosis.Selection()), ctx))
            assert set(SLOW_PROBES) <= set(needed), (backend, flags)


def test_without_the_nvml_library_the_gpu_probe_answers_as_pynvml_does():
    """The gpu probe tries pynvml's own dlopen before importing pynvml (issue 15: check's start-up); where it fails
    (this machine has no NVIDIA driver) the probe's answer is the one pynvml's nvmlInit gives."""
    import ctypes

    import pynvml

    from simdoctor.doctor.probes import gpu

    assert str(pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)) == gpu.NVML_NOT_FOUND
    try:
        ctypes.CDLL(gpu.NVML_LIBRARY)
    except OSError:
        pass
    else:
        pytest.skip("this machine has the NVIDIA driver's NVML library")
    with pytest.raises(pynvml.NVMLError) as real:
        pynvml.nvmlInit()
    with pytest.raises(RuntimeError) as ours:
        gpu.nvml_session()
    assert str(ours.value) == f"NVML: {real.value}"
