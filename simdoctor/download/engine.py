"""The transfer engine: many files at once, large files as parallel byte ranges, verified as written.

Each file is cut into fixed-size chunks; N worker threads (one HTTP connection each) take chunks
from one queue, so small files download side by side and a large one over all connections. Bytes go
to `manifest.partial_path()`. A checkpointer records how far each chunk is written in the file's
progress sidecar, after an fdatasync of the data, at least every CHECKPOINT_S seconds, every
CHECKPOINT_BYTES bytes and every finished chunk; a run killed at any moment (SIGKILL, power cut)
resumes every chunk at its recorded end, so it re-fetches at most what arrived since the last
checkpoint. An in-order hasher digests bytes as they arrive when they extend the hashed prefix and
catches up from the page cache otherwise, so verification needs no second pass. A file gets its
final name (os.replace after fsync) only when its size and hash match; the manifest then records
size, mtime and hash, and a later run trusts those without reading the file again. A plain URL
has no published hash: its ranges carry `If-Range` with the version the server named at the
start, so a file that changes on the server is never spliced.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol
from urllib.parse import urlsplit

from simdoctor.config.settings import redact_url
from simdoctor.download import DownloadError, manifest
from simdoctor.download.transport import (
    Client,
    Transient,
    Unresolvable,
    backoff_delay,
    captive_portal,
    describe,
    gave_up,
    refuse_html,
    retry_note,
    say,
)
from simdoctor.system import atomic, safefile

BLOCK = 256 << 10  # bytes read from a connection at a time (a reset loses at most this)
READ = 4 << 20  # bytes read back from disk at a time when hashing catches up
DEFAULT_CHUNK = 16 << 20  # the largest byte range; smaller files get smaller ranges (chunk_for)
MIN_CHUNK = 1 << 20
CHUNKS_PER_FILE = 64  # enough ranges to keep every connection busy on one file
SPACE_MARGIN = 4 << 20  # manifest, sidecars and filesystem slack on top of the data itself
MANIFEST_FLUSH_S = 1.0
CHECKPOINT_S = 1.0  # the written prefix of every chunk in flight is recorded at least this often
CHECKPOINT_BYTES = 16 << 20  # and whenever this much arrived since the last checkpoint (fast links)
NAME_MAX = 255  # bytes in one file name on Linux filesystems (ext4, xfs, btrfs, tmpfs)
PATH_MAX = 4096
# terminal-spoofing characters that are not Cc: bidi embeddings, overrides and isolates
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class Target:
    """One remote file and what it must hash to. Neither hash: a plain URL; its sha256 is recorded."""

    relpath: str
    url: str
    size: int
    sha256: Optional[str] = None
    git_sha1: Optional[str] = None
    check: Optional[Callable[[Path], None]] = None  # more verification before the final name (archives)
    validator: Optional[str] = None  # plain URLs: the version the server named (ETag or Last-Modified)

    @property
    def kind(self) -> str:
        return "git_sha1" if self.git_sha1 else "sha256"

    @property
    def expected(self) -> Optional[str]:
        return self.git_sha1 or self.sha256

    def matches(self, record: manifest.FileRecord) -> bool:
        """Whether a manifest record is of this very file (same pinned hash; same size for plain URLs)."""
        if record.size != self.size:
            return False
        if self.git_sha1:
            return record.git_sha1 == self.git_sha1
        if self.sha256:
            return record.sha256 == self.sha256
        return record.sha256 is not None

    def record(self, size: int, mtime_ns: int, digest: str) -> manifest.FileRecord:
        if self.git_sha1:
            return manifest.FileRecord(size, mtime_ns, git_sha1=digest)
        return manifest.FileRecord(size, mtime_ns, sha256=digest)


@dataclass
class FileResult:
    relpath: str
    size: int
    status: str  # downloaded, unchanged, verified, failed, missing, mismatch
    error: Optional[str] = None


@dataclass
class Stats:
    fetched: int = 0  # body bytes received
    hashed: int = 0  # bytes digested
    hash_seconds: float = 0.0  # time spent digesting (and reading back for it), all threads
    started: float = 0.0
    last_byte: float = 0.0  # when the last body byte arrived
    finished: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, fetched: int = 0, hashed: int = 0, hash_seconds: float = 0.0) -> None:
        with self._lock:
            self.fetched += fetched
            self.hashed += hashed
            self.hash_seconds += hash_seconds
            if fetched:
                self.last_byte = time.monotonic()


class Observer(Protocol):
    """Progress sink; rendering lives in simdoctor.download.progress."""

    def start(self, files: int, total: int, done: int) -> None: ...
    def file_started(self, relpath: str) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_finished(self, relpath: str) -> None: ...


class Quiet:
    def start(self, files: int, total: int, done: int) -> None:
        pass

    def file_started(self, relpath: str) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_finished(self, relpath: str) -> None:
        pass


def new_hash(kind: str, size: int) -> hashlib._Hash:
    """sha256 for LFS files and archives; git's blob sha1 (header `blob <size>\\0`) for the others."""
    if kind == "git_sha1":
        return hashlib.sha1(b"blob %d\0" % size)
    return hashlib.sha256()


