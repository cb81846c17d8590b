"""HTTP for the download engine: byte ranges, redirects followed by hand, and the retry policy.

Redirects are followed here rather than by requests so that every hop decides afresh whether it may
carry the token: `Authorization` goes only to the endpoint's origin (scheme, host, port), never to
the CDN a file redirects to. Errors are classified into Transient (retry after a backoff) and
DownloadError (give up on this file), with messages that name neither the token nor signed URLs.
A host that does not resolve is not worth a retry: the run stops at once, naming the host. Every
wait before a retry is shown with its reason (`say`), so a slow network never looks like a hang.
"""

from __future__ import annotations

import email.utils
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import urljoin, urlsplit

from simdoctor import __version__
from simdoctor.config.settings import Secret, redact_url
from simdoctor.download import DownloadError

T = TypeVar("T")

MAX_REDIRECTS = 10
LOCATION_TTL = 600.0  # reuse where a file redirected to (a signed CDN URL) for this long
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Policy:
    """How patient a download is. `timeout` is the stall bound: seconds without a byte on a connection."""

    timeout: float = 30.0
    connect_timeout: float = 15.0
    retries: int = 8  # failed attempts in a row, without a byte of progress, before a file is given up
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0  # a server asking for a longer pause is not worth waiting for


class Transient(Exception):
    """A failure worth retrying (reset, stall, truncated body, 5xx, 429); `retry_after` when the server said."""

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unresolvable(DownloadError):
    """The host name does not resolve (no DNS, a typo in HF_ENDPOINT): retrying would only wait."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"cannot resolve the host {host} ({reason}): check the network's DNS, or the URL")


def say(message: str) -> None:
    """A line on stderr while a download goes on (a terminal's progress bar redirects it above itself)."""
    sys.stderr.write(f"simdoctor: {message}\n")
    sys.stderr.flush()


def retry_note(what: str, reason: str, delay: float, failures: int, policy: Policy) -> str:
    return f"{what}: {reason}; retry {failures} of {policy.retries} in {delay:.1f}s"


def gave_up(failures: int, reason: str) -> str:
    return f"gave up after {failures} failed attempts in a row: {reason}"


def resolution_failure(exc: BaseException) -> Optional[str]:
    """The resolver's reason when `exc` (requests', httpx's or the socket's) comes from a failed name lookup."""
    seen: set[int] = set()
    todo: list[Optional[BaseException]] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, socket.gaierror):
            return item.strerror or str(item)
        reason = getattr(item, "reason", None)
        todo += [item.__cause__, item.__context__, reason if isinstance(reason, BaseException) else None]
        todo += [a for a in item.args if isinstance(a, BaseException)]
    return None


def retrying(
    call: Callable[[], T],
    policy: Policy,
    classify: Callable[[Exception], tuple[bool, Optional[float], str]],
    what: str,
) -> T:
    """Call until it succeeds. `classify` says (retry?, the server's Retry-After, the reason); each wait
    is announced with its reason, and giving up (or a failure not worth retrying) is one DownloadError."""
    failures = 0
    while True:
        try:
            return call()
        except DownloadError:
            raise
        except Exception as exc:
            retry, retry_after, reason = classify(exc)
            failures += 1
            if not retry:
                raise DownloadError(reason) from None
            if failures > policy.retries:
                raise DownloadError(f"{what}: {gave_up(failures, reason)}") from None
            delay = backoff_delay(policy, failures - 1, retry_after)
            say(retry_note(what, reason, delay, failures, policy))
            time.sleep(delay)


@dataclass(frozen=True)
class RemoteFile:
    """What a plain URL's server says of the file: its size and the validator that names this version."""

    size: int
    validator: Optional[str]  # a strong ETag, else Last-Modified; None: the server gives neither


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After as seconds to wait: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(policy: Policy, attempt: int, retry_after: Optional[float] = None) -> float:
    """Capped exponential backoff with jitter; a server's Retry-After wins (up to retry_after_cap)."""
    if retry_after is not None:
        return min(retry_after, policy.retry_after_cap)
    return min(policy.backoff_cap, policy.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)


def describe(exc: BaseException) -> str:
    """A short reason for a requests/urllib3 failure, without the URL (signed CDN URLs are noise)."""
    import requests

    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout) or "read timed out" in text:
        return "stalled (no data within the timeout)"
    if "reset" in text:
        return "connection reset"
    if "refused" in text:
        return "connection refused"
    if "incompleteread" in text or "incomplete" in text or "ended prematurely" in text:
        return "body cut short"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection error"
    return type(exc).__name__


