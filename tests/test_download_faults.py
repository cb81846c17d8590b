"""Every fault the issue names, one test each, against the real `simdoctor download` process.

In each case either every file is complete and verified, or the command fails with a clear message
and nothing unverified carries its final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standins.hf_hub import Fault, Hub, Pattern
from test_download import assert_complete, content, download

from simdoctor.download import manifest

BIG = "weights/model.safetensors"  # LFS: served by the CDN
SMALL = "config.json"  # in git: served by the hub itself
MiB = 1 << 20


def files(big: int = 6 * MiB) -> dict[str, object]:
    return {BIG: Pattern(big, seed=7), SMALL: b'{"hidden_size": 896}\n', "README.md": b"# model\n"}


def requests_for(hub: Hub, rel: str) -> list:
    """GETs that carry the file's body (the CDN for LFS files, the hub for the others)."""
    entry = hub.repos[("model", "org/model")].files[rel]
    if entry.lfs:
        return [r for r in hub.requests("cdn", entry.sha256) if r.method == "GET"]
    return [r for r in hub.requests("hub", "/resolve/") if r.path.endswith(rel) and r.method == "GET"]


def nothing_unverified(local_dir: Path, content_of: dict[str, object]) -> None:
    """Whatever carries a final name is byte-identical to the remote file."""
    for rel, blob in content_of.items():
        path = local_dir / rel
        if path.exists():
            assert path.read_bytes() == content(blob), rel


