"""Fetching a feed URL: one bounded, conditional GET (or a ``file://`` read).

:func:`fetch` returns a :class:`FetchResult`; network trouble becomes
:class:`FetchError`. Every fetch has **one total deadline** (``limits.timeout``)
covering the name lookup, connect, TLS, each redirect hop, the response headers
and the body: the clients made by :func:`make_client` bound every socket
operation by the time left to the fetch running in the current thread, so a
peer that stalls or trickles (headers, redirect hops or body, chunked or not)
costs at most the deadline. The size cap is enforced on the stream as it is read.

Conditional-GET state (``ETag``/``Last-Modified``) goes in and comes back out;
storing it is the caller's business.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

import httpcore
import httpx

from kabarfeed import __version__
from kabarfeed.errors import FetchError

__all__ = [
    "ACCEPT",
    "DEFAULT_LIMITS",
    "MIB",
    "FetchLimits",
    "FetchResult",
    "fetch",
    "make_client",
]

MIB: Final = 1024 * 1024
ACCEPT: Final = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.8"
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds of one fetch: total time (s), body size, redirect hops, User-Agent."""

    timeout: float = 20.0
    max_bytes: int = 10 * MIB
    max_redirects: int = 5
    user_agent: str = f"kabarfeed/{__version__} (+https://github.com/kabarfeed/kabarfeed)"

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError(f"invalid fetch limits: {self!r}")


DEFAULT_LIMITS: Final = FetchLimits()


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Outcome of :func:`fetch`. ``content`` is empty when ``status == "not_modified"``."""

    status: Literal["ok", "not_modified"]
    content: bytes
    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def make_client(limits: FetchLimits = DEFAULT_LIMITS) -> httpx.Client:
    """An :class:`httpx.Client` with the timeouts, redirect limit and headers of
    ``limits``, whose every socket operation keeps to the deadline of the
    :func:`fetch` in progress (proxies from the environment included)."""
    client = httpx.Client(
        timeout=httpx.Timeout(limits.timeout),
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        headers={"User-Agent": limits.user_agent, "Accept": ACCEPT},
    )
    _keep_to_deadlines(client)
    return client


def fetch(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    limits: FetchLimits = DEFAULT_LIMITS,
) -> FetchResult:
    """GET ``url`` conditionally, within ``limits``; ``file://`` URLs read a local file.

    Sends ``If-None-Match``/``If-Modified-Since`` from ``etag``/``last_modified``
    and returns ``status="not_modified"`` on 304. Redirects are followed up to
    ``limits.max_redirects`` hops. The body is streamed and abandoned as soon as
    it exceeds ``limits.max_bytes`` or the whole fetch exceeds ``limits.timeout``.

    Raises:
        FetchError: HTTP error status, timeout, oversize body, too many
            redirects, or any transport failure (the httpx error is chained).
    """
    if urlsplit(url).scheme.lower() == "file":
        return _fetch_file(url, etag=etag, last_modified=last_modified, limits=limits)
    deadline = time.monotonic() + limits.timeout
    headers = _conditional_headers(etag, last_modified)
    current = url
    try:
        with _deadline(deadline):
            for _hop in range(limits.max_redirects + 1):
                with client.stream("GET", current, headers=headers, follow_redirects=False) as resp:
                    target = _redirect_target(resp)
                    if target is None:
                        return _read_response(resp, etag, last_modified, limits, deadline)
                current = target
    except httpx.TimeoutException as e:
        raise FetchError(f"timed out after {limits.timeout:g}s fetching {url}") from e
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise FetchError(f"cannot fetch {url}: {e}") from e
    raise FetchError(f"too many redirects (more than {limits.max_redirects}) from {url}")


def _conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _redirect_target(resp: httpx.Response) -> str | None:
    """The absolute URL a 3xx response points to, or ``None`` if it is not a redirect."""
    location = resp.headers.get("Location")
    if resp.status_code not in _REDIRECTS or not location:
        return None
    target: str = urljoin(str(resp.url), str(location).strip())
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        raise FetchError(f"{resp.url} redirects to unsupported URL {target}")
    return target


def _read_response(
    resp: httpx.Response,
    etag: str | None,
    last_modified: str | None,
    limits: FetchLimits,
    deadline: float,
) -> FetchResult:
    url = str(resp.url)
    new_etag = resp.headers.get("ETag") or etag
    new_modified = resp.headers.get("Last-Modified") or last_modified
    headers = tuple(resp.headers.multi_items())
    if resp.status_code == 304:
        return FetchResult("not_modified", b"", url, new_etag, new_modified, None, headers)
    if not 200 <= resp.status_code < 300:
        retry = resp.headers.get("Retry-After")
        hint = f"server asks to retry after {retry}" if retry else resp.reason_phrase or None
        raise FetchError(f"HTTP {resp.status_code} from {url}", hint=hint)
    _check_declared_length(resp, limits)
    content = _read_capped(resp, limits, deadline)
    content_type = resp.headers.get("Content-Type")
    return FetchResult("ok", content, url, new_etag, new_modified, content_type, headers)


def _check_declared_length(resp: httpx.Response, limits: FetchLimits) -> None:
    declared = resp.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchError(
            f"response larger than {_size(limits.max_bytes)} from {resp.url} "
            f"(Content-Length {_size(int(declared))})"
        )


def _read_capped(resp: httpx.Response, limits: FetchLimits, deadline: float) -> bytes:
    body = bytearray()
    for chunk in resp.iter_bytes():
        body += chunk
        if len(body) > limits.max_bytes:
            raise FetchError(f"response larger than {_size(limits.max_bytes)} from {resp.url}")
        if time.monotonic() > deadline:
            raise FetchError(f"timed out after {limits.timeout:g}s fetching {resp.url}")
    return bytes(body)


def _size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.3g} MiB"
    if n >= 1024:
        return f"{n / 1024:.3g} KiB"
    return f"{n} bytes"


def _fetch_file(
    url: str, *, etag: str | None, last_modified: str | None, limits: FetchLimits
) -> FetchResult:
    """Read a ``file://`` URL with the same size cap; validators come from size and mtime."""
    path = _file_path(url)
    try:
        with path.open("rb") as fh:
            stat = os.fstat(fh.fileno())
            cur_etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
            cur_modified = formatdate(stat.st_mtime, usegmt=True)
            if _unchanged(etag, last_modified, cur_etag, cur_modified):
                return FetchResult("not_modified", b"", url, cur_etag, cur_modified)
            data = fh.read(limits.max_bytes + 1)
    except OSError as e:
        raise FetchError(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > limits.max_bytes:
        raise FetchError(f"response larger than {_size(limits.max_bytes)} from {url}")
    return FetchResult("ok", data, url, cur_etag, cur_modified)


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"file URL on another host is not supported: {url}")
    return Path(url2pathname(parts.path))


