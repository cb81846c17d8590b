"""`simdoctor download` end to end: the real command against the Hub stand-in on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from standins.hf_hub import Data, Hub, Pattern

from simdoctor.download import manifest

TOKEN = "hf_standin_secret_token_0123456789"


def repo_files() -> dict[str, object]:
    return {
        "simlingo/checkpoints/epoch=013.ckpt/pytorch_model.pt": Pattern(6 << 20, seed=1),  # LFS, 6 chunks of 1 MiB
        "simlingo/.hydra/config.yaml": b"model:\n  variant: OpenGVLab/InternVL2-1B\n",
        "tokenizer.json": Pattern(1500, seed=2),  # just over the LFS threshold
        "README.md": b"# a model\n",
        "sub/dir/notes.txt": b"x" * 700,
        "empty.txt": b"",
    }


def content(blob: object) -> bytes:
    return blob if isinstance(blob, bytes) else blob.read(0, blob.size)


def body_requests(hub: Hub) -> list:
    """Requests that can carry a file body (resolve on the hub, anything on the CDN)."""
    return [r for r in hub.log if r.server == "cdn" or "/resolve/" in r.path]


def download(simdoctor, hub: Hub, local_dir: Path, *extra: str, env: dict | None = None, repo: str = "org/model"):
    args = ["download", repo, "--local-dir", str(local_dir), "--chunk-mib", "1", "--connections", "4", *extra]
    return simdoctor(*args, env={"HF_ENDPOINT": hub.endpoint, **(env or {})})


def assert_complete(local_dir: Path, files: dict[str, object]) -> None:
    """Every file under its final name is byte-identical, and no unfinished download is left."""
    for rel, blob in files.items():
        assert (local_dir / rel).read_bytes() == content(blob), rel
    partial = local_dir / manifest.STATE_DIR / manifest.PARTIAL_DIR
    assert not partial.exists() or not [p for p in partial.rglob("*") if p.is_file()]


def test_download_pins_the_commit_and_verifies_every_file(simdoctor, hub: Hub, tmp_path: Path) -> None:
    files = repo_files()
    repo = hub.add_repo("org/model", files)
    out = tmp_path / "out"
    result = download(simdoctor, hub, out, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["commit"] == repo.commit
    assert {f["path"]: f["status"] for f in report["files"]} == dict.fromkeys(files, "downloaded")
    assert (
        report["summary"]["bytes_fetched"]
        == report["summary"]["bytes_hashed"]
        == sum(len(content(b)) for b in files.values())
    )
    assert_complete(out, files)
    # every body request is pinned to the resolved commit, never to the branch name
    assert all(f"/resolve/{repo.commit}/" in r.path for r in hub.requests("hub", "/resolve/"))
    record = manifest.read(out)
    assert record.source == f"hf:model/org/model@{repo.commit}"
    checkpoint = "simlingo/checkpoints/epoch=013.ckpt/pytorch_model.pt"
    assert record.files[checkpoint].sha256 == hashlib.sha256(content(files[checkpoint])).hexdigest()
    small = record.files["README.md"]
    assert small.git_sha1 == hashlib.sha1(b"blob 10\0# a model\n").hexdigest()
    assert all(manifest.still_verified(out / rel, record.files[rel]) for rel in files)


def test_rerun_on_a_complete_dir_transfers_no_body_and_hashes_nothing(simdoctor, hub: Hub, tmp_path: Path) -> None:
    files = repo_files()
    hub.add_repo("org/model", files)
    out = tmp_path / "out"
    assert download(simdoctor, hub, out).returncode == 0
    before = len(body_requests(hub))
    result = download(simdoctor, hub, out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["unchanged"] == len(files)
    assert summary["bytes_fetched"] == 0 and summary["bytes_hashed"] == 0
    assert len(body_requests(hub)) == before  # only the metadata API calls


def test_verify_only_rehashes_everything_and_names_a_corrupt_file(simdoctor, hub: Hub, tmp_path: Path) -> None:
    files = repo_files()
    hub.add_repo("org/model", files)
    out = tmp_path / "out"
    assert download(simdoctor, hub, out).returncode == 0
    ok = download(simdoctor, hub, out, "--verify-only", "--json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["summary"]["bytes_hashed"] == sum(len(content(b)) for b in files.values())
    # same size, same mtime, one byte different: only re-hashing can tell
    victim = out / "simlingo/checkpoints/epoch=013.ckpt/pytorch_model.pt"
    st = victim.stat()
    with open(victim, "r+b") as handle:
        handle.seek(12345)
        byte = handle.read(1)
        handle.seek(12345)
        handle.write(bytes([byte[0] ^ 1]))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = len(body_requests(hub))
    bad = download(simdoctor, hub, out, "--verify-only")
    assert bad.returncode == 1
    assert "mismatch: simlingo/checkpoints/epoch=013.ckpt/pytorch_model.pt" in bad.stdout
    assert len(body_requests(hub)) == before  # verification downloads nothing


def test_verify_only_where_nothing_was_downloaded_says_so_offline(simdoctor, hub: Hub, tmp_path: Path) -> None:
    """A folder simdoctor never downloaded this repo (or URL) into has nothing to verify: one line with the command
    that downloads it, exit 1 as for a failed verification, and no request to the Hub or the CDN."""
    hub.add_repo("org/model", repo_files())
    hub.add_repo("org/other", {"README.md": b"# another\n"})
    url = hub.add_url("/files/archive.bin", b"bytes")
    never, other = tmp_path / "never", tmp_path / "other"
    assert download(simdoctor, hub, other, repo="org/other").returncode == 0
    before = len(hub.log)
    for folder in (never, other):
        done = download(simdoctor, hub, folder, "--verify-only")
        assert done.returncode == 1 and done.stdout == "", done.stdout + done.stderr
        assert done.stderr == (
            f"simdoctor: nothing to verify: simdoctor downloaded no org/model into {folder} (.simdoctor/manifest.json "
            f"records none); download it first: simdoctor download org/model --local-dir {folder}\n"
        )
    done = simdoctor("download", url, "--local-dir", str(never), "--verify-only", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["error"].endswith(
        f"download it first: simdoctor download {url} --local-dir {never}"
    )
    assert len(hub.log) == before  # offline
    assert not never.exists()  # not even the lock was made


def test_include_and_exclude_match_like_huggingface_hub(simdoctor, hub: Hub, tmp_path: Path) -> None:
    hub.add_repo("org/model", repo_files())
    out = tmp_path / "out"
    # `dir/` means the folder, `*` crosses `/` (fnmatch on the whole path), exclude wins over include
    result = download(simdoctor, hub, out, "--include", "simlingo/", "--include", "*.md", "--exclude", "*.pt", "--json")
    assert result.returncode == 0, result.stderr
    assert {f["path"] for f in json.loads(result.stdout)["files"]} == {"simlingo/.hydra/config.yaml", "README.md"}
    none = download(simdoctor, hub, tmp_path / "none", "--include", "nothing/*")
    assert none.returncode == 1 and "matches --include/--exclude" in none.stderr


def test_the_token_goes_only_to_the_endpoint_and_is_never_written(simdoctor, hub: Hub, tmp_path: Path) -> None:
    hub.add_repo("org/model", repo_files())
    out = tmp_path / "out"
    result = download(simdoctor, hub, out, "--json", env={"HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    hub_calls = [r for r in hub.requests("hub") if "agent-harnesses" not in r.path]
    assert hub_calls and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub_calls)
    cdn_calls = hub.requests("cdn")
    assert cdn_calls and not any("authorization" in r.headers for r in cdn_calls)
    assert TOKEN not in result.stdout + result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_progress_is_drawn_on_a_terminal_and_only_the_result_otherwise(
    simdoctor, hub: Hub, tmp_path: Path, home: Path
) -> None:
    hub.rate = 4 << 20  # slow enough for the progress bar to be drawn at least once
    hub.add_repo("org/model", repo_files())
    plain = download(simdoctor, hub, tmp_path / "plain")
    assert plain.returncode == 0
    assert plain.stdout.count("\n") == 1 and plain.stdout.startswith("org/model@")
    assert plain.stderr == ""

    for no_color in (False, True):
        local = tmp_path / ("tty-no-color" if no_color else "tty")
        text = download_on_a_terminal(hub, local, {"NO_COLOR": "1"} if no_color else {})
        assert "files," in text and "active" in text and "B/s" in text  # counts, speed
        assert "org/model@" in text
        styled = re.search(r"\x1b\[[0-9;]*m", text)  # an SGR sequence: colour, bold, dim
        assert (styled is None) is no_color  # NO_COLOR: the bar is drawn without a style; without it, styled


def download_on_a_terminal(hub: Hub, local_dir: Path, env: dict[str, str]) -> str:
    """What a pseudo-terminal shows of a download into local_dir (stdout and stderr are the terminal)."""
    leader, follower = pty.openpty()
    args = ["download", "org/model", "--local-dir", str(local_dir), "--chunk-mib", "1", "--connections", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "simdoctor", *args],
        env={**os.environ, "HF_ENDPOINT": hub.endpoint, "COLUMNS": "120", "TERM": "xterm-256color", **env},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    assert proc.returncode == 0
    return seen.decode("utf-8", "replace")


@pytest.mark.parametrize(
    "args",
    [
        ["not a repo"],
        ["org/model", "--connections", "0"],
        ["https://example.invalid/x.tar.gz", "--include", "*"],
        ["org/model", "--repo-type", "space"],
    ],
)
def test_usage_errors_exit_2_with_one_line(simdoctor, tmp_path: Path, args: list[str]) -> None:
    result = simdoctor("download", *args, "--local-dir", str(tmp_path / "x"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_an_unknown_repo_is_one_clear_line(simdoctor, hub: Hub, tmp_path: Path) -> None:
    result = download(simdoctor, hub, tmp_path / "x", repo="org/missing")
    assert result.returncode == 1
    message = "simdoctor: repo not found on the endpoint (or private: set HF_TOKEN, or `hf auth login`)"
    assert result.stderr.strip() == message
    assert not (tmp_path / "x").exists()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_plain_url_archive_is_stream_checked_and_its_sha256_recorded(simdoctor, hub: Hub, tmp_path: Path) -> None:
    data = tar_gz({"VERSION": b"0.9.15\n", "big.bin": os.urandom(3 << 20)})
    url = hub.add_url("/Linux/CARLA_0.9.15.tar.gz", data)
    out = tmp_path / "downloads"
    args = ["download", url, "--local-dir", str(out), "--chunk-mib", "1"]
    result = simdoctor(*args)
    assert result.returncode == 0, result.stderr
    assert (out / "CARLA_0.9.15.tar.gz").read_bytes() == data
    record = manifest.read(out)
    assert record.source == url
    assert record.files["CARLA_0.9.15.tar.gz"].sha256 == hashlib.sha256(data).hexdigest()
    before = len(hub.requests("cdn", "CARLA"))
    again = simdoctor(*args, "--json")
    assert json.loads(again.stdout)["summary"]["unchanged"] == 1
    assert [r.method for r in hub.requests("cdn", "CARLA")[before:]] == ["HEAD"]  # the size, nothing more

    # a cut archive (the server believes it is whole): the gzip/tar stream check refuses it
    cut = hub.add_url("/Linux/AdditionalMaps_0.9.15.tar.gz", Data(data[: len(data) // 2]))
    bad = simdoctor("download", cut, "--local-dir", str(out))
    assert bad.returncode == 1
    assert "AdditionalMaps_0.9.15.tar.gz is not a complete gzip/tar archive" in bad.stdout
    assert not (out / "AdditionalMaps_0.9.15.tar.gz").exists()
    assert not manifest.partial_path(out, "AdditionalMaps_0.9.15.tar.gz").exists()


def test_a_dataset_repo_resolves_under_datasets(simdoctor, hub: Hub, tmp_path: Path) -> None:
    files = {"data/train-00000.parquet": Pattern(2 << 20, seed=4), "README.md": b"# data\n"}
    repo = hub.add_repo("org/data", files, repo_type="dataset")
    out = tmp_path / "data"
    result = download(simdoctor, hub, out, "--repo-type", "dataset", "--json", repo="org/data")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == f"hf:dataset/org/data@{repo.commit}"
    assert_complete(out, files)
    assert all(r.path.startswith("/datasets/org/data/resolve/") for r in hub.requests("hub", "/resolve/"))