def test_resets_mid_body_are_resumed(simdoctor, hub: Hub, tmp_path: Path) -> None:
    content_of = files()
    hub.add_repo("org/model", content_of)
    hub.fault(Fault("reset", BIG, times=3, after=300_000))
    result = download(simdoctor, hub, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_complete(tmp_path / "out", content_of)
    assert len(requests_for(hub, BIG)) >= 6 + 3  # six chunks, three of them cut and resumed


def test_server_errors_are_retried(simdoctor, hub: Hub, tmp_path: Path) -> None:
    content_of = files()
    hub.add_repo("org/model", content_of)
    hub.fault(Fault("status", SMALL, times=2, status=500), Fault("status", BIG, times=1, status=503))
    result = download(simdoctor, hub, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_complete(tmp_path / "out", content_of)
    assert [r.status for r in requests_for(hub, SMALL)] == [500, 500, 206]


def test_429_waits_as_long_as_retry_after_says(simdoctor, hub: Hub, tmp_path: Path) -> None:
    content_of = files()
    hub.add_repo("org/model", content_of)
    hub.fault(Fault("status", SMALL, times=1, status=429, retry_after="2"))
    result = download(simdoctor, hub, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_complete(tmp_path / "out", content_of)
    first, second = requests_for(hub, SMALL)
    assert first.status == 429 and second.status == 206
    assert second.at - first.at >= 1.9


def test_a_stalled_connection_is_dropped_and_retried(simdoctor, hub: Hub, tmp_path: Path) -> None:
    content_of = files()
    hub.add_repo("org/model", content_of)
    hub.fault(Fault("stall", BIG, times=1, after=100_000, seconds=20))
    began = time.monotonic()
    result = download(simdoctor, hub, tmp_path / "out", "--stall-timeout", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - began < 20  # did not sit out the stall
    assert_complete(tmp_path / "out", content_of)


@pytest.mark.parametrize("kind", ["truncate", "short"])
def test_truncated_bodies_are_completed(simdoctor, hub: Hub, tmp_path: Path, kind: str) -> None:
    """truncate: Content-Length promised, connection closed early; short: a valid 206 for less than asked."""
    content_of = files()
    hub.add_repo("org/model", content_of)
    hub.fault(Fault(kind, BIG, times=4, after=200_000), Fault(kind, SMALL, times=1, after=5))
    result = download(simdoctor, hub, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_complete(tmp_path / "out", content_of)


def test_same_size_corrupt_bytes_never_get_the_final_name(simdoctor, hub: Hub, tmp_path: Path) -> None:
    content_of = files()
    hub.add_repo("org/model", content_of)
    out = tmp_path / "out"
    hub.fault(Fault("corrupt", BIG, times=-1))
    result = download(simdoctor, hub, out)
    assert result.returncode == 1
    assert f"failed: {BIG}: sha256 mismatch" in result.stdout
    assert not (out / BIG).exists()
    assert not manifest.partial_path(out, BIG).exists()
    assert (out / SMALL).read_bytes() == content_of[SMALL]  # the others are complete and verified
    hub.faults.clear()
    again = download(simdoctor, hub, out)
    assert again.returncode == 0
    assert_complete(out, content_of)


def test_giving_up_keeps_the_partial_for_the_next_run(simdoctor, hub: Hub, tmp_path: Path) -> None:
    content_of = files()
    hub.add_repo("org/model", content_of)
    out = tmp_path / "out"
    hub.fault(Fault("status", BIG, times=-1, status=503))
    result = download(simdoctor, hub, out, "--retries", "1")
    assert result.returncode == 1
    assert f"failed: {BIG}: gave up after 2 failed attempts in a row: HTTP 503" in result.stdout
    assert not (out / BIG).exists()
    hub.faults.clear()
    assert download(simdoctor, hub, out).returncode == 0
    assert_complete(out, content_of)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real filesystem of 40 MiB (tmpfs), so ENOSPC is the kernel's own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_not_enough_space_is_refused_before_any_transfer(simdoctor, hub: Hub, small_disk: Path) -> None:
    hub.add_repo("org/model", files(big=48 * MiB))
    result = download(simdoctor, hub, small_disk / "out")
    assert result.returncode == 1
    assert "not enough free disk space" in result.stderr
    assert requests_for(hub, BIG) == [] and requests_for(hub, SMALL) == []


def test_a_disk_filling_up_mid_run_fails_cleanly_and_resumes(simdoctor, hub: Hub, small_disk: Path) -> None:
    content_of = {"a.bin": Pattern(14 * MiB, seed=1), "b.bin": Pattern(14 * MiB, seed=2)}
    hub.add_repo("org/model", content_of)
    hub.rate = 3 * MiB
    out = small_disk / "out"
    args = ["download", "org/model", "--local-dir", str(out), "--chunk-mib", "1", "--connections", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "simdoctor", *args],
        env={**os.environ, "HF_ENDPOINT": hub.endpoint},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while hub.total_sent() < 2 * MiB and time.monotonic() < deadline:
        time.sleep(0.05)
    # something else takes the disk while a.bin downloads: b.bin cannot get its blocks
    free = shutil.disk_usage(small_disk).free
    with open(small_disk / "filler", "wb") as filler:
        filler.write(b"\0" * (free - 2 * MiB))
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "failed: b.bin: disk full writing into" in stdout
    assert (out / "a.bin").read_bytes() == content(content_of["a.bin"])  # finished, verified
    assert not (out / "b.bin").exists()
    (small_disk / "filler").unlink()
    hub.rate = None
    again = download(simdoctor, hub, out, "--json")
    assert again.returncode == 0
    statuses = {f["path"]: f["status"] for f in json.loads(again.stdout)["files"]}
    assert statuses == {"a.bin": "unchanged", "b.bin": "downloaded"}
    assert_complete(out, content_of)


def test_sigkill_half_way_then_rerun_fetches_only_what_was_in_flight(hub: Hub, tmp_path: Path, home: Path) -> None:
    size, chunk, connections = 24 * MiB, MiB, 4
    content_of = {BIG: Pattern(size, seed=3), SMALL: b"{}\n"}
    hub.add_repo("org/model", content_of)
    hub.rate = 2 * MiB  # per connection: about 3 s for the whole file over 4 connections
    out = tmp_path / "out"
    args = ["download", "org/model", "--local-dir", str(out), "--chunk-mib", "1", "--connections", str(connections)]
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint}
    proc = subprocess.Popen([sys.executable, "-m", "simdoctor", *args], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while hub.sent.get(BIG, 0) < size // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    sent_before_kill = hub.sent.get(BIG, 0)
    assert size // 3 < sent_before_kill < size, "the kill did not land mid-download"
    assert not (out / BIG).exists()
    state = json.loads(manifest.progress_path(out, BIG).read_text())
    recorded = sum(state["written"])
    # what reached the server's socket but was not recorded: at most the chunks in flight
    assert sent_before_kill - recorded <= connections * chunk + connections * 256 * 1024

    hub.rate = None
    rerun_began = time.monotonic()
    command = [sys.executable, "-m", "simdoctor", *args, "--json"]
    again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    refetched = sum(r.sent for r in requests_for(hub, BIG) if r.at >= rerun_began)
    assert refetched == size - recorded  # exactly the bytes not recorded on disk
    assert_complete(out, content_of)


def test_two_runs_on_one_dir_cannot_corrupt_each_other(hub: Hub, tmp_path: Path, home: Path, simdoctor) -> None:
    content_of = files(big=8 * MiB)
    hub.add_repo("org/model", content_of)
    hub.rate = 2 * MiB
    out = tmp_path / "out"
    args = ["download", "org/model", "--local-dir", str(out), "--chunk-mib", "1", "--connections", "2"]
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint}
    first = subprocess.Popen([sys.executable, "-m", "simdoctor", *args], env=env, stdout=subprocess.PIPE, text=True)
    lock = out / manifest.STATE_DIR / "lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if lock.read_text().startswith("pid"):
                break
        time.sleep(0.02)
    second = simdoctor(*args, env={"HF_ENDPOINT": hub.endpoint})
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert second.returncode == 1
    assert f"is in use by another simdoctor run (pid {first.pid}, download org/model" in second.stderr
    assert_complete(out, content_of)


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/evil.txt", "a/../../escape.txt", ".simdoctor/manifest.json"])
def test_hostile_file_names_are_refused_before_touching_the_disk(
    simdoctor, hub: Hub, tmp_path: Path, name: str
) -> None:
    hub.add_repo("org/model", {"ok.txt": b"fine\n", name: b"owned\n"})
    out = tmp_path / "deep" / "out"
    result = download(simdoctor, hub, out)
    assert result.returncode == 1
    assert f"refusing remote file name(s) {name!r}" in result.stderr
    assert not (tmp_path / "deep").exists()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep" / "escape.txt").exists()
    assert requests_for(hub, "ok.txt") == []


def test_sigkill_mid_range_resumes_each_range_at_its_written_end(hub: Hub, tmp_path: Path, home: Path) -> None:
    """Ranges of 4 MiB at 512 KiB/s per connection, killed half-way through the first four: the
    rerun fetches only what arrived after the last checkpoint (at most a second per connection),
    not the 8 MiB of those ranges already written."""
    size, connections, rate = 256 * MiB, 4, 512 << 10
    content_of = {BIG: Pattern(size, seed=5), SMALL: b"{}\n"}
    hub.add_repo("org/model", content_of)
    hub.rate = rate
    out = tmp_path / "out"
    args = ["download", "org/model", "--local-dir", str(out), "--chunk-mib", "4", "--connections", str(connections)]
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint}
    proc = subprocess.Popen([sys.executable, "-m", "simdoctor", *args], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while hub.sent.get(BIG, 0) < 8 * MiB and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    sent_before_kill = hub.sent.get(BIG, 0)
    assert 8 * MiB <= sent_before_kill < 16 * MiB, "the kill did not land inside the first ranges"
    recorded = sum(json.loads(manifest.progress_path(out, BIG).read_text())["written"])
    hub.rate = None
    rerun_began = time.monotonic()
    again = subprocess.run([*[sys.executable, "-m", "simdoctor"], *args, "--json"], env=env, capture_output=True)
    assert again.returncode == 0, again.stderr
    refetched = sum(r.sent for r in requests_for(hub, BIG) if r.at >= rerun_began)
    assert refetched == size - recorded
    lost = sent_before_kill - recorded  # sent by the server, fetched again
    assert lost <= connections * (rate + 256 * 1024) + MiB
    assert_complete(out, content_of)


def test_a_rerun_after_disk_full_counts_the_partial_already_on_disk(simdoctor, hub: Hub, small_disk: Path) -> None:
    """The disk fills before the first range is recorded; once space is freed the rerun must not ask
    for the file's whole size again on top of the blocks its partial already holds."""
    size = 30 * MiB
    content_of = {"a.bin": Pattern(size, seed=1)}
    hub.add_repo("org/model", content_of)
    hub.rate = 256 << 10
    out = small_disk / "out"
    args = ["download", "org/model", "--local-dir", str(out), "--chunk-mib", "1", "--connections", "1"]
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint}
    proc = subprocess.Popen([sys.executable, "-m", "simdoctor", *args], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while hub.total_sent() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):  # every last block: the progress record cannot be written
        while os.write(filler, b"\0" * (64 << 10)):
            pass
    os.close(filler)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "failed: a.bin: disk full writing into" in stdout
    assert manifest.partial_path(out, "a.bin").stat().st_blocks * 512 >= size  # preallocated, nothing recorded
    (small_disk / "filler").unlink()
    hub.rate = None
    again = download(simdoctor, hub, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_complete(out, content_of)


def test_a_host_that_does_not_resolve_fails_fast_naming_it(simdoctor, hub: Hub, tmp_path: Path) -> None:
    """Before, each lookup failure was retried 8 times with backoff (over a minute), silently.
    `.invalid` never resolves (RFC 6761); no proxy may resolve it for us."""
    hub.add_repo("org/model", files())
    began = time.monotonic()
    direct = {"NO_PROXY": "*", "no_proxy": "*"}
    api = download(simdoctor, hub, tmp_path / "a", env={"HF_ENDPOINT": "http://hub.nonexistent.invalid", **direct})
    assert api.returncode == 1
    assert api.stderr.startswith("simdoctor: cannot resolve the host hub.nonexistent.invalid (")
    assert api.stderr.rstrip().endswith("): check the network's DNS, or the URL")
    hub.cdn_url = hub.cdn_url.replace("127.0.0.1", "cdn.nonexistent.invalid")  # LFS files redirect there
    cdn = download(simdoctor, hub, tmp_path / "b", "--json", env=direct)
    assert cdn.returncode == 1
    failed = {f["path"]: f["error"] for f in json.loads(cdn.stdout)["files"] if f["status"] == "failed"}
    assert failed[BIG].startswith("cannot resolve the host cdn.nonexistent.invalid (")
    assert time.monotonic() - began < 45


def test_each_retry_is_shown_with_its_reason_while_it_waits(simdoctor, hub: Hub, tmp_path: Path) -> None:
    hub.add_repo("org/model", files())
    hub.fault(Fault("status", SMALL, times=2, status=503, retry_after="1"), Fault("status", "api", status=502))
    result = download(simdoctor, hub, tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert f"simdoctor: {hub.endpoint}: HTTP 502; retry 1 of 8 in " in result.stderr
    assert [line for line in lines if line.startswith(f"simdoctor: {SMALL}: ")] == [
        f"simdoctor: {SMALL}: HTTP 503; retry 1 of 8 in 1.0s",
        f"simdoctor: {SMALL}: HTTP 503; retry 2 of 8 in 1.0s",
    ]
    assert json.loads(result.stdout)["summary"]["downloaded"] == 3


def test_a_password_in_hf_endpoint_is_never_shown(simdoctor, hub: Hub, tmp_path: Path) -> None:
    hub.add_repo("org/model", files())
    secret = "S3cretPassw0rd"
    shown = hub.endpoint.replace("http://", "http://***@")
    endpoint = {"HF_ENDPOINT": hub.endpoint.replace("http://", f"http://user:{secret}@")}
    hub.fault(Fault("status", "api", times=-1, status=503, retry_after="0"))
    outputs = []
    for extra in ((), ("--json",)):
        result = download(simdoctor, hub, tmp_path / "out", "--retries", "1", *extra, env=endpoint)
        assert result.returncode == 1
        assert f"{shown}: gave up after 2 failed attempts in a row: HTTP 503" in (result.stdout + result.stderr)
        outputs.append(result.stdout + result.stderr)
    refused = {"HF_ENDPOINT": f"http://user:{secret}@127.0.0.1:9"}
    for extra in ((), ("--json",)):
        result = download(simdoctor, hub, tmp_path / "out", "--retries", "0", *extra, env=refused)
        assert "http://***@127.0.0.1:9: gave up after 1 failed attempts in a row: Connection refused" in (
            result.stdout + result.stderr
        )
        outputs.append(result.stdout + result.stderr)
    for extra in ((), ("--json",), ("-v",)):
        outputs.append(simdoctor("check", "--only", "network", *extra, env=refused).stdout)
        assert "http://***@127.0.0.1:9 is unreachable" in outputs[-1]
    assert not any(secret in text for text in outputs)


@pytest.mark.parametrize(
    "name, why",
    [
        ("a" * 256 + ".bin", "with a part longer than 255 bytes, the longest file name a filesystem takes"),
        ("notes\x1b]0;owned\x07.txt", "holding control characters (terminal escapes) or invalid Unicode"),
        ("\x1b[2J\x1b[Hclear.txt", "holding control characters (terminal escapes) or invalid Unicode"),
        ("spoof\u202etxt.exe", "holding control characters (terminal escapes) or invalid Unicode"),
    ],
)
def test_names_no_filesystem_or_terminal_can_take_are_refused(
    simdoctor, hub: Hub, tmp_path: Path, name: str, why: str
) -> None:
    hub.add_repo("org/model", {"ok.txt": b"fine\n", name: b"x\n"})
    out = tmp_path / "out"
    for extra in ((), ("--json",)):
        result = download(simdoctor, hub, out, *extra)
        assert result.returncode == 1
        line = f"refusing remote file name(s) {name!r}: {why}"
        if extra:
            assert json.loads(result.stdout)["error"] == line
        else:
            assert result.stderr == f"simdoctor: {line}\n"
        assert "\x1b" not in result.stdout + result.stderr and "\u202e" not in result.stdout + result.stderr
        assert not out.exists()
    url = hub.add_url("/files/%1B%5D0%3Bowned%07.bin", b"x")
    plain = simdoctor("download", url, "--local-dir", str(out))
    assert plain.returncode == 1 and "refusing remote file name(s) '\\x1b]0;owned\\x07.bin'" in plain.stderr
    assert not out.exists()
