"""The HTTP server: uvicorn (h11) with guards against slow and greedy clients.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but
has no timeout for reading a request head: a client that opens a connection
and never finishes its request line and headers holds a file descriptor for
ever, and a few thousand of them exhaust the process. Its
``limit_concurrency`` only answers 503 once a request head is complete, so
it does not help against them either. :class:`GuardedH11Protocol` adds both:

* **head timeout** — a timer armed whenever the connection waits for a
  request head (on connect, and again after each response) and disarmed when
  the head is complete; when it fires the connection is closed (with a 408
  when part of a request had arrived). The head has one deadline: dribbling
  a byte at a time does not extend it;
* **body idle timeout** — while a request body is being received, the same
  timeout bounds each wait for the next piece (not the whole upload), unless
  it is the application that is behind (reading paused);
* **connection cap** — a connection beyond ``max_connections`` is answered
  503 at once and closed, so the cap holds at accept time. The cap is also
  kept under the process's file-descriptor limit (:func:`connection_cap`).

Resource exhaustion (refused connections, ``EMFILE`` and friends from
``accept`` or from a request) is logged once per interval with a count
(:class:`OncePerInterval`, :class:`ExhaustionFilter`), never as one
traceback per connection.

Hypercorn was considered (it has a read timeout), but uvicorn is what the
service embeds, reloads and shuts down today; the missing timer is a small,
contained subclass of its h11 protocol.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from kabarfeed.config import WebConfig

log = logging.getLogger(__name__)

FD_RESERVE = 128
"""File descriptors kept free of client connections (database, files, SMTP)."""
EXHAUSTION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 12\r\nRetry-After: 1\r\nConnection: close\r\n\r\nserver busy\n"
)
_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n"
)


def connection_cap(configured: int, fd_limit: int | None) -> int:
    """The connection cap in force: ``configured``, but never so high that
    client connections could take the descriptors the rest of the process
    needs (``fd_limit`` minus :data:`FD_RESERVE`; ``None``: unlimited). Pure."""
    if fd_limit is None:
        return configured
    return max(1, min(configured, fd_limit - FD_RESERVE))


def fd_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` of this process (``None`` when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How long a client may take, and how many may be connected."""

    header_timeout: float
    keep_alive: float
    max_connections: int
    log_interval: float = 60.0

    @classmethod
    def from_config(cls, web: WebConfig) -> ServerLimits:
        """The limits of ``[web]`` (the cap lowered to the descriptor limit)."""
        return cls(
            header_timeout=web.header_timeout.total_seconds(),
            keep_alive=web.keep_alive.total_seconds(),
            max_connections=connection_cap(web.max_connections, fd_limit()),
        )


class OncePerInterval:
    """Say something at most once per ``interval`` per key; count the rest."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str) -> int | None:
        """``None`` when this event is to stay quiet (it is counted); else the
        number of events held back since the last time it was said."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)

    def warn(self, logger: logging.Logger, key: str, message: str) -> None:
        """Log ``message`` as a warning when due, with the held-back count."""
        held = self.due(key)
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            logger.warning("%s%s", message, more)


def exhaustion_of(exc: BaseException | None) -> OSError | None:
    """The resource-exhaustion ``OSError`` in ``exc``'s cause/context chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in EXHAUSTION_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class ExhaustionFilter(logging.Filter):
    """On the ``asyncio`` and ``uvicorn.error`` loggers: a record caused by
    resource exhaustion passes once per interval as one line without its
    traceback; the others are counted and dropped. Other records pass."""

    def __init__(self, limiter: OncePerInterval) -> None:
        super().__init__()
        self.limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged (rewritten when it is an exhaustion)."""
        exc = record.exc_info[1] if record.exc_info else None
        found = exhaustion_of(exc)
        if found is None:
            return True
        held = self.limiter.due(f"errno-{found.errno}")
        if held is None:
            return False
        more = f" ({held} more since the last report)" if held else ""
        record.msg = (
            "resource exhaustion: %s (%s)%s; raise LimitNOFILE or lower [web] max_connections"
        )
        record.args = (found.strerror or str(found), record.getMessage(), more)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTERED_LOGGERS = ("asyncio", "uvicorn.error")


