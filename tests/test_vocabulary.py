"""One name per meaning in every command (issue 15), run as a user runs it: the real CLI in a subprocess.

--backend is how CARLA runs (process|docker: check, carla start), --executor where the routes run (local|slurm:
check, run); --stall-timeout, --ready-timeout and --route-timeout are three different waits. The old spellings
(check --slurm, run --backend local|slurm, download/carla start --timeout) work for one release: hidden from
--help, with one note on stderr, never on stdout. List options are repeatable and comma-separated everywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import builders
import pytest

NOTE = "note: {old} is deprecated; use {new} (the old spelling goes in the next release)"
ROUTES = [{"id": str(i), "town": "Town01", "type": "Accident"} for i in range(3)]


def one_line(done, code: int, says: str) -> None:
    """A usage error: exit `code`, one line on stderr saying `says`, no traceback, nothing on stdout."""
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert done.stdout == "", done.stdout


def flags_in(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (("check",), "--slurm", "--executor"),
        (("run",), "--backend", "--executor"),
        (("download",), "--timeout", "--stall-timeout"),
        (("carla", "start"), "--timeout", "--ready-timeout"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_help_shows_the_new_spelling_only(simdoctor, path, old, new) -> None:
    shown = flags_in(simdoctor(*path, "--help").stdout)
    assert new in shown and old not in shown, shown


def test_check_executor_slurm_adds_the_cluster_checks_and_the_old_flag_says_so(simdoctor) -> None:
    def ids(*args: str):
        done = simdoctor("check", "--only", "slurm.tools", "--json", *args)
        return [r["id"] for r in json.loads(done.stdout)["results"]], done.stderr

    assert ids() == ids("--executor", "local") == ([], "")
    assert ids("--executor", "slurm") == (["slurm.tools"], "")
    assert ids("--slurm") == (["slurm.tools"], NOTE.format(old="--slurm", new="--executor slurm") + "\n")


def test_check_takes_runs_old_backend_slurm_by_value_and_keeps_its_own_backend(simdoctor) -> None:
    """check's --backend is how CARLA runs (process|docker); run's old `--backend local|slurm` typed at check maps
    to --executor with the note, and a value that fits neither is one line naming both."""

    def groups(*args: str):
        done = simdoctor("check", "--only", "slurm.tools,docker.sdk", "--json", *args)
        return sorted({r["group"] for r in json.loads(done.stdout)["results"]}), done.stderr

    assert groups("--backend", "process") == ([], "")
    assert groups("--backend=docker") == (["docker"], "")
    note = NOTE.format(old="--backend slurm", new="--executor slurm") + "\n"
    assert groups("--backend", "slurm") == (["slurm"], note)
    assert groups("--backend", "docker", "--executor", "slurm") == (["docker", "slurm"], "")
    one_line(simdoctor("check", "--backend", "pbs"), 2, "--backend pbs: how CARLA runs is --backend process|docker;")


def test_check_probe_needs_the_slurm_executor(simdoctor) -> None:
    one_line(simdoctor("check", "--probe"), 2, "--probe needs --executor slurm")


def test_run_executor_and_its_old_spelling_plan_the_same_slurm_arrays(simdoctor, tmp_path: Path) -> None:
    source = builders.routes_xml(tmp_path / "routes.xml", ROUTES)
    common = ("--dry-run", "--json", "--routes", str(source), "--out", str(tmp_path / "out"),
              "--agent-python", sys.executable)  # fmt: skip
    new = simdoctor("run", "--executor", "slurm", *common)
    old = simdoctor("run", "--backend", "slurm", *common)
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert json.loads(old.stdout) == json.loads(new.stdout)  # the note stays off stdout: it is JSON
    assert new.stderr == "" and old.stderr == NOTE.format(old="--backend slurm", new="--executor slurm") + "\n"


@pytest.mark.parametrize("spelling", [("--executor", "local"), ("--backend", "local"), ("--backend=local",)])
def test_run_local_is_the_local_executor_in_either_spelling(simdoctor, spelling) -> None:
    done = simdoctor("run", "--dry-run", *spelling, "--time", "10")
    assert done.returncode == 2 and "--time: only with --executor slurm" in done.stderr, done.stderr
    assert ("deprecated; use --executor local" in done.stderr) == (spelling[0] != "--executor")


@pytest.mark.parametrize("value", ["process", "docker", "pbs"])
def test_run_backend_values_that_fit_neither_meaning_are_refused(simdoctor, value) -> None:
    """run's old --backend was local|slurm; CARLA's process|docker is not run's to take (its evaluator starts its
    own CARLA), and anything else fits neither."""
    one_line(simdoctor("run", "--dry-run", "--backend", value), 2, f"--backend {value}: in run, --backend was where")


def test_run_executor_refuses_an_unknown_value(simdoctor) -> None:
    one_line(simdoctor("run", "--executor", "pbs"), 2, "'pbs' is not one of 'local', 'slurm'")


def test_an_old_spelling_given_as_a_value_is_left_alone(simdoctor, tmp_path: Path) -> None:
    """Only an option is rewritten: `--out --backend` names a folder, and no note is printed for it."""
    done = simdoctor("run", "--dry-run", "--out", "--backend", "--time", "10")
    assert done.returncode == 2 and "--time: only with --executor slurm" in done.stderr
    assert "note:" not in done.stderr


@pytest.mark.parametrize("flag", ["--stall-timeout", "--timeout"])
def test_download_stall_timeout_in_either_spelling(simdoctor, tmp_path: Path, flag: str) -> None:
    done = simdoctor("download", "owner/name", "--local-dir", str(tmp_path / "d"), flag, "0")
    assert done.returncode == 2 and "--stall-timeout must be positive" in done.stderr
    note = NOTE.format(old="--timeout 0", new="--stall-timeout 0")
    assert (note in done.stderr) == (flag == "--timeout") and done.stderr.count("\n") == 1 + (flag == "--timeout")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("args", [("--only", "display,network"), ("--only", "display", "--only", "network")])
def test_check_only_is_repeatable_and_comma_separated(simdoctor, args) -> None:
    results = json.loads(simdoctor("check", "--json", *args).stdout)["results"]
    assert {r["group"] for r in results} == {"display", "network"}


def test_check_skip_takes_the_same_lists(simdoctor) -> None:
    done = simdoctor("check", "--json", "--only", "display,network,gpu", "--skip", "gpu", "--skip", "network")
    assert {r["group"] for r in json.loads(done.stdout)["results"]} == {"display"}


@pytest.mark.parametrize("args", [("--only", "carla,maps"), ("--only", "carla", "--only", "maps")])
def test_setup_only_is_repeatable_and_comma_separated(simdoctor, args) -> None:
    """As root (CI is), the plan hands the selection to the normal user's setup: both steps, in order."""
    assert os.geteuid() == 0, "CI runs as root"
    done = simdoctor("setup", "--dry-run", "--user", "sd-nobody-here", *args)
    assert done.returncode == 0, done.stderr
    assert "simdoctor setup --dry-run --only=carla,maps" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("check", "--only", "display,nope"), "--only: unknown check or group 'nope'; the groups are agent, carla,"),
        (("check", "--skip", "gpu", "--skip", "nope"), "vulkan, weights; `simdoctor check --list` shows the check ids"),
        (("setup", "--dry-run", "--only", "carla,gpu"), "--only: unknown step 'gpu'; the steps are packages, user,"),
    ],
)
def test_an_unknown_list_value_is_one_line_naming_the_valid_ones(simdoctor, args, says) -> None:
    one_line(simdoctor(*args), 2, says)


