"""A Hugging Face repo as a list of files pinned to one commit, each with its size and hash.

huggingface_hub's own API does the talking (so mirrors and the Hub's pagination behave as they do for
the library): `repo_info` turns the revision into a commit, `list_repo_tree(recursive=True)` at that
commit gives every file with its size, its git blob id and, for LFS files, its sha256. Patterns are
matched by huggingface_hub's `filter_repo_objects`, so `--include/--exclude` mean what they mean there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from simdoctor.config.settings import Secret, redact_url
from simdoctor.download import DownloadError
from simdoctor.download.transport import Policy, Unresolvable, resolution_failure, retrying

REPO_TYPES = ("model", "dataset")
COMMIT = re.compile(r"[0-9a-f]{40}")


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
    endpoint: str,
    repo_id: str,
    repo_type: str,
    revision: str,
    token: Optional[Secret],
    policy: Policy,
) -> Snapshot:
    """Resolve `revision` to a commit and list the files at that commit (two API calls, plus pages).

    Messages name the endpoint without any user:password it carries (HF_ENDPOINT=http://user:pw@host)."""
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
    shown = redact_url(endpoint)

    def classify(exc: Exception) -> tuple[bool, Optional[float], str]:
        return _classify(exc, endpoint, shown)

    info = retrying(lambda: api.repo_info(repo_id, repo_type=repo_type, revision=revision), policy, classify, shown)
    commit = getattr(info, "sha", None)
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        raise DownloadError(f"{shown} did not resolve {repo_id}@{revision} to a commit")
    entries = retrying(
        lambda: list(api.list_repo_tree(repo_id, recursive=True, revision=commit, repo_type=repo_type)),
        policy,
        classify,
        shown,
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


def _classify(exc: Exception, endpoint: str, shown: str) -> tuple[bool, Optional[float], str]:
    """Metadata calls are retried like file bodies (connection errors, 5xx, 429); the rest is one clear line."""
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
            return True, after, f"HTTP {status}"  # retrying() names the endpoint
        return False, None, f"{shown} answered HTTP {status}"
    if type(exc).__module__.split(".")[0].startswith("httpx") or isinstance(exc, OSError):
        unresolved = resolution_failure(exc)
        if unresolved is not None:
            raise Unresolvable(urlsplit(endpoint).hostname or shown, unresolved) from None
        return True, None, _reason(exc)
    raise exc


def _reason(exc: BaseException) -> str:
    """The OS's words for a connection failure (`Connection refused`), else the exception's type."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__