def hash_file(path: Path, kind: str, size: int, stats: Stats) -> str:
    h = new_hash(kind, size)
    began, total = time.perf_counter(), 0
    with open(path, "rb") as handle:
        while block := handle.read(READ):
            h.update(block)
            total += len(block)
    stats.add(hashed=total, hash_seconds=time.perf_counter() - began)
    return h.hexdigest()


def check_names(local_dir: Path, relpaths: list[str]) -> None:
    """Refuse remote names that are absolute, climb with `..`, would land outside local_dir, hold
    control characters (ANSI/OSC escapes rewrite the terminal they are shown on) or are too long
    for the filesystem.

    Called before anything touches the disk or the terminal; a single bad name refuses the whole
    download, and the message shows names escaped (repr), never raw.
    """
    root = os.path.realpath(local_dir)
    problems: dict[str, list[str]] = {}
    for rel in relpaths:
        why = _name_problem(root, local_dir, rel)
        if why:
            problems.setdefault(why, []).append(rel)
    if problems:
        why, bad = next(iter(problems.items()))
        shown = ", ".join(repr(b) for b in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DownloadError(f"refusing remote file name(s) {shown}: {why}")


def _name_problem(root: str, local_dir: Path, rel: str) -> Optional[str]:
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in BIDI for c in rel):
        return "holding control characters (terminal escapes) or invalid Unicode"
    parts = rel.split("/")
    if (
        not rel
        or "\\" in rel
        or rel.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] == manifest.STATE_DIR
        or not os.path.realpath(os.path.join(root, rel)).startswith(root + os.sep)
    ):
        return f"absolute, containing `..`, or landing outside {local_dir}"
    if max(len(p.encode()) for p in parts) > NAME_MAX:
        return f"with a part longer than {NAME_MAX} bytes, the longest file name a filesystem takes"
    if len(str(manifest.partial_path(Path(root), rel)).encode()) >= PATH_MAX:
        return f"too long a path: {PATH_MAX} bytes or more with the download folder's"
    return None


def free_space(path: Path) -> int:
    existing = Path(path)
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


