"""The `simdoctor` command as a user runs it: a real subprocess, its output and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

FINDING_FIELDS = {"id", "group", "title", "status", "summary", "details", "fix"}


def simdoctor(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simdoctor", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env or dict(os.environ),
    )  # fmt: skip


def test_json_has_exactly_the_documented_shape(home):
    done = simdoctor("check", "--json", "--skip", "agent")
    payload = json.loads(done.stdout)
    assert payload["schema_version"] == 1
    assert payload["results"] and all(set(r) == FINDING_FIELDS for r in payload["results"])
    assert all(r["status"] in ("ok", "warn", "fail", "skip") for r in payload["results"])
    for r in payload["results"]:
        assert r["fix"] is None or (set(r["fix"]) == {"text", "commands"} and isinstance(r["fix"]["commands"], list))
    summary = payload["summary"]
    assert {"ok", "warn", "fail", "skip", "exit_code"} <= set(summary)
    assert done.returncode == summary["exit_code"] == (1 if summary["fail"] else 0)


def test_json_seconds_count_from_the_process_start(home):
    """summary.seconds is the whole run, the interpreter's start and imports included: a second spent before
    simdoctor is even imported shows in it, and it never exceeds the wall time around the process."""
    code = "import runpy, sys, time; time.sleep(1); sys.argv = ['simdoctor', 'check', '--json', '--only', 'system'];"
    code += "runpy.run_module('simdoctor', run_name='__main__')"
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    wall = time.monotonic() - began
    assert 1.0 <= json.loads(done.stdout)["summary"]["seconds"] <= wall + 0.01  # /proc counts 10 ms ticks


def test_exit_0_when_nothing_fails_and_1_with_strict_warnings(home):
    assert simdoctor("check", "--only", "display").returncode == 0
    assert simdoctor("check", "--only", "network", "--strict").returncode == 1  # offline: a warning
    assert simdoctor("check", "--only", "network").returncode == 0


def test_exit_1_when_something_fails(home):
    done = simdoctor("check", "--only", "weights")
    assert done.returncode == 1 and "is missing" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "--only", "vulcan"], "unknown check or group 'vulcan'"),
        (["check", "--recipe", "nope"], "no recipe named 'nope'"),
        (["check", "--carla-port", "99999"], "99999 is not a port number"),
        (["check", "--backend", "podman"], "--backend podman: how CARLA runs is --backend process|docker; where"),
        (["check", "--facts", "/nonexistent.json"], "cannot read facts file"),
        (["check", "--bogus"], "No such option"),
    ],
)
def test_usage_and_configuration_errors_exit_2_with_one_message(home, args, message):
    done = simdoctor(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_broken_config_file_is_a_configuration_error(home, tmp_path):
    Path(os.environ["SIMDOCTOR_CONFIG"]).write_text("carla_root = [unclosed\n")
    done = simdoctor("check", "--only", "system")
    assert done.returncode == 2 and "cannot be read" in done.stderr and "Traceback" not in done.stderr


def test_broken_recipe_names_the_key(home, tmp_path):
    bad = tmp_path / "bad.toml"
    text = (REPO / "recipes" / "simlingo-bench2drive.toml").read_text().replace("rpc_port", "rpc_port")
    bad.write_text(text.replace('version = "0.9.15"', "version = 915", 1))
    done = simdoctor("check", "--recipe", str(bad), "--only", "system")
    assert done.returncode == 2 and "carla.version: expected str" in done.stderr


def test_plain_output_without_a_tty_and_with_no_color(home):
    env = dict(os.environ, NO_COLOR="1")
    done = simdoctor("check", "--only", "display", env=env)
    assert "\x1b[" not in done.stdout and "DISPLAY is unset" in done.stdout


def test_tokens_never_appear_in_any_output(home, tmp_path):
    secret = "hf_SECRETtokenVALUE123"
    env = dict(os.environ, HF_TOKEN=secret, HF_ENDPOINT=f"https://user:{secret}@127.0.0.1:1")
    for args in (["check", "-v"], ["check", "--json", "-v"], ["check", "--only", "network", "-v"]):
        done = simdoctor(*args, env=env)
        assert secret not in done.stdout + done.stderr, args
    dump = tmp_path / "facts.json"
    simdoctor("check", "--dump-facts", str(dump), env=env)
    assert secret not in dump.read_text()


def test_facts_dump_replays_to_the_same_findings(home, tmp_path):
    dump = tmp_path / "facts.json"
    first = json.loads(simdoctor("check", "--json", "--dump-facts", str(dump)).stdout)
    again = json.loads(simdoctor("check", "--json", "--facts", str(dump)).stdout)
    assert first["results"] == again["results"]


def test_list_shows_every_check(home):
    done = simdoctor("check", "--list")
    assert done.returncode == 0
    assert "vulkan.adapter_map" in done.stdout and "system.user" in done.stdout


def test_verbose_adds_details(home):
    quiet = simdoctor("check", "--only", "vulkan").stdout
    loud = simdoctor("check", "--only", "vulkan", "-v").stdout
    assert "searched:" in loud and "searched:" not in quiet
