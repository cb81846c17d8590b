"""A Hugging Face repo as a list of files pinned to one commit, each with its size and hash.

huggingface_hub's own API does the talking (so mirrors and the Hub's pagination behave as they do for
the library): `repo_info` turns the revision into a commit, `list_repo_tree(recursive=True)` at that
commit gives every file with its size, its git blob id and, for LFS files, its sha256. Patterns are
matched by huggingface_hub's `filter_repo_objects`, so `--include/--exclude` mean what they mean there.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

from simdoctor.download import DownloadError
from simdoctor.download.transport import Policy, backoff_delay
from simdoctor.settings import Secret

REPO_TYPES = ("model", "dataset")
COMMIT = re.compile(r"[0-9a-f]{40}")
T = TypeVar("T")


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: Optional[str]  # LFS files
    git_sha1: Optional[str]  # files stored in git itself


@dataclass(frozen=True)
class Snapshot:
    repo_id: str
    repo_type: str
    revision: str
    commit: str
    files: list[RemoteFile]

    @property
    def source(self) -> str:
        return f"hf:{self.repo_type}/{self.repo_id}@{self.commit}"


def snapshot(
    endpoint: str, repo_id: str, repo_type: str, revision: str, token: Optional[Secret], policy: Policy
) -> Snapshot:
    """Resolve `revision` to a commit and list the files at that commit (two API calls, plus pages)."""
    # Read by huggingface_hub at import: without it, building the User-Agent fetches an "agent
    # harnesses" list from HF_ENDPOINT or huggingface.co, a request to a host the user did not name.
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    from simdoctor import __version__

    api = HfApi(
        endpoint=endpoint,
        token=token.reveal() if token else False,
        library_name="simdoctor",
        library_version=__version__,
    )
    info = _retrying(lambda: api.repo_info(repo_id, repo_type=repo_type, revision=revision), policy, endpoint)
    commit = getattr(info, "sha", None)
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        raise DownloadError(f"{endpoint} did not resolve {repo_id}@{revision} to a commit")
    entries = _retrying(
        lambda: list(api.list_repo_tree(repo_id, recursive=True, revision=commit, repo_type=repo_type)),
        policy,
        endpoint,
    )
    files = [
        RemoteFile(e.path, int(e.size), e.lfs.sha256 if e.lfs else None, None if e.lfs else e.blob_id)
        for e in entries
        if isinstance(e, RepoFile)
    ]
    return Snapshot(repo_id, repo_type, revision, commit, files)


def select(files: list[RemoteFile], include: list[str], exclude: list[str]) -> list[RemoteFile]:
    """huggingface_hub's own matching: fnmatch on the whole path, `*` crosses `/`, `dir/` means the folder."""
    from huggingface_hub.utils import filter_repo_objects

    matched = filter_repo_objects(
        files, allow_patterns=include or None, ignore_patterns=exclude or None, key=lambda f: f.path
    )
    return list(matched)


def file_url(endpoint: str, snap: Snapshot, path: str) -> str:
    """The resolve URL pinned to the commit, built by huggingface_hub (quoting, dataset prefix)."""
    from huggingface_hub import hf_hub_url

    return hf_hub_url(snap.repo_id, path, repo_type=snap.repo_type, revision=snap.commit, endpoint=endpoint)


def _retrying(call: Callable[[], T], policy: Policy, endpoint: str) -> T:
    """Metadata calls retried like file bodies (connection errors, 5xx, 429); the rest is one clear line."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            retry, retry_after, message = _classify(exc, endpoint)
            if not retry or attempt >= policy.retries:
                raise DownloadError(message) from None
            time.sleep(backoff_delay(policy, attempt, retry_after))
            attempt += 1


def _classify(exc: Exception, endpoint: str) -> tuple[bool, Optional[float], str]:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from simdoctor.download.transport import parse_retry_after

    if isinstance(exc, GatedRepoError):
        return False, None, "the repo is gated: accept its terms on the Hub, then set HF_TOKEN (or `hf auth login`)"
    if isinstance(exc, RepositoryNotFoundError):
        return False, None, "repo not found on the endpoint (or private: set HF_TOKEN, or `hf auth login`)"
    if isinstance(exc, RevisionNotFoundError):
        return False, None, "revision not found in the repo (a branch, tag or commit of it?)"
    if isinstance(exc, HfHubHTTPError):
        response: Any = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status is not None and (status == 429 or status >= 500):
            after = parse_retry_after(response.headers.get("Retry-After"))
            return True, after, f"{endpoint} answers HTTP {status}"
        return False, None, f"{endpoint} answered HTTP {status}"
    if type(exc).__module__.split(".")[0].startswith("httpx") or isinstance(exc, OSError):
        return True, None, f"cannot reach {endpoint}: {type(exc).__name__}"
    raise exc