class InOrderHasher:
    """Digest a file whose chunks are written out of order, each byte once, in file order.

    Writers report what they wrote; whoever finds unhashed contiguous data at the hashed prefix
    digests it (its own buffer when it is the prefix, else read back from the page cache) while
    the others keep downloading.
    """

    def __init__(self, kind: str, size: int, chunk: int, fd: int, stats: Stats, written: list[int]) -> None:
        """`written`: bytes already on disk from each chunk's start (an earlier run's); hashed again
        once, when the prefix reaches them."""
        self._h = new_hash(kind, size)
        self._size, self._chunk, self._fd, self._stats = size, chunk, fd, stats
        self._written = list(written) or [0]  # bytes on disk from each chunk's start
        self._pos = 0
        self._busy = False
        self._error: Optional[BaseException] = None
        self._cond = threading.Condition()

    def _chunk_len(self, idx: int) -> int:
        return min(self._chunk, self._size - idx * self._chunk)

    def _frontier(self) -> int:
        """End of the written data that continues the hashed prefix without a gap."""
        if self._pos >= self._size:
            return self._size
        idx = self._pos // self._chunk
        while self._written[idx] == self._chunk_len(idx) and idx + 1 < len(self._written):
            idx += 1
        return idx * self._chunk + self._written[idx]

    def written(self) -> list[int]:
        """A snapshot of each chunk's written prefix (for the progress sidecar)."""
        with self._cond:
            return list(self._written)

    def wrote(self, offset: int, data: memoryview) -> None:
        """`data` was written at `offset`, extending its chunk's written prefix."""
        with self._cond:
            idx = offset // self._chunk
            self._written[idx] = offset + len(data) - idx * self._chunk
            if self._busy or self._frontier() <= self._pos:
                return
            self._busy = True
            inline = data if offset == self._pos else None
        self._drain(inline)

    def kick(self) -> None:
        """Hash what is already there (a resumed prefix) without waiting for the next write."""
        with self._cond:
            if self._busy or self._frontier() <= self._pos:
                return
            self._busy = True
        self._drain(None)

    def _drain(self, inline: Optional[memoryview]) -> None:
        began, hashed = time.perf_counter(), 0
        try:
            while True:
                if inline is not None:
                    piece, inline = inline, None
                else:
                    with self._cond:
                        start, end = self._pos, self._frontier()
                        if end <= start:
                            break
                    piece = os.pread(self._fd, min(end - start, READ), start)
                    if not piece:
                        raise OSError(errno.EIO, "file shorter than written")
                self._h.update(piece)
                hashed += len(piece)
                with self._cond:
                    self._pos += len(piece)
        except BaseException as exc:
            with self._cond:
                self._error = exc
            raise
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            self._stats.add(hashed=hashed, hash_seconds=time.perf_counter() - began)

    def finish(self) -> str:
        """The digest once every byte is written; waits for a catch-up in progress."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._busy = True
        self._drain(None)
        if self._pos != self._size:
            raise OSError(errno.EIO, f"hashed {self._pos} of {self._size} bytes")
        return self._h.hexdigest()


class FileJob:
    """One file in flight: its partial file, its progress sidecar, its hasher.

    `resumed[i]` is how many bytes of chunk i an earlier run left on disk (and recorded after an
    fdatasync); this run fetches each chunk from there.
    """

    def __init__(self, target: Target, local_dir: Path, chunk: int, resumed: Optional[list[int]] = None) -> None:
        self.target = target
        self.chunk = chunk
        self.final = local_dir / target.relpath
        self.partial = manifest.partial_path(local_dir, target.relpath)
        self.progress = manifest.progress_path(local_dir, target.relpath)
        self.nchunks = -(-target.size // chunk)
        self.resumed = resumed or [0] * self.nchunks
        self.complete = sum(self.resumed[i] == self.chunk_len(i) for i in range(self.nchunks))
        self.lock = threading.Lock()  # the fd and the sidecar: a checkpoint never meets a closed file
        self._count_lock = threading.Lock()
        self.fd: Optional[int] = None
        self.hasher: Optional[InOrderHasher] = None
        self.saved: Optional[list[int]] = None  # what the sidecar records now
        self.error: Optional[str] = None
        self.stale = False  # the remote changed under this download: its partial goes at the end
        self.finished = False

    @property
    def key(self) -> str:
        """What the sidecar's bytes belong to: the pinned hash, or a plain URL's version on its server."""
        t = self.target
        return f"{t.kind}:{t.expected}" if t.expected else f"url:{redact_url(t.url)} {t.validator}"

    @property
    def resumable(self) -> bool:
        """A plain URL whose server names no version cannot tell a changed file on a rerun: never resumed."""
        return self.target.expected is not None or self.target.validator is not None

    def chunk_len(self, idx: int) -> int:
        return min(self.chunk, self.target.size - idx * self.chunk)

    def span(self, idx: int) -> tuple[int, int]:
        """The byte range still to fetch of chunk idx (inclusive)."""
        start = idx * self.chunk
        return start + self.resumed[idx], start + self.chunk_len(idx) - 1

    def open(self, stats: Stats) -> bool:
        """Create or reopen the partial file (once, by the first worker to reach this file): True then."""
        fresh = not any(self.resumed)
        with self.lock:
            if self.fd is not None:
                return False
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.progress.parent.mkdir(parents=True, exist_ok=True)
            if fresh:  # starting afresh: no earlier record may vouch for the new file's bytes
                self.progress.unlink(missing_ok=True)
                self.partial.unlink(missing_ok=True)
            fd = safefile.open_fd(self.partial, os.O_RDWR)
            try:
                if fresh:
                    _preallocate(fd, self.target.size)
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
            self.saved = None if fresh else self.resumed
            self.hasher = InOrderHasher(self.target.kind, self.target.size, self.chunk, fd, stats, self.resumed)
        if not fresh:
            threading.Thread(target=self._kick, daemon=True).start()
        return True

    def _kick(self) -> None:
        with contextlib.suppress(OSError):  # finish() reports it
            self.hasher.kick()

    def checkpoint(self) -> None:
        """Record how far each chunk is written, once those bytes are on disk (fdatasync first)."""
        with self.lock:
            if self.fd is None or self.stale or not self.resumable or self.nchunks == 1:
                return  # a one-range file (under 2 MiB) is cheaper to fetch again than to record
            written = self.hasher.written()
            if written == self.saved or not any(written):
                return
            os.fdatasync(self.fd)
            state = {"size": self.target.size, "chunk": self.chunk, "expect": self.key, "written": written}
            atomic.write_json(self.progress, state, indent=None)
            self.saved = written

    def chunk_done(self) -> bool:
        """One more chunk fully written; True when it was the last one."""
        with self._count_lock:
            self.complete += 1
            return self.complete == self.nchunks

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    def discard(self) -> None:
        self.close()
        self.partial.unlink(missing_ok=True)
        self.progress.unlink(missing_ok=True)


def _preallocate(fd: int, size: int) -> None:
    """Reserve the blocks now, so a full disk shows at the start of a file rather than in its middle."""
    try:
        if size:
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        os.ftruncate(fd, size)


def chunk_for(size: int, largest: int) -> int:
    """A file's range size: from its size alone (so a resume finds the same ranges whatever the
    connection count), about CHUNKS_PER_FILE ranges per file, whole MiBs between 1 MiB and `largest`."""
    return max(MIN_CHUNK, min(largest, size // CHUNKS_PER_FILE // MIN_CHUNK * MIN_CHUNK))


def resumed_prefixes(local_dir: Path, target: Target, chunk: int) -> Optional[list[int]]:
    """How far each chunk of this very file an earlier run left on disk; None when anything disagrees."""
    job = FileJob(target, local_dir, chunk)
    if not job.resumable:
        return None
    try:
        state = json.loads(job.progress.read_text(encoding="utf-8"))
        if (state["size"], state["chunk"], state["expect"]) != (target.size, chunk, job.key):
            return None
        if job.partial.stat().st_size != target.size:
            return None
        written = [int(n) for n in state["written"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(written) != job.nchunks or not all(0 <= n <= job.chunk_len(i) for i, n in enumerate(written)):
        return None
    return written


@dataclass
class Plan:
    jobs: list[FileJob]
    results: dict[str, FileResult]  # files already settled (unchanged or verified in place)
    need: int  # bytes of disk still to be allocated

    @property
    def to_fetch(self) -> int:
        return sum(j.span(i)[1] + 1 - j.span(i)[0] for j in self.jobs for i in range(j.nchunks))


class Engine:
    def __init__(
        self,
        local_dir: Path,
        client: Client,
        source: str,
        connections: int = 32,
        chunk_size: int = DEFAULT_CHUNK,
        observer: Optional[Observer] = None,
    ) -> None:
        self.local_dir = Path(local_dir)
        self.client = client
        self.connections = connections
        self.chunk = chunk_size
        self.observer = observer or Quiet()
        self.stats = Stats()
        old = manifest.read(self.local_dir)
        self._records = dict(old.files) if old else {}
        self._source = source
        self._records_lock = threading.Lock()  # held for dict updates only, never for I/O
        self._write_lock = threading.Lock()
        self._dirty = False
        self._flushed = 0.0
        self._queue: deque[tuple[FileJob, int]] = deque()
        self._queue_lock = threading.Lock()
        self._stop = threading.Event()
        self._fatal: Optional[str] = None  # a failure that ends the whole run (a host that does not resolve)
        self._nudge = threading.Event()  # wakes the checkpointer before CHECKPOINT_S
        self._unsaved = 0  # bytes written since the last checkpoint; approximate (a trigger only)

    # -- planning --------------------------------------------------------------------------------

    def prepare(self, targets: list[Target]) -> Plan:
        """Sort files into settled and to-fetch; a file at its final name without a trusted record
        is hashed once (and removed when it does not match)."""
        self.stats.started = time.monotonic()
        jobs, results, need = [], {}, 0
        for t in targets:
            final = self.local_dir / t.relpath
            record = self._records.get(t.relpath)
            if final.is_file():
                if record and t.matches(record) and manifest.still_verified(final, record):
                    results[t.relpath] = FileResult(t.relpath, t.size, "unchanged")
                    continue
                if self._verify_in_place(t, final, record):
                    results[t.relpath] = FileResult(t.relpath, t.size, "verified")
                    continue
                final.unlink()
            chunk = chunk_for(t.size, self.chunk)
            job = FileJob(t, self.local_dir, chunk, resumed_prefixes(self.local_dir, t, chunk))
            need += max(0, t.size - _allocated(job.partial))  # a partial's blocks are reused, or freed
            jobs.append(job)
        return Plan(jobs, results, need)

    def _verify_in_place(self, t: Target, path: Path, record: Optional[manifest.FileRecord]) -> bool:
        if path.stat().st_size != t.size:
            return False
        digest = hash_file(path, t.kind, t.size, self.stats)
        if t.expected is not None and digest != t.expected:
            return False
        if t.expected is None and record is not None and record.sha256 not in (None, digest):
            return False
        if t.check is not None:
            try:
                t.check(path)
            except DownloadError:
                return False
        st = path.stat()
        self._record(t.relpath, t.record(st.st_size, st.st_mtime_ns, digest))
        return True

    def check_space(self, plan: Plan) -> None:
        free = free_space(self.local_dir)
        if plan.need and plan.need + SPACE_MARGIN > free:
            raise DownloadError(
                f"not enough free disk space in {self.local_dir}: {_size(plan.need)} still to download, "
                f"{_size(free)} free; free some space or choose another --local-dir"
            )

    # -- transfer --------------------------------------------------------------------------------

    def run(self, plan: Plan) -> list[FileResult]:
        results = dict(plan.results)
        total = sum(j.target.size for j in plan.jobs)
        self.observer.start(len(plan.jobs), total, total - plan.to_fetch)
        for job in plan.jobs:
            if job.nchunks == 0:
                self._finish_empty(job, results)
                continue
            self._queue.extend((job, i) for i in range(job.nchunks) if job.resumed[i] < job.chunk_len(i))
            if job.complete == job.nchunks:  # every chunk was on disk already: only verification left
                self._queue.append((job, -1))
        workers = [
            threading.Thread(target=self._worker, name=f"download-{n}", daemon=True)
            for n in range(max(1, min(self.connections, len(self._queue))))
        ]
        checkpointer = threading.Thread(target=self._checkpoints, args=(plan.jobs,), name="checkpoint", daemon=True)
        try:
            checkpointer.start()
            for w in workers:
                w.start()
            for w in workers:
                while w.is_alive():
                    w.join(0.2)
        finally:
            self._stop.set()
            deadline = time.monotonic() + 2.0  # an interrupted run: workers stop between blocks
            for w in workers:
                w.join(max(0.0, deadline - time.monotonic()))
            self._nudge.set()
            checkpointer.join()  # its last pass records what the workers wrote up to here
            if not any(w.is_alive() for w in workers):  # never close an fd a worker may still write to
                for job in plan.jobs:
                    if job.stale:
                        job.discard()
                    else:
                        job.close()
            self._flush(force=True)
        for job in plan.jobs:
            if job.target.relpath not in results:
                status = "downloaded" if job.finished else "failed"
                error = job.error or (None if job.finished else self._stopped())
                results[job.target.relpath] = FileResult(job.target.relpath, job.target.size, status, error)
        self.stats.finished = time.monotonic()
        return [results[r] for r in _order(plan)]

    def _checkpoints(self, jobs: list[FileJob]) -> None:
        """Every CHECKPOINT_S (sooner after CHECKPOINT_BYTES), record each open file's written prefixes;
        a last pass once the workers stopped."""
        while True:
            self._nudge.wait(CHECKPOINT_S)
            self._nudge.clear()
            last = self._stop.is_set()  # read after the clear: a stop with its nudge is never missed
            self._unsaved = 0
            for job in jobs:
                try:
                    job.checkpoint()
                except OSError as exc:
                    self._fail(job, _disk_error(exc, self.local_dir))
            if last:
                return

    def _stopped(self) -> str:
        return f"stopped: {self._fatal}" if self._fatal else "stopped"

    def _next(self) -> Optional[tuple[FileJob, int]]:
        with self._queue_lock:
            return self._queue.popleft() if self._queue else None

    def _worker(self) -> None:
        while not self._stop.is_set():
            item = self._next()
            if item is None:
                return
            job, idx = item
            if job.error:
                continue
            try:
                if job.open(self.stats):
                    self.observer.file_started(job.target.relpath)
                if idx >= 0:
                    self._fetch(job, idx)
                if idx < 0 or job.chunk_done():
                    self._finalize(job)
                else:
                    self._nudge.set()  # record the whole chunk now rather than in up to CHECKPOINT_S
            except Unresolvable as exc:  # every other file would fail the same way: stop the run
                self._fatal = self._fatal or str(exc)
                self._fail(job, str(exc))
                self._stop.set()
            except RemoteChanged as exc:
                job.stale = True
                self._fail(job, str(exc))
            except DownloadError as exc:
                self._fail(job, str(exc))
            except OSError as exc:
                self._fail(job, _disk_error(exc, self.local_dir))
            except Exception as exc:  # a bug must fail this file, not hang the run
                self._fail(job, f"internal error: {type(exc).__name__}: {exc}")

    def _fail(self, job: FileJob, reason: str) -> None:
        with job.lock:
            first = job.error is None
            job.error = job.error or reason
        if first:
            self.observer.file_finished(job.target.relpath)

    def _fetch(self, job: FileJob, idx: int) -> None:
        """One chunk from where it is written to, resumed within the process after any transient failure."""
        import requests

        pos, end = job.span(idx)
        failures = 0
        policy = self.client.policy
        t = job.target
        headers = {"If-Range": t.validator} if t.validator else {}
        while pos <= end:
            if job.error or self._stop.is_set():
                raise DownloadError(job.error or self._stopped())
            began = pos
            try:
                response, _ = self.client.request("GET", t.url, {"Range": f"bytes={pos}-{end}", **headers})
                with response:
                    unsized = _check_response(response, t, pos)
                    for block in response.iter_content(BLOCK):
                        if pos > end:  # an unsized whole body must end with the file
                            if block:
                                raise DownloadError(_sizes_disagree(t.size, "a longer body now"))
                            continue
                        if pos == 0 and t.expected is None:
                            _refuse_html_body(block, t, response)
                        view = memoryview(block)[: end + 1 - pos]
                        _pwrite_all(job.fd, view, pos)
                        job.hasher.wrote(pos, view)
                        pos += len(view)
                        failures = 0
                        self.stats.add(fetched=len(view))
                        self.observer.advance(len(view))
                        self._unsaved += len(view)
                        if self._unsaved >= CHECKPOINT_BYTES:
                            self._nudge.set()
                        if pos > end and not (unsized and end == t.size - 1):
                            break
                if pos <= end and pos == began:
                    raise Transient("empty body")
                # else a shorter range than asked (HTTP allows it): ask for the rest at once
            except (requests.exceptions.RequestException, Transient) as exc:
                if pos > began:  # it broke after sending data: the server is there, reconnect at once
                    continue
                failures += 1
                reason = str(exc) if isinstance(exc, Transient) else describe(exc)
                if failures > policy.retries:
                    raise DownloadError(gave_up(failures, reason)) from None
                delay = backoff_delay(policy, failures - 1, exc.retry_after if isinstance(exc, Transient) else None)
                say(retry_note(t.relpath, reason, delay, failures, policy))
                self._stop.wait(delay)

    def _finalize(self, job: FileJob) -> None:
        t = job.target
        digest = job.hasher.finish()
        if t.expected is not None and digest != t.expected:
            job.discard()
            raise DownloadError(
                f"{t.kind} mismatch (expected {t.expected}, got {digest}): the download was deleted; "
                "run again to fetch it anew"
            )
        os.fsync(job.fd)
        job.close()
        if t.check is not None:
            try:
                t.check(job.partial)
            except DownloadError:
                job.discard()
                raise
        self._install(job, digest)

    def _finish_empty(self, job: FileJob, results: dict[str, FileResult]) -> None:
        job.partial.parent.mkdir(parents=True, exist_ok=True)
        os.close(safefile.open_fd(job.partial, os.O_WRONLY | os.O_TRUNC))
        digest = new_hash(job.target.kind, 0).hexdigest()
        if job.target.expected not in (None, digest):
            job.discard()
            results[job.target.relpath] = FileResult(job.target.relpath, 0, "failed", "hash mismatch")
            return
        self._install(job, digest)

    def _install(self, job: FileJob, digest: str) -> None:
        job.final.parent.mkdir(parents=True, exist_ok=True)
        # The data was fsynced before: a crash can lose this rename (the file is then fetched or
        # verified again), never leave the final name on data that is not on disk.
        os.replace(job.partial, job.final)
        job.progress.unlink(missing_ok=True)
        st = job.final.stat()
        self._record(job.target.relpath, job.target.record(st.st_size, st.st_mtime_ns, digest))
        job.finished = True
        self.observer.file_finished(job.target.relpath)

    # -- verification only -----------------------------------------------------------------------

    def verify(self, targets: list[Target]) -> list[FileResult]:
        """Re-hash every file against its pinned hash (or, for plain URLs, the recorded sha256)."""
        self.stats.started = time.monotonic()
        out = []
        for t in targets:
            path = self.local_dir / t.relpath
            record = self._records.get(t.relpath)
            if not path.is_file():
                out.append(FileResult(t.relpath, t.size, "missing", "not there"))
                continue
            want = t.expected or (record.sha256 if record else None)
            size = path.stat().st_size
            if size != t.size:
                out.append(FileResult(t.relpath, t.size, "mismatch", f"size {size}, expected {t.size}"))
                continue
            digest = hash_file(path, t.kind, t.size, self.stats)
            if want is None:
                out.append(FileResult(t.relpath, t.size, "mismatch", "no recorded hash to verify against"))
            elif digest != want:
                out.append(FileResult(t.relpath, t.size, "mismatch", f"{t.kind} {digest}, expected {want}"))
            else:
                st = path.stat()
                self._record(t.relpath, t.record(st.st_size, st.st_mtime_ns, digest))
                out.append(FileResult(t.relpath, t.size, "verified"))
        self._flush(force=True)
        self.stats.finished = time.monotonic()
        return out

    # -- manifest --------------------------------------------------------------------------------

    def _record(self, relpath: str, record: manifest.FileRecord) -> None:
        with self._records_lock:
            self._records[relpath] = record
            self._dirty = True
        self._flush(force=record.size >= 4 * self.chunk)

    def _flush(self, force: bool = False) -> None:
        """Write the manifest now and then (each write rewrites it whole), and always at the end.

        A worker finishing a small file never waits for another's write: it skips its turn.
        """
        if not force and time.monotonic() - self._flushed < MANIFEST_FLUSH_S:
            return
        if not self._write_lock.acquire(blocking=force):
            return
        try:
            with self._records_lock:
                if not self._dirty:
                    return
                snapshot = manifest.Manifest(self._source, dict(self._records))
                self._dirty = False
            try:
                manifest.write(self.local_dir, snapshot)
            except BaseException:
                self._dirty = True
                raise
            self._flushed = time.monotonic()
        finally:
            self._write_lock.release()


def _order(plan: Plan) -> list[str]:
    return list(dict.fromkeys([*plan.results, *(j.target.relpath for j in plan.jobs)]))


class RemoteChanged(DownloadError):
    """The plain URL's file is another version than at the start of the download: no splicing."""

    def __init__(self) -> None:
        super().__init__(
            "the file changed on the server during the download (another ETag/Last-Modified); "
            "the partial download was deleted: run again to fetch the new version"
        )