def test_run_list_options_are_repeatable_too(simdoctor, tmp_path: Path) -> None:
    """--gpus, --route-ids and --seeds join their repeats (once the last one silently won): the joined list is
    what each refuses here."""
    source = builders.routes_xml(tmp_path / "routes.xml", ROUTES)
    base = ("run", "--dry-run", "--routes", str(source), "--out", str(tmp_path / "out"))
    one_line(simdoctor(*base, "--gpus", "0", "--gpus", "0"), 2, "--gpus '0,0': give distinct GPU indexes")
    one_line(simdoctor(*base, "--seeds", "1", "--seeds", "x"), 2, "not '1,x'")
    ids = simdoctor(*base, "--gpus", "none", "--json", "--agent-python", sys.executable, "--route-ids", "0",
                    "--route-ids", "2")  # fmt: skip
    assert ids.returncode == 0, ids.stderr
    assert [launch["route_id"] for launch in json.loads(ids.stdout)["launches"]] == ["0", "2"]


def test_the_shell_completing_after_an_old_spelling_gets_no_note_or_refusal(home) -> None:
    """Completion runs the same parser (resilient): a note or refusal there would be printed into the shell."""
    script = Path(sys.executable).with_name("simdoctor")  # the console script, as the shell's completion calls it
    words = {"COMP_WORDS": "simdoctor run --backend process --executor ", "COMP_CWORD": "5"}
    env = {**os.environ, "_SIMDOCTOR_COMPLETE": "complete_bash", **words}
    done = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["local", "slurm"], "")
