"""A scriptable HTTP server on 127.0.0.1 for tests that need real HTTP.

Usage::

    with serve() as server:
        server.add("/feed.xml", body=b"<rss/>", etag='"v1"')
        client.get(server.url("/feed.xml"))

Each route can answer with static bytes and headers, honour ``ETag`` /
``Last-Modified`` with ``304``, return any status, sleep before answering,
dribble its headers or its body slowly (chunked too), stream a huge generated
body, or redirect. Every request is recorded in :attr:`FeedServer.requests`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024


@dataclass
class Route:
    """How the server answers one path."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/xml"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0  # seconds to sleep before the status line
    dribble: float = 0.0  # seconds to sleep between body chunks
    header_dribble: float = 0.0  # seconds to sleep between header lines
    chunked: bool = False  # Transfer-Encoding: chunked (HTTP/1.1), no Content-Length
    hold: threading.Event | None = None  # answer only once this is set (at most 30 s)
    hit: threading.Event | None = None  # set as soon as the route is requested
    chunk_size: int = CHUNK
    stream_bytes: int | None = None  # generate this many bytes instead of ``body``
    declare_length: bool = True  # send Content-Length
    location: str | None = None  # redirect target (path or absolute URL)
    sent: int = 0  # body bytes actually written (updated while serving)


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]


class FeedServer:
    """Routes, request log and URL helper of a running test server."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.base_url = ""
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.base_url + path

    def add(self, path: str, **kwargs: object) -> Route:
        """Register (or replace) the route for ``path``; kwargs are :class:`Route` fields."""
        route = Route(**kwargs)  # type: ignore[arg-type]
        self.routes[path] = route
        return route

    def redirect(self, path: str, to: str, status: int = 302) -> Route:
        """Make ``path`` redirect to ``to``."""
        return self.add(path, status=status, location=to, content_type=None)

    def hits(self, path: str) -> list[Request]:
        """Requests received for ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def record(self, request: Request) -> None:
        """Append to the request log (thread-safe)."""
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        feeds = self.server.feeds
        feeds.record(Request("GET", self.path, dict(self.headers.items())))
        route = feeds.routes.get(self.path)
        try:
            if route is None:
                self._reply(Route(status=404, body=b"not found", content_type="text/plain"))
            else:
                self._reply(route)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def _reply(self, route: Route) -> None:
        if route.hit is not None:
            route.hit.set()
        if route.hold is not None:
            route.hold.wait(30)
        if route.delay:
            time.sleep(route.delay)
        if self._not_modified(route):
            self.send_response(304)
            self._validators(route)
            self.end_headers()
            return
        if route.chunked:
            self.protocol_version = "HTTP/1.1"
            self.close_connection = True
        self.send_response(route.status)
        self._headers(route)
        if route.header_dribble:
            self._dribble_headers(route.header_dribble)
        self.end_headers()
        self._body(route)

    def _dribble_headers(self, pause: float) -> None:
        """Send the header lines buffered so far one at a time, ``pause`` apart."""
        lines: list[bytes] = getattr(self, "_headers_buffer", [])
        for line in lines:
            self.wfile.write(line)
            self.wfile.flush()
            time.sleep(pause)
        lines.clear()

    def _not_modified(self, route: Route) -> bool:
        inm = self.headers.get("If-None-Match")
        if route.etag is not None and inm is not None:
            return inm == route.etag
        ims = self.headers.get("If-Modified-Since")
        return route.last_modified is not None and ims == route.last_modified

    def _validators(self, route: Route) -> None:
        if route.etag is not None:
            self.send_header("ETag", route.etag)
        if route.last_modified is not None:
            self.send_header("Last-Modified", route.last_modified)

    def _headers(self, route: Route) -> None:
        self._validators(route)
        if route.content_type:
            self.send_header("Content-Type", route.content_type)
        if route.location is not None:
            target = route.location
            if target.startswith("/"):
                target = self.server.feeds.url(target)
            self.send_header("Location", target)
        size = route.stream_bytes if route.stream_bytes is not None else len(route.body)
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
        elif route.declare_length:
            self.send_header("Content-Length", str(size))
        for name, value in route.headers.items():
            self.send_header(name, value)

    def _body(self, route: Route) -> None:
        for chunk in _chunks(route):
            framed = b"%x\r\n%s\r\n" % (len(chunk), chunk) if route.chunked else chunk
            self.wfile.write(framed)
            self.wfile.flush()
            route.sent += len(chunk)
            if route.dribble:
                time.sleep(route.dribble)
        if route.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


def _chunks(route: Route) -> Iterator[bytes]:
    if route.stream_bytes is None:
        body = route.body
        for start in range(0, len(body), route.chunk_size):
            yield body[start : start + route.chunk_size]
        return
    block = b"x" * route.chunk_size
    remaining = route.stream_bytes
    while remaining > 0:
        yield block[:remaining]
        remaining -= len(block)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feeds: FeedServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.feeds = feeds


@contextmanager
def serve() -> Iterator[FeedServer]:
    """Run a :class:`FeedServer` in a background thread for the ``with`` block."""
    feeds = FeedServer()
    server = _Server(feeds)
    host, port = server.server_address[:2]
    feeds.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield feeds
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