def _check_response(response: Any, t: Target, pos: int) -> bool:
    """Check that the answer is the bytes asked for, of the same file; True for a whole body of
    unknown length (a 200 without Content-Length), which must then end where the file does.

    A 206 must start where asked and tell the size known at the start; a 200 (the range ignored, or
    If-Range saying the file changed) is only usable from byte 0, of the same version and length.
    """
    refuse_html(response, t.relpath)
    status = response.status_code
    if t.validator is not None:
        now = response.headers.get("ETag" if t.validator.startswith('"') else "Last-Modified")
        if now is not None and now != t.validator:
            raise RemoteChanged()
    if status == 206:
        content_range = response.headers.get("Content-Range", "")
        try:
            unit, _, rest = content_range.partition(" ")
            span, _, total = rest.partition("/")
            first = int(span.split("-", 1)[0])
        except ValueError:
            raise Transient(f"unreadable Content-Range {content_range!r}") from None
        if unit != "bytes" or first != pos:
            raise Transient(f"server answered range {content_range!r} for a request starting at {pos}")
        if not total.isdigit() or int(total) != t.size:
            raise DownloadError(_sizes_disagree(t.size, f"{total} bytes now"))
        return False
    if status == 200:
        if pos != 0:
            raise DownloadError("the server ignores byte ranges, so this file cannot be fetched in parts")
        length = response.headers.get("Content-Length")
        if length is not None and length != str(t.size):
            raise DownloadError(_sizes_disagree(t.size, f"{length} bytes now"))
        return length is None
    raise Transient(f"unexpected HTTP {status}")


def _sizes_disagree(size: int, now: str) -> str:
    return (
        f"the server's sizes disagree: {size} bytes at the start, {now} "
        "(the file changed on the server, or something in between alters it); nothing was installed"
    )


def _refuse_html_body(block: bytes, t: Target, response: Any) -> None:
    """A plain URL has no hash to catch a portal page served as application/octet-stream: sniff it."""
    head = block[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) and not t.relpath.lower().endswith((".html", ".htm")):
        raise DownloadError(captive_portal(urlsplit(response.url or "").hostname or "the server"))


def _allocated(path: Path) -> int:
    """Bytes of disk a file holds now (0 when there is none)."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _disk_error(exc: OSError, local_dir: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full writing into {local_dir}; free some space and run again (finished chunks are kept)"
    return f"{exc.strerror or exc} ({type(exc).__name__})"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
