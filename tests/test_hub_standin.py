"""The Hub stand-in is faithful: the real huggingface_hub client downloads from it, byte for byte.

The client runs in its own process (it reads HF_ENDPOINT and HF_HOME when imported), pointed at
the stand-in, through the very paths simdoctor relies on: repo_info, the paginated tree API with
LFS hashes, HEAD on resolve with X-Repo-Commit / X-Linked-Etag / X-Linked-Size and the 302 to the
CDN, and GET of the bodies.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from standins.hf_hub import Hub, Pattern
from test_download import TOKEN, content, repo_files

CLIENT = r"""
import json, sys
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download

repo, lfs_file, local_dir, cache_dir = sys.argv[1:5]
api = HfApi()
info = api.repo_info(repo)
tree = [
    {"path": f.path, "size": f.size, "oid": f.blob_id, "sha256": f.lfs.sha256 if f.lfs else None}
    for f in api.list_repo_tree(repo, recursive=True, revision=info.sha)
    if hasattr(f, "blob_id")
]
meta = get_hf_file_metadata(hf_hub_url(repo, lfs_file, revision=info.sha))
snapshot_download(repo, local_dir=local_dir)
cached = hf_hub_download(repo, lfs_file, cache_dir=cache_dir)
print(json.dumps({
    "sha": info.sha, "tree": tree, "cached": cached,
    "meta": {"commit": meta.commit_hash, "etag": meta.etag, "size": meta.size, "location": meta.location},
}))
"""


def test_the_real_huggingface_hub_downloads_from_the_stand_in(hub: Hub, tmp_path: Path, home: Path) -> None:
    hub.page_size = 2  # the tree comes in pages, followed through the Link header
    files = repo_files()
    files["big.bin"] = Pattern(3 << 20, seed=9)
    repo = hub.add_repo("org/model", files)
    lfs_file = "simlingo/checkpoints/epoch=013.ckpt/pytorch_model.pt"
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    args = [sys.executable, "-c", CLIENT, "org/model", lfs_file, str(tmp_path / "snap"), str(tmp_path / "cache")]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert out["sha"] == repo.commit
    listed = {f["path"]: f for f in out["tree"]}
    assert set(listed) == set(files)
    for path, blob in files.items():
        data = content(blob)
        entry = repo.files[path]
        assert listed[path]["size"] == len(data)
        if entry.lfs:
            assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest()
        else:
            assert listed[path]["oid"] == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert (tmp_path / "snap" / path).read_bytes() == data, path
    assert Path(out["cached"]).read_bytes() == content(files[lfs_file])
    assert out["meta"]["commit"] == repo.commit
    assert out["meta"]["etag"] == hashlib.sha256(content(files[lfs_file])).hexdigest()
    assert out["meta"]["size"] == files[lfs_file].size
    assert out["meta"]["location"].startswith(hub.cdn_url)
    assert len([r for r in hub.requests("hub") if "/tree/" in r.path]) >= len(files) // 2  # paginated
    # the real client, too, keeps the token off the CDN
    assert not any("authorization" in r.headers for r in hub.requests("cdn"))
    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests("hub"))
