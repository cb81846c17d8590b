"""Stand-in for the Hugging Face Hub and its CDN: two threaded HTTP servers on loopback, with faults.

The contract kept is the one huggingface_hub 2.x relies on (hf_api.py `model_info`/`repo_info`,
`list_repo_tree`; utils/_pagination.py; file_download.py `get_hf_file_metadata`, `http_get`;
utils/_http.py `hf_raise_for_status`), checked by pointing the real client at it
(tests/test_hub_standin.py):

- `GET /api/{models|datasets}/{repo}[/revision/{rev}]`: `{"id", "sha", "siblings": [{"rfilename"}]}`.
- `GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=&expand=`: entries `{"type", "oid", "size",
  "path", "lfs": {"oid", "size", "pointerSize"}}` (oid: git blob sha1; lfs.oid: sha256), paginated
  with `Link: <next>; rel="next"` (the Hub caps pages at 1000 entries).
- `HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag`, `Accept-Ranges`;
  an LFS file answers 302 to the CDN (another port, so another origin) with `X-Linked-Etag` (its
  sha256) and `X-Linked-Size`; other files are served directly, their ETag being the git blob sha1.
- errors carry `X-Error-Code` (RepoNotFound with 401, RevisionNotFound, EntryNotFound with 404).
- ranges: `Range: bytes=a-b` / `a-` answer 206 with `Content-Range`; out of range answers 416.

Plain files on the CDN (`add_url`, as the CARLA archives are served) carry an `ETag` and a
`Last-Modified` that change with their content (`add_url` again replaces it, as a new upload
does), and honour `If-Range` (RFC 9110 13.1.5): a range whose validator no longer matches gets the
whole new file with 200, as nginx and S3 answer.

Faults (one `Fault` per rule, by file path, or "api" for the Hub's API; GET by default, HEAD when
`method="HEAD"`): HTTP status with optional Retry-After, reset (RST) after N body bytes (0: before
any answer), stall, truncated body (Content-Length promised, connection closed early), a short but
valid 206, same-size corrupt bytes, a lying Content-Length (`length`: the header says `after`
bytes), a range ignored (`whole`: 200 and the whole body, as a proxy that drops Range does).
`portal=True` turns the CDN into a captive portal: every request is redirected to an HTML login
page. Every connection can be throttled to a fixed rate and dropped every N bytes. Each server logs
requests with their headers and counts body bytes per file.
"""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import json
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

POOL = 8 << 20
SEND = 64 << 10


class Blob:
    size: int

    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def iter_range(self, start: int, end: int, step: int = 8 << 20):
        pos = start
        while pos <= end:
            n = min(step, end + 1 - pos)
            yield self.read(pos, n)
            pos += n

    def digest(self, h):
        for piece in self.iter_range(0, self.size - 1):
            h.update(piece)
        return h.hexdigest()


class Data(Blob):
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


class Pattern(Blob):
    """`size` deterministic pseudo-random bytes from `seed`, generated on the fly (multi-GB, no disk)."""

    _pools: ClassVar[dict[int, bytes]] = {}

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        if seed not in self._pools:
            pool = random.Random(seed).randbytes(POOL)
            self._pools[seed] = pool + pool
        self.pool = memoryview(self._pools[seed])

    def read(self, offset: int, length: int) -> bytes:
        out = []
        end = min(self.size, offset + length)
        while offset < end:
            segment, q = divmod(offset, POOL)
            r = (segment * 1_000_003) % POOL
            n = min(end - offset, POOL - q)
            out.append(self.pool[q + r : q + r + n])
            offset += n
        return b"".join(out)


@dataclass
class RepoFile:
    blob: Blob
    lfs: bool
    sha256: str = ""
    git_sha1: str = ""  # of the content (non-LFS) or of the pointer file (LFS)
    pointer_size: int = 0


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    commit: str
    files: dict[str, RepoFile] = field(default_factory=dict)


@dataclass
class Fault:
    kind: str  # status, reset, stall, truncate, short, corrupt, length, whole
    path: str  # the repo file (or URL path) it applies to; "api" for the Hub's API calls
    times: int = 1  # requests it strikes; -1: every one
    method: str = "GET"  # or HEAD
    status: int = 500
    retry_after: Optional[str] = None
    after: int = 0  # body bytes sent before it strikes
    seconds: float = 0.0


