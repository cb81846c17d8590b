"""Plain-URL downloads (the CARLA archives) under a server that changes, lies or fails.

The real `simdoctor download` (and `setup --only carla`) against the CDN stand-in on loopback
(tests/standins/hf_hub.py): a file replaced between a killed run and its rerun, or during a run;
HEAD and GET that disagree on the length; a captive portal; a size probe that fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from standins.hf_hub import Fault, Hub, Pattern
from test_download import content
from test_setup import Machine, machine  # noqa: F401 (the fixture)

from simdoctor.download import manifest

MiB = 1 << 20
NAME = "weights.bin"  # not an archive: no stream check stands between a bad body and its final name
PATH = f"/files/{NAME}"


def url_download(simdoctor, url: str, out: Path, *extra: str):
    return simdoctor("download", url, "--local-dir", str(out), "--chunk-mib", "1", "--connections", "4", *extra)


def kill_mid_download(hub: Hub, url: str, out: Path, size: int) -> None:
    """Start a throttled download and SIGKILL it once some chunks are recorded on disk."""
    hub.rate = 2 * MiB
    args = ["download", url, "--local-dir", str(out), "--chunk-mib", "1", "--connections", "4"]
    proc = subprocess.Popen([sys.executable, "-m", "simdoctor", *args], stdout=subprocess.DEVNULL)
    sidecar = manifest.progress_path(out, NAME)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (sidecar.exists() and hub.sent.get(PATH, 0) > size // 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    hub.rate = None
    assert sidecar.exists() and not (out / NAME).exists(), "the kill did not land mid-download"


def test_a_file_replaced_between_runs_is_fetched_anew_not_spliced(simdoctor, hub: Hub, tmp_path: Path) -> None:
    size = 12 * MiB
    url = hub.add_url(PATH, Pattern(size, seed=1))
    out = tmp_path / "out"
    kill_mid_download(hub, url, out, size)
    new = Pattern(size, seed=2)  # same size, other bytes: a new upload
    hub.add_url(PATH, new)
    rerun_began = time.monotonic()
    result = url_download(simdoctor, url, out, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / NAME).read_bytes() == content(new)
    rerun = [r for r in hub.requests("cdn", PATH) if r.at >= rerun_began and r.method == "GET"]
    assert sum(r.sent for r in rerun) == size  # all of it again: nothing of the old version kept
    verify = url_download(simdoctor, url, out, "--verify-only")
    assert verify.returncode == 0 and "1 verified" in verify.stdout


def test_ranges_carry_if_range_and_a_change_mid_run_splices_nothing(simdoctor, hub: Hub, tmp_path: Path) -> None:
    size = 12 * MiB
    url = hub.add_url(PATH, Pattern(size, seed=1))
    out = tmp_path / "out"
    hub.rate = 2 * MiB
    args = ["download", url, "--local-dir", str(out), "--chunk-mib", "1", "--connections", "4"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "simdoctor", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while hub.sent.get(PATH, 0) < 3 * MiB and time.monotonic() < deadline:
        time.sleep(0.02)
    new = Pattern(size, seed=2)
    hub.add_url(PATH, new)  # uploaded again while the download runs
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stdout + stderr
    assert f"failed: {NAME}: the file changed on the server during the download" in stdout
    assert not (out / NAME).exists()
    assert not manifest.partial_path(out, NAME).exists() and not manifest.progress_path(out, NAME).exists()
    gets = [r for r in hub.requests("cdn", PATH) if r.method == "GET"]
    assert gets and all(r.headers.get("if-range") == '"stand-in-1"' for r in gets)  # the ETag HEAD gave
    hub.rate = None
    again = url_download(simdoctor, url, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (out / NAME).read_bytes() == content(new)


def test_head_and_get_disagreeing_on_the_length_install_nothing(simdoctor, hub: Hub, tmp_path: Path) -> None:
    """HEAD says 1000 bytes, a proxy drops Range and GET sends all 5000: a cut file must not be installed."""
    data = os.urandom(5000)
    url = hub.add_url(PATH, data)
    hub.fault(Fault("length", PATH, method="HEAD", after=1000), Fault("whole", PATH, times=-1))
    out = tmp_path / "out"
    result = url_download(simdoctor, url, out)
    assert result.returncode == 1
    assert (
        f"failed: {NAME}: the server's sizes disagree: 1000 bytes at the start, 5000 bytes now "
        "(the file changed on the server, or something in between alters it); nothing was installed"
    ) in result.stdout
    assert not (out / NAME).exists()
    hub.faults.clear()
    assert url_download(simdoctor, url, out).returncode == 0
    assert (out / NAME).read_bytes() == data


def test_a_captive_portal_page_is_refused_and_named(simdoctor, hub: Hub, tmp_path: Path) -> None:
    url = hub.add_url(PATH, os.urandom(3 * MiB))
    hub.portal = True
    out = tmp_path / "out"
    for extra in ((), ("--json",)):
        result = url_download(simdoctor, url, out, *extra)
        assert result.returncode == 1
        message = "answered with an HTML page instead of the file: a captive portal or proxy login page?"
        if extra:
            assert message in json.loads(result.stdout)["error"]
        else:
            assert result.stderr.startswith("simdoctor: 127.0.0.1 " + message) and "byte ranges" not in result.stderr
        assert not (out / NAME).exists() and not manifest.partial_path(out, NAME).exists()


def test_a_failing_size_probe_is_retried_then_one_clear_line(simdoctor, hub: Hub, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    url = hub.add_url(PATH, data)
    out = tmp_path / "out"
    hub.fault(Fault("status", PATH, method="HEAD", times=2, status=503, retry_after="0"))
    result = url_download(simdoctor, url, out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(f"simdoctor: {url}: HTTP 503; retry ") == 2  # each wait shown with its reason
    assert (out / NAME).read_bytes() == data

    hub.fault(Fault("reset", PATH, method="HEAD", times=-1))
    failed = url_download(simdoctor, url, tmp_path / "other", "--retries", "1", "--json")
    assert failed.returncode == 1, failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert error == f"{url}: gave up after 2 failed attempts in a row: connection reset"
    assert "internal error" not in failed.stderr

    refused = url_download(simdoctor, "http://127.0.0.1:9/files/x.bin", tmp_path / "x", "--retries", "0")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        "simdoctor: http://127.0.0.1:9/files/x.bin: gave up after 1 failed attempts in a row: connection refused"
    )


def test_setup_only_carla_with_a_failing_size_probe_is_one_clear_line(machine: Machine) -> None:  # noqa: F811
    """As the test user, through `setup` (tests/test_setup.py's machine): the step fails with the reason."""
    path = "/Linux/CARLA_0.9.15.tar.gz"
    machine.hub.fault(Fault("status", path, method="HEAD", times=-1, status=503, retry_after="0"))
    result = machine.run("setup", "--yes", "--only", "carla")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "internal error" not in result.stdout + result.stderr
    assert f"{machine.hub.cdn_url}{path}: gave up after 9 failed attempts in a row: HTTP 503" in (
        result.stdout + result.stderr
    )
