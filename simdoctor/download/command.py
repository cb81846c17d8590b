"""`simdoctor download`: a Hugging Face repo pinned to a commit, or a plain URL, verified into a folder.

Order matters: list the files (network only), check every name, take the directory's lock, settle
what is already there, check free space, and only then transfer. `execute` is shared with `setup`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simdoctor.config.recipe import ConfigError
from simdoctor.config.settings import Settings, redact_url
from simdoctor.download import DownloadError, archive, engine, hub, manifest
from simdoctor.download.transport import Client, Policy
from simdoctor.system import filelock

JSON_SCHEMA_VERSION = 1
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
GOOD = ("downloaded", "unchanged", "verified")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class Request:
    source: str  # a repo id, or an http(s) URL
    local_dir: Path
    revision: Optional[str] = None  # None: main, or for --verify-only the commit last downloaded
    repo_type: str = "model"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    endpoint: Optional[str] = None
    connections: int = 32
    chunk_mib: int = 16
    timeout: float = 30.0
    retries: int = 8
    verify_only: bool = False

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))


@dataclass
class Report:
    label: str  # repo@commit or the URL, for the summary line
    source: str  # what the manifest records
    local_dir: Path
    commit: Optional[str]
    verify_only: bool
    results: list[engine.FileResult] = field(default_factory=list)
    stats: engine.Stats = field(default_factory=engine.Stats)

    @property
    def exit_code(self) -> int:
        return 0 if all(r.status in GOOD for r in self.results) else 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def summary(self) -> str:
        s = self.stats
        seconds = max(s.finished - s.started, 1e-9)
        parts = ", ".join(f"{n} {status}" for status, n in self.counts().items()) or "no files"
        size = engine._size(sum(r.size for r in self.results))
        line = f"{self.label} -> {self.local_dir}: {len(self.results)} files ({size}): {parts} in {seconds:.1f}s"
        if s.fetched:
            line += f", {engine._size(s.fetched)} fetched at {s.fetched / seconds / 1e6:.1f} MB/s"
        return line

    def lines(self) -> list[str]:
        bad = [f"  {r.status}: {r.relpath}: {r.error}" for r in self.results if r.status not in GOOD]
        return [self.summary(), *bad]

    def to_json(self) -> str:
        s = self.stats
        summary = {
            **self.counts(),
            "files": len(self.results),
            "bytes_fetched": s.fetched,
            "bytes_hashed": s.hashed,
            "seconds": round(s.finished - s.started, 3),
            "hash_seconds": round(s.hash_seconds, 3),
            "verify_tail_seconds": round(max(0.0, s.finished - s.last_byte) if s.fetched else 0.0, 3),
            "exit_code": self.exit_code,
        }
        payload = {
            "schema_version": JSON_SCHEMA_VERSION,
            "source": self.source,
            "commit": self.commit,
            "local_dir": str(self.local_dir),
            "files": [{"path": r.relpath, "size": r.size, "status": r.status, "error": r.error} for r in self.results],
            "summary": summary,
        }
        return json.dumps(payload, indent=2)


def validate(req: Request) -> None:
    """Usage errors (exit 2) before any network or disk."""
    if req.is_url:
        if req.include or req.exclude or req.revision or req.repo_type != "model":
            raise ConfigError("--include, --exclude, --revision and --repo-type apply to repos, not to a URL")
    elif not REPO_ID.fullmatch(req.source):
        raise ConfigError(f"{req.source!r} is neither a repo id (owner/name) nor an http(s) URL")
    if req.repo_type not in hub.REPO_TYPES:
        raise ConfigError(f"--repo-type must be one of {', '.join(hub.REPO_TYPES)}, not {req.repo_type!r}")
    if not 1 <= req.connections <= 64:
        raise ConfigError("--connections must be between 1 and 64")
    if not 1 <= req.chunk_mib <= 1024:
        raise ConfigError("--chunk-mib must be between 1 and 1024")
    if req.timeout <= 0 or req.retries < 0:
        raise ConfigError("--stall-timeout must be positive and --retries at least 0")


def execute(settings: Settings, req: Request, observer: Optional[engine.Observer] = None) -> Report:
    """Download or verify; whole-run problems (lock held, bad names, no space, no metadata) raise DownloadError."""
    validate(req)
    policy = Policy(timeout=req.timeout, retries=req.retries)
    local_dir = req.local_dir.expanduser().resolve()
    if req.is_url:
        client = Client(policy)
        report, targets = _url_targets(req, local_dir, client)
    else:
        endpoint = (req.endpoint or settings.hf_endpoint).rstrip("/")
        client = Client(policy, endpoint, settings.hf_token)
        report, targets = _repo_targets(req, local_dir, endpoint, settings, policy)
    engine.check_names(local_dir, [t.relpath for t in targets])
    with _locked(local_dir, redact_url(req.source)):
        run = engine.Engine(local_dir, client, report.source, req.connections, req.chunk_mib << 20, observer)
        if req.verify_only:
            report.results = run.verify(targets)
        else:
            plan = run.prepare(targets)
            run.check_space(plan)
            report.results = run.run(plan)
        report.stats = run.stats
    return report


def _repo_targets(
    req: Request, local_dir: Path, endpoint: str, settings: Settings, policy: Policy
) -> tuple[Report, list[engine.Target]]:
    revision = req.revision or "main"
    if req.verify_only:  # verify what was downloaded, not what main is now
        old = manifest.read(local_dir)
        prefix = f"hf:{req.repo_type}/{req.source}@"
        if old is None or not old.source.startswith(prefix):
            raise _nothing_to_verify(req, local_dir, req.source)
        revision = req.revision or old.source[len(prefix) :]
    snap = hub.snapshot(endpoint, req.source, req.repo_type, revision, settings.hf_token, policy)
    files = hub.select(snap.files, list(req.include), list(req.exclude))
    if not files:
        raise DownloadError(f"no file of {req.source}@{snap.commit[:12]} matches --include/--exclude")
    targets = [engine.Target(f.path, hub.file_url(endpoint, snap, f.path), f.size, f.sha256, f.git_sha1) for f in files]
    label = f"{req.source}@{snap.commit[:12]}"
    return Report(label, snap.source, local_dir, snap.commit, req.verify_only), targets


def _url_targets(req: Request, local_dir: Path, client: Client) -> tuple[Report, list[engine.Target]]:
    name = archive.archive_name(req.source)
    engine.check_names(local_dir, [name])  # before its name is shown or sent anywhere
    check = archive.check_stream if name.endswith(ARCHIVE_SUFFIXES) else None
    size, validator = 0, None
    if req.verify_only:
        old = manifest.read(local_dir)
        record = old.files.get(name) if old else None
        if record is None:
            raise _nothing_to_verify(req, local_dir, name)
        size = record.size
    else:
        remote = client.remote_file(req.source, name)
        size, validator = remote.size, remote.validator
    target = engine.Target(name, req.source, size, check=check, validator=validator)
    shown = redact_url(req.source)
    return Report(shown, shown, local_dir, None, req.verify_only), [target]


def _nothing_to_verify(req: Request, local_dir: Path, what: str) -> DownloadError:
    """--verify-only where simdoctor recorded no download of `what`: said offline, with the command that downloads
    it, rather than asking the remote for files only to find every one of them missing."""
    options = [] if req.repo_type == "model" else ["--repo-type", req.repo_type]
    options += ["--revision", req.revision] if req.revision else []
    command = shlex.join(["simdoctor", "download", redact_url(req.source), "--local-dir", str(local_dir), *options])
    return DownloadError(
        f"nothing to verify: simdoctor downloaded no {what} into {local_dir} "
        f"({manifest.STATE_DIR}/{manifest.MANIFEST} records none); download it first: {command}"
    )


def run(settings: Settings, req: Request, json_out: bool) -> int:
    """The CLI command: progress on a terminal only, then the result; returns the exit code."""
    show_progress = not json_out and sys.stderr.isatty()
    try:
        if show_progress:
            from simdoctor.download.progress import RichProgress

            with RichProgress(req.source) as progress:
                report = execute(settings, req, progress)
        else:
            report = execute(settings, req)
    except DownloadError as exc:
        if json_out:
            sys.stdout.write(json.dumps({"schema_version": JSON_SCHEMA_VERSION, "error": str(exc), "exit_code": 1}))
            sys.stdout.write("\n")
        else:
            sys.stderr.write(f"simdoctor: {exc}\n")
        return 1
    sys.stdout.write((report.to_json() if json_out else "\n".join(report.lines())) + "\n")
    return report.exit_code


@contextlib.contextmanager
def _locked(local_dir: Path, source: str) -> Iterator[None]:
    """One download at a time per directory (<local_dir>/.simdoctor/lock)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(filelock.exclusive(Path(local_dir) / manifest.STATE_DIR / "lock", f"download {source}"))
        except filelock.Busy as exc:
            raise DownloadError(
                f"{local_dir} is in use by another simdoctor run ({exc.holder}); wait for it to finish, or stop it"
            ) from None
        except OSError as exc:
            raise DownloadError(f"cannot use {local_dir}: {exc.filename or local_dir}: {exc.strerror or exc}") from None
        yield
