"""The base model by hub name, offline: a real `simdoctor download` (the verified engine, against the Hub stand-in)
put into huggingface_hub's cache layout by links, then resolved by the real huggingface_hub with local files
only: the dev venv's and the agent interpreter's pinned 0.27.0, with HF_HUB_OFFLINE=1 as `run` sets it."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from standins.hf_hub import Hub, Pattern

from simdoctor.download import hfcache, manifest
from tests.conftest import AGENT_VENV

REPO = "OpenGVLab/InternVL2-1B"
FILES = {"config.json": b'{"architectures": ["InternVLChatModel"]}\n', "conversation.py": b"# conversation\n",
         "model.safetensors": Pattern(3 << 20, seed=7), "sub/tokenizer_config.json": b"{}\n"}  # fmt: skip


def fetched(simdoctor, hub: Hub, local_dir: Path) -> str:
    """The repo downloaded and verified by `simdoctor download`; its commit."""
    repo = hub.add_repo(REPO, FILES)
    done = simdoctor("download", REPO, "--local-dir", str(local_dir), "--chunk-mib", "1",
                     env={"HF_ENDPOINT": hub.endpoint})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return repo.commit


def test_hub_cache_is_where_huggingface_hub_looks() -> None:
    assert hfcache.hub_cache({"HF_HUB_CACHE": "/c", "HF_HOME": "/h"}) == Path("/c")
    assert hfcache.hub_cache({"HF_HOME": "/h"}) == Path("/h/hub")
    assert hfcache.hub_cache({"XDG_CACHE_HOME": "/x"}) == Path("/x/huggingface/hub")
    assert hfcache.hub_cache({}) == Path(os.path.expanduser("~/.cache/huggingface/hub"))


def test_linked_download_resolves_offline_by_name_with_no_second_copy(simdoctor, hub: Hub, tmp_path: Path) -> None:
    local, cache = tmp_path / "pretrained" / "InternVL2-1B", tmp_path / "hf" / "hub"
    commit = fetched(simdoctor, hub, local)
    snapshot = hfcache.link(local, cache, "main")
    folder = cache / "models--OpenGVLab--InternVL2-1B"
    assert snapshot == folder / "snapshots" / commit and (folder / "refs" / "main").read_text() == commit
    record = manifest.read(local)
    for rel in FILES:
        blob = folder / "blobs" / (record.files[rel].sha256 or record.files[rel].git_sha1)
        assert blob.stat().st_ino == (local / rel).stat().st_ino  # a hard link: the bytes exist once
        assert os.readlink(snapshot / rel) == os.path.relpath(blob, (snapshot / rel).parent)
    plain = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    assert len(plain) == len(FILES) + 1 and plain[-1] == "refs/main"  # the blobs (links) and the ref
    before = {p: os.lstat(p).st_ino for p in folder.rglob("*")}
    assert hfcache.link(local, cache, "main") == snapshot  # a rerun changes nothing
    assert {p: os.lstat(p).st_ino for p in folder.rglob("*")} == before
    # the real huggingface_hub, local files only, finds every file by the repo's name
    from huggingface_hub import hf_hub_download, snapshot_download

    assert snapshot_download(REPO, cache_dir=cache, local_files_only=True) == str(snapshot)
    path = hf_hub_download(REPO, "model.safetensors", cache_dir=cache, local_files_only=True)
    assert Path(path).read_bytes() == (local / "model.safetensors").read_bytes()
    found = hfcache.inspect(cache, REPO, "main", list(FILES), local)
    assert (found.commit, found.missing, found.downloaded_commit) == (commit, [], commit)


def test_the_agent_interpreter_resolves_it_offline(simdoctor, hub: Hub, tmp_path: Path) -> None:
    """huggingface_hub 0.27.0 (SimLingo's pin) in the agent's interpreter, HF_HUB_OFFLINE=1 and HF_HOME as the
    agent would have them: the name resolves to the linked snapshot."""
    local = tmp_path / "pretrained"
    commit = fetched(simdoctor, hub, local)
    hfcache.link(local, tmp_path / "hf" / "hub", "main")
    code = f"from huggingface_hub import snapshot_download; print(snapshot_download({REPO!r}))"
    env = {"PATH": os.environ["PATH"], "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(AGENT_VENV / "bin" / "python"), "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"models--OpenGVLab--InternVL2-1B/snapshots/{commit}")


def test_across_filesystems_blobs_are_symlinks(simdoctor, hub: Hub, tmp_path: Path) -> None:
    if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on the same filesystem here")
    local = tmp_path / "pretrained"
    fetched(simdoctor, hub, local)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        snapshot = hfcache.link(local, Path(other), "main")
        blob = (snapshot / "config.json").resolve()
        assert (
            blob == (local / "config.json").resolve()
            and (snapshot / "config.json").read_bytes() == FILES["config.json"]
        )


def test_a_file_changed_since_it_was_verified_is_refused(simdoctor, hub: Hub, tmp_path: Path) -> None:
    local = tmp_path / "pretrained"
    fetched(simdoctor, hub, local)
    (local / "config.json").write_text('{"tampered": true}')
    with pytest.raises(hfcache.CacheError, match="changed since it was verified"):
        hfcache.link(local, tmp_path / "cache", "main")
    with pytest.raises(hfcache.CacheError, match="no verified download"):
        hfcache.link(tmp_path / "empty", tmp_path / "cache", "main")


def test_inspect_without_a_cache_says_nothing_resolves(tmp_path: Path) -> None:
    found = hfcache.inspect(tmp_path / "none", REPO, "main", ["config.json"], tmp_path / "none")
    assert (found.commit, found.missing, found.downloaded_commit) == (None, ["config.json"], None)
    assert json.dumps(found.__dict__)  # plain data for --dump-facts
