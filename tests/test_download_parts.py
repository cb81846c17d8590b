"""The download engine's parts on their own: the in-order hasher, name checks, the retry policy."""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from simdoctor.download import DownloadError
from simdoctor.download.engine import InOrderHasher, Stats, check_names
from simdoctor.download.transport import Policy, backoff_delay, parse_retry_after


@pytest.mark.parametrize("kind", ["sha256", "git_sha1"])
def test_in_order_hasher_digests_chunks_written_out_of_order(tmp_path: Path, kind: str) -> None:
    """Eight writers, blocks of each chunk in order but chunks racing, two chunks resumed from a past
    run (one whole, one a prefix): one digest, each byte once."""
    data = os.urandom(5 * 65536 + 123)
    chunk, block = 65536, 4096
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, len(data))
    stats = Stats()
    resumed = [0, chunk, 0, 1000, 0, 0]  # as an earlier run left them
    for idx, n in enumerate(resumed):
        os.pwrite(fd, data[idx * chunk : idx * chunk + n], idx * chunk)
    hasher = InOrderHasher(kind, len(data), chunk, fd, stats, resumed)
    order = [i for i in range(-(-len(data) // chunk)) if i != 1]
    random.Random(4).shuffle(order)

    def write(idx: int) -> None:
        for start in range(idx * chunk + resumed[idx], min(len(data), (idx + 1) * chunk), block):
            piece = data[start : min(start + block, (idx + 1) * chunk, len(data))]
            os.pwrite(fd, piece, start)
            hasher.wrote(start, memoryview(piece))

    threads = [threading.Thread(target=write, args=(i,)) for i in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    digest = hasher.finish()
    os.close(fd)
    want = hashlib.sha256(data) if kind == "sha256" else hashlib.sha1(b"blob %d\0" % len(data) + data)
    assert digest == want.hexdigest()
    assert stats.hashed == len(data)


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../../x", "a//b", "./a", ".simdoctor/lock", "a\\..\\b", ""])
def test_hostile_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(DownloadError, match="refusing remote file name"):
        check_names(tmp_path, ["fine.txt", name])


def test_a_symlink_inside_the_dir_cannot_lead_outside(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    with pytest.raises(DownloadError):
        check_names(tmp_path / "out", ["link/escape.txt"])
    check_names(tmp_path / "out", ["sub/dir/ok.txt", "a..b/c.txt", ".gitattributes"])


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_exponential_jittered_capped_and_yields_to_retry_after() -> None:
    policy = Policy(backoff_base=1.0, backoff_cap=30.0, retry_after_cap=300.0)
    for attempt in range(10):
        delay = backoff_delay(policy, attempt)
        assert min(30.0, 2**attempt) / 2 <= delay <= min(30.0, 2**attempt)
    assert backoff_delay(policy, 0, retry_after=12.0) == 12.0
    assert backoff_delay(policy, 0, retry_after=9999.0) == 300.0


def test_check_imports_neither_requests_nor_huggingface_hub() -> None:
    """`check` must stay fast: the download stack is imported only by the commands that use it."""
    code = (
        "import sys, simdoctor.cli, simdoctor.doctor.diagnosis, simdoctor.doctor.checks, simdoctor.doctor.probing,"
        " simdoctor.config.shellenv;"
        "simdoctor.doctor.probing._load_all();"
        "print(sorted(m for m in ('requests', 'huggingface_hub', 'httpx2', 'urllib3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