class Client:
    """Ranged GETs with one requests.Session per thread (keep-alive per worker connection)."""

    def __init__(
        self,
        policy: Policy,
        endpoint: Optional[str] = None,
        token: Optional[Secret] = None,
    ) -> None:
        self.policy = policy
        self._auth_origin = origin(endpoint) if endpoint else None
        self._token = token if token else None
        self._local = threading.local()
        self._locations: dict[str, tuple[str, float]] = {}  # url -> (where it redirected to, when)

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers.update({"User-Agent": f"simdoctor/{__version__}", "Accept-Encoding": "identity"})
            self._local.session = session
        return session

    def headers_for(self, url: str) -> dict[str, str]:
        """The token only for the endpoint's own origin: a CDN or any other host never sees it."""
        if self._token is not None and origin(url) == self._auth_origin:
            return {"Authorization": f"Bearer {self._token.reveal()}"}
        return {}

    def request(self, method: str, url: str, headers: Optional[dict[str, str]] = None) -> tuple[Any, str]:
        """Send one request, following redirects; returns (response, final url). Body not yet read.

        A GET goes straight to where the same URL redirected before (one round trip less per chunk,
        one resolve call less for the Hub's rate limits). When that place refuses (an expired signed
        URL), the redirect is asked anew at once; when it fails otherwise, the next attempt asks anew.
        """
        cached = self._locations.get(url) if method == "GET" else None
        if cached is not None and time.monotonic() - cached[1] < LOCATION_TTL:
            try:
                return self._follow(method, cached[0], headers)
            except Transient:
                self._locations.pop(url, None)
                raise
            except DownloadError:
                self._locations.pop(url, None)
        response, final = self._follow(method, url, headers)
        if method == "GET" and final != url:
            self._locations[url] = (final, time.monotonic())
        return response, final

    def _follow(self, method: str, url: str, headers: Optional[dict[str, str]]) -> tuple[Any, str]:
        import requests

        session = self._session()
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = session.request(
                    method,
                    url,
                    headers={**(headers or {}), **self.headers_for(url)},
                    stream=True,
                    allow_redirects=False,
                    timeout=(self.policy.connect_timeout, self.policy.timeout),
                )
            except requests.exceptions.RequestException as exc:
                unresolved = resolution_failure(exc)
                if unresolved is not None:
                    raise Unresolvable(urlsplit(url).hostname or "?", unresolved) from None
                raise Transient(describe(exc)) from None
            if response.is_redirect:
                location = response.headers.get("Location", "")
                response.close()
                url = urljoin(url, location)
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
                raise Transient(f"HTTP {status}", retry_after)
            if status >= 400:
                response.close()
                raise DownloadError(_client_error(status))
            return response, url
        raise DownloadError(f"more than {MAX_REDIRECTS} redirects")

    def remote_file(self, url: str, name: str) -> RemoteFile:
        """A plain URL's size and validator (HEAD, else a one-byte range), retried like every request."""
        return retrying(lambda: self._remote_file(url, name), self.policy, _transient, redact_url(url))

    def _remote_file(self, url: str, name: str) -> RemoteFile:
        response, _ = self.request("HEAD", url)
        response.close()
        refuse_html(response, name)
        length = response.headers.get("Content-Length")
        if not (length and length.isdigit() and int(length) > 0):
            response, _ = self.request("GET", url, {"Range": "bytes=0-0"})
            response.close()
            refuse_html(response, name)
            length = response.headers.get("Content-Range", "").rpartition("/")[2]
            if not length.isdigit():
                raise DownloadError("the server tells neither the size nor a byte range of the file")
        return RemoteFile(int(length), validator(response))


def _transient(exc: Exception) -> tuple[bool, Optional[float], str]:
    if isinstance(exc, Transient):
        return True, exc.retry_after, str(exc)
    raise exc


def validator(response: Any) -> Optional[str]:
    """What If-Range may carry (RFC 9110 13.1.5): a strong ETag, else Last-Modified."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


HTML_NAMES = (".html", ".htm", ".xhtml")


def refuse_html(response: Any, name: str) -> None:
    """An HTML page where a file was asked for is a captive portal's or a proxy's login page, not the file."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml") and not name.lower().endswith(HTML_NAMES):
        raise DownloadError(captive_portal(urlsplit(response.url or "").hostname or "the server"))


def captive_portal(host: str) -> str:
    return (
        f"{host} answered with an HTML page instead of the file: a captive portal or proxy login page? "
        "Sign in to the network (open any web page in a browser), then run again"
    )


def _client_error(status: int) -> str:
    if status in (401, 403):
        return f"HTTP {status}: not allowed (a gated or private repo needs HF_TOKEN, or `hf auth login`)"
    if status == 404:
        return "HTTP 404: not found"
    if status == 416:
        return "HTTP 416: the server rejected the byte range (the remote file changed?)"
    return f"HTTP {status}"
