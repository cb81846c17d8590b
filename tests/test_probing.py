"""The probe runner: concurrency, per-probe deadlines, and failures that never reach the caller."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from simdoctor import probing
from simdoctor.probing import Facts, Probe, ProbeContext, ProbeFailure, dump_facts, load_facts, run_probes


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
    import simdoctor.probes  # noqa: F401  (registers them)

    names = sorted(probing.REGISTRY)
    assert {"system", "gpu", "vulkan", "display", "carla", "ports", "server", "agent", "weights", "network"} <= set(
        names
    )
    facts = run_probes(names, ProbeContext(make_settings()))
    dump_facts(facts, tmp_path / "all.json")
    assert load_facts(tmp_path / "all.json").by_probe == facts.by_probe
    assert isinstance(facts, Facts) and not any(isinstance(v, ProbeFailure) for v in facts.by_probe.values())