def _unchanged(etag: str | None, modified: str | None, cur_etag: str, cur_modified: str) -> bool:
    if etag is not None:
        return etag == cur_etag
    return modified is not None and modified == cur_modified


# ------------------------------------------------------------------ the deadline

_DEADLINE: Final[contextvars.ContextVar[float | None]] = contextvars.ContextVar(
    "kabarfeed_fetch_deadline", default=None
)
"""``time.monotonic()`` by which the fetch running in this thread must be done."""


@contextmanager
def _deadline(moment: float) -> Iterator[None]:
    token = _DEADLINE.set(moment)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` shortened to the time left by the current deadline.

    Raises ``error`` (an httpcore timeout, which httpx maps to its own) once
    the deadline has passed.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the fetch's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose reads, writes and TLS handshake keep to the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens :class:`_DeadlineStream` connections (connect bounded too)."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if _DEADLINE.get() is None or _is_ip(host):
            bounded = _bounded(timeout, httpcore.ConnectTimeout)
            stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
            return _DeadlineStream(stream)
        failure: httpcore.ConnectError | None = None
        for address in _resolve(host, port, _bounded(timeout, httpcore.ConnectTimeout)):
            bounded = _bounded(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(
                    address, port, bounded, local_address, socket_options
                )
            except httpcore.ConnectError as e:  # the next address may answer
                failure = e
                continue
            return _DeadlineStream(stream)
        raise failure or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses of ``host``, looked up within ``timeout``.

    ``getaddrinfo`` takes no timeout, so it runs in a daemon thread that is
    left to finish on its own when the deadline comes first.
    """
    box: queue.Queue[list[str] | OSError] = queue.Queue(maxsize=1)

    def look_up() -> None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            box.put(list(dict.fromkeys(str(info[4][0]) for info in found)))
        except OSError as e:
            box.put(e)

    threading.Thread(target=look_up, name="kabarfeed-resolve", daemon=True).start()
    try:
        result = box.get(timeout=timeout)
    except queue.Empty:
        raise httpcore.ConnectTimeout(f"looking up {host} outlasted the deadline") from None
    if isinstance(result, OSError):
        raise httpcore.ConnectError(f"cannot look up {host}: {result}")
    return result


def _keep_to_deadlines(client: httpx.Client) -> None:
    """Put :class:`_DeadlineBackend` under every connection pool of ``client``.

    httpx has no public hook for the network backend of its default transport,
    so this reaches for the pools' backend attribute; a test checks it is
    there, and a client without it is refused rather than left unbounded.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        inner = getattr(pool, "_network_backend", None)
        if not isinstance(inner, httpcore.NetworkBackend):
            raise RuntimeError("cannot bound fetches: httpx/httpcore internals changed")
        if not isinstance(inner, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(inner)  # type: ignore[union-attr]