@dataclass
class Logged:
    at: float
    server: str  # hub or cdn
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    sent: int = 0  # body bytes written for this request


def git_blob_sha1(blob: Blob) -> str:
    return blob.digest(hashlib.sha1(b"blob %d\0" % blob.size))


class Hub:
    """The two servers and their shared state. Use as a context manager; `close()` stops both."""

    def __init__(self, page_size: int = 1000, rate: Optional[float] = None, drop_every: Optional[int] = None) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.urls: dict[str, Blob] = {}  # plain files on the CDN: URL path -> blob
        self.versions: dict[str, tuple[str, str]] = {}  # URL path -> (ETag, Last-Modified) of its content
        self._uploads = itertools.count(1)
        self.portal = False  # a captive portal in front of the CDN
        self.by_sha: dict[str, tuple[str, RepoFile]] = {}
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self.sent: dict[str, int] = {}
        self.page_size = page_size
        self.rate = rate
        self.drop_every = drop_every
        self.lock = threading.Lock()
        self.hub = self._serve("hub")
        self.cdn = self._serve("cdn")
        self.endpoint = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def _serve(self, role: str) -> ThreadingHTTPServer:
        handler = type(f"{role.title()}Handler", (Handler,), {"hub": self, "role": role})
        server = QuietServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()

    # -- content ---------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | Blob],
        repo_type: str = "model",
        lfs_over: int = 1024,
        commit: Optional[str] = None,
    ) -> Repo:
        """Files larger than `lfs_over` bytes are stored as LFS (served through the CDN)."""
        commit = commit or hashlib.sha1(repo_id.encode() + str(len(self.repos)).encode()).hexdigest()
        repo = Repo(repo_id, repo_type, commit)
        for path, content in files.items():
            blob = content if isinstance(content, Blob) else Data(content)
            lfs = blob.size > lfs_over
            entry = RepoFile(blob, lfs)
            if lfs:
                entry.sha256 = blob.digest(hashlib.sha256())
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.sha256}\nsize {blob.size}\n"
                entry.git_sha1 = git_blob_sha1(Data(pointer.encode()))
                entry.pointer_size = len(pointer)
                self.by_sha[entry.sha256] = (path, entry)
            else:
                entry.git_sha1 = git_blob_sha1(blob)
            repo.files[path] = entry
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def add_url(self, path: str, content: bytes | Blob) -> str:
        """A plain file on the CDN server (no repo), as the CARLA archives are; returns its URL.

        Adding the same path again is a new upload: new content, a new ETag and a later Last-Modified.
        """
        upload = next(self._uploads)
        with self.lock:
            self.urls[path] = content if isinstance(content, Blob) else Data(content)
            modified = email.utils.formatdate(1_700_000_000 + 60 * upload, usegmt=True)
            self.versions[path] = (f'"stand-in-{upload}"', modified)
        return f"{self.cdn_url}{path}"

    def fault(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def take_fault(self, path: str, method: str = "GET") -> Optional[Fault]:
        with self.lock:
            for f in self.faults:
                if f.path == path and f.method == method and f.times != 0:
                    if f.times > 0:
                        f.times -= 1
                    return f
        return None

    def count(self, path: str, n: int) -> None:
        with self.lock:
            self.sent[path] = self.sent.get(path, 0) + n

    def requests(self, server: Optional[str] = None, contains: str = "") -> list[Logged]:
        with self.lock:
            return [r for r in self.log if (server is None or r.server == server) and contains in r.path]

    def total_sent(self) -> int:
        with self.lock:
            return sum(self.sent.values())


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (the faults provoke it) are expected; anything else still shows."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: Hub
    role: str

    def setup(self) -> None:
        super().setup()
        self.conn_sent = 0
        self.next_send = 0.0  # throttling: when this connection may send again

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------------

    def _log(self) -> Logged:
        entry = Logged(
            time.monotonic(), self.role, self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
        )
        with self.hub.lock:
            self.hub.log.append(entry)
        return entry

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.entry.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, data: object, headers: Optional[dict[str, str]] = None) -> None:
        self._reply(200, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode())

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._reply(status, {"Content-Type": "application/json", "X-Error-Code": code}, body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST, as a dropped link or a crashing proxy does."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.entry = self._log()
        try:
            if self.role == "cdn":
                self._cdn()
            else:
                self._api_or_resolve()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # -- hub -------------------------------------------------------------------------------------

    def _repo(self, repo_type: str, rest: list[str]) -> tuple[Optional[Repo], list[str]]:
        for n in (2, 1):
            repo = self.hub.repos.get((repo_type, "/".join(rest[:n])))
            if repo is not None:
                return repo, rest[n:]
        return None, rest

    def _commit(self, repo: Repo, rev: str) -> Optional[str]:
        rev = unquote(rev)
        return repo.commit if rev in ("main", repo.commit) else None

    def _api_or_resolve(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:1] == ["api"] and len(parts) > 2 and parts[1] in ("models", "datasets"):
            fault = self.hub.take_fault("api", self.command)
            if fault is not None and fault.kind == "status":
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return self._reply(fault.status, extra, b"stand-in failure")
            repo, rest = self._repo(parts[1][:-1], parts[2:])
            if repo is None:
                return self._error(401, "RepoNotFound", "Repository not found")
            if not rest or rest[0] == "revision":
                return self._info(repo, rest[1] if len(rest) > 1 else "main", parse_qs(url.query))
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo, rest[1], "/".join(rest[2:]), parse_qs(url.query), url.path)
            return self._error(404, "EntryNotFound", "unknown API route")
        repo_type = "model"
        if parts[:1] == ["datasets"]:
            repo_type, parts = "dataset", parts[1:]
        repo, rest = self._repo(repo_type, parts)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        if len(rest) < 3 or rest[0] != "resolve":
            return self._error(404, "EntryNotFound", "unknown route")
        commit = self._commit(repo, rest[1])
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        path = "/".join(rest[2:])
        entry = repo.files.get(path)
        if entry is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist")
        common = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if entry.lfs:
            location = f"{self.hub.cdn_url}/{entry.sha256}?X-Amz-Signature=stand-in&path={quote(path)}"
            headers = {
                **common,
                "Location": location,
                "ETag": f'"{entry.git_sha1}"',
                "X-Linked-Etag": f'"{entry.sha256}"',
                "X-Linked-Size": str(entry.blob.size),
            }
            return self._reply(302, headers)
        self._body(path, entry.blob, {**common, "ETag": f'"{entry.git_sha1}"'})

    def _info(self, repo: Repo, rev: str, query: dict[str, list[str]]) -> None:
        commit = self._commit(repo, rev)
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        siblings = []
        for path, e in repo.files.items():
            sibling: dict[str, object] = {"rfilename": path}
            if query.get("blobs", ["false"])[0].lower() == "true":
                sibling.update(size=e.blob.size, blobId=e.git_sha1)
                if e.lfs:
                    sibling["lfs"] = {"size": e.blob.size, "sha256": e.sha256, "pointerSize": e.pointer_size}
            siblings.append(sibling)
        self._json({"id": repo.repo_id, "_id": commit[:24], "sha": commit, "private": False, "siblings": siblings})

    def _tree(self, repo: Repo, rev: str, base: str, query: dict[str, list[str]], route: str) -> None:
        if self._commit(repo, rev) is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = base.strip("/") + "/" if base.strip("/") else ""
        entries: list[dict[str, object]] = []
        dirs: set[str] = set()
        for path, e in sorted(repo.files.items()):
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :].split("/")
            for depth in range(1, len(rel)):
                d = prefix + "/".join(rel[:depth])
                if (recursive or depth == 1) and d not in dirs:
                    dirs.add(d)
                    entries.append(
                        {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                    )
            if recursive or len(rel) == 1:
                item: dict[str, object] = {"type": "file", "oid": e.git_sha1, "size": e.blob.size, "path": path}
                if e.lfs:
                    item["lfs"] = {"oid": e.sha256, "size": e.blob.size, "pointerSize": e.pointer_size}
                entries.append(item)
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start : start + self.hub.page_size]
        headers = {}
        if start + self.hub.page_size < len(entries):
            nxt = f"{self.hub.endpoint}{route}?recursive={recursive}&cursor={start + self.hub.page_size}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._json(page, headers)

    # -- cdn -------------------------------------------------------------------------------------

    def _cdn(self) -> None:
        url = urlsplit(self.path)
        if self.hub.portal:
            if url.path == "/portal/login":
                page = b"<!DOCTYPE html>\n<html><body><form>Accept the terms to use this network</form></body></html>\n"
                return self._reply(200, {"Content-Type": "text/html; charset=utf-8"}, page)
            return self._reply(302, {"Location": f"{self.hub.cdn_url}/portal/login"})
        if url.path in self.hub.urls:
            with self.hub.lock:
                blob, (etag, modified) = self.hub.urls[url.path], self.hub.versions[url.path]
            return self._body(url.path, blob, {"ETag": etag, "Last-Modified": modified})
        found = self.hub.by_sha.get(url.path.strip("/"))
        if found is None:
            return self._reply(404, {}, b"NoSuchKey")
        path, entry = found
        self._body(path, entry.blob, {"ETag": f'"{entry.sha256}"'})

    # -- bodies: ranges, faults, throttling ------------------------------------------------------

    def _body(self, path: str, blob: Blob, headers: dict[str, str]) -> None:
        size = blob.size
        start, end, status = 0, size - 1, 200
        fault = self.hub.take_fault(path, self.command)
        if fault is not None and fault.kind == "reset" and fault.after == 0:
            return self._reset()
        spec = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range not in (headers.get("ETag"), headers.get("Last-Modified")):
            spec = None  # the file changed since the client's version: the whole new file
        if fault is not None and fault.kind == "whole":
            spec = None
        if spec and spec.startswith("bytes="):
            first, _, last = spec[6:].split(",")[0].partition("-")
            if first == "":
                start = max(0, size - int(last))
            else:
                start = int(first)
                end = min(size - 1, int(last)) if last else size - 1
            if start >= size or start > end:
                return self._reply(416, {"Content-Range": f"bytes */{size}"})
            status = 206
        if fault is not None and fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._reply(fault.status, extra, b"stand-in failure")
        send_end = end
        if fault is not None and fault.kind == "short":  # a valid 206 for less than was asked
            send_end = end = min(end, start + fault.after - 1)
            status = 206
        out = {**headers, "Content-Length": str(end - start + 1)}
        if status == 206:
            out["Content-Range"] = f"bytes {start}-{end}/{size}"
        if fault is not None and fault.kind == "length":
            out["Content-Length"] = str(fault.after)
        self._reply(status, {"Content-Type": "application/octet-stream", **out})
        if self.command == "HEAD":
            return
        if fault is not None and fault.kind == "length":
            end = min(end, start + fault.after - 1)
        if fault is not None and fault.kind in ("reset", "truncate", "stall"):
            send_end = min(end, start + fault.after - 1)
        self._send(path, blob, start, send_end, fault)
        if fault is None or send_end == end:
            return
        if fault.kind == "reset":
            self._reset()
        elif fault.kind == "truncate":
            self.close_connection = True  # promised more; close cleanly (FIN) without sending it
        elif fault.kind == "stall":
            time.sleep(fault.seconds)
            self._send(path, blob, send_end + 1, end, None)

    def _send(self, path: str, blob: Blob, start: int, end: int, fault: Optional[Fault]) -> None:
        hub = self.hub
        for piece in blob.iter_range(start, end, SEND):
            if fault is not None and fault.kind == "corrupt":
                piece = bytes(b ^ 0x5A for b in piece[:16]) + piece[16:]
            if hub.drop_every and self.conn_sent + len(piece) > hub.drop_every:
                keep = hub.drop_every - self.conn_sent
                self.wfile.write(piece[:keep])
                hub.count(path, keep)
                self.entry.sent += keep
                self._reset()
                raise ConnectionResetError("dropped by the stand-in")
            self.wfile.write(piece)
            self.conn_sent += len(piece)
            self.entry.sent += len(piece)
            hub.count(path, len(piece))
            if hub.rate:  # a steady rate per connection, with no burst saved up while idle
                now = time.monotonic()
                self.next_send = max(self.next_send, now) + len(piece) / hub.rate
                if self.next_send > now:
                    time.sleep(self.next_send - now)