def install_exhaustion_filter(limiter: OncePerInterval) -> None:
    """Put one :class:`ExhaustionFilter` on the loggers that report accept
    and request failures (replacing an earlier one)."""
    for name in _FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ExhaustionFilter)]:
            logger.removeFilter(old)
        logger.addFilter(ExhaustionFilter(limiter))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout and a connection cap
    (see the module docs). Made per server by :func:`guarded_protocol`."""

    limits: ClassVar[ServerLimits]
    reports: ClassVar[OncePerInterval]
    _timer: asyncio.TimerHandle | None = None
    _timer_state: type[h11.IDLE] | type[h11.SEND_BODY] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse a connection over the cap; else start the head timer."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.reports.warn(
                log,
                "connections",
                f"connection cap reached ({self.limits.max_connections}): "
                "new connections are answered 503",
            )
            transport.write(_BUSY)
            transport.close()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        """Feed h11, then re-check what the connection waits for."""
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        """After a response the next request head is awaited (timer again)."""
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._stop_timer()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arm the timer for what the client owes us: a head (one deadline)
        or the next piece of a body (re-armed on every piece)."""
        state = self.conn.their_state
        if self.transport.is_closing() or state not in (h11.IDLE, h11.SEND_BODY):
            self._stop_timer()
            return
        if state is h11.IDLE and self._timer_state is h11.IDLE and self._timer is not None:
            return
        self._stop_timer()
        self._timer_state = state
        self._timer = self.loop.call_later(self.limits.header_timeout, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_state = None

    def _timed_out(self) -> None:
        waited_for = self._timer_state
        self._timer = None
        self._timer_state = None
        state = self.conn.their_state
        if self.transport.is_closing() or state is not waited_for or self.flow.read_paused:
            self._watch()  # moved on, or the application is the slow one
            return
        if state is h11.SEND_BODY:
            self._hang_up("slow-body", "a request body stalled for", respond=self._no_response())
        else:
            partial, _ = self.conn.trailing_data
            self._hang_up("slow-head", "no complete request head within", respond=bool(partial))

    def _no_response(self) -> bool:
        return self.cycle is None or not self.cycle.response_started

    def _hang_up(self, key: str, what: str, *, respond: bool) -> None:
        """Close the connection, with a 408 when the client is owed an answer."""
        if respond:
            self.transport.write(_TIMEOUT)
        self.reports.warn(
            log,
            key,
            f"closed a connection: {what} {self.limits.header_timeout:g}s (slow or idle client)",
        )
        self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """A protocol class bound to ``limits`` (uvicorn instantiates it per connection)."""
    reports = OncePerInterval(limits.log_interval)
    return type(
        "KabarfeedHTTPProtocol", (GuardedH11Protocol,), {"limits": limits, "reports": reports}
    )


def server_config(
    app: Any, *, host: str, port: int, limits: ServerLimits, **options: Any
) -> uvicorn.Config:
    """A uvicorn config serving ``app`` with the guarded protocol and ``limits``."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        timeout_keep_alive=max(1, math.ceil(limits.keep_alive)),
        **options,
    )


class WebServer(uvicorn.Server):
    """uvicorn's server that installs the exhaustion log filter when it starts."""

    async def serve(self, sockets: Any = None) -> None:
        """Serve (see :meth:`uvicorn.Server.serve`), exhaustion logged once per interval."""
        limits = getattr(self.config.http, "limits", None)
        interval = limits.log_interval if isinstance(limits, ServerLimits) else 60.0
        install_exhaustion_filter(OncePerInterval(interval))
        if isinstance(limits, ServerLimits):
            log.info(
                "web limits: %d connections, request head within %gs, keep-alive %gs",
                limits.max_connections,
                limits.header_timeout,
                limits.keep_alive,
            )
        await super().serve(sockets=sockets)
