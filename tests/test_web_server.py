"""The guarded HTTP server over real sockets: slow request heads are cut off,
idle keep-alive connections are closed, the connection cap answers 503 at
accept, /healthz answers while slow clients hang on, and exhaustion is
logged once per interval."""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest

from kabarfeed.config import Config
from kabarfeed.store import Database
from kabarfeed.web import create_app
from kabarfeed.web.server import (
    FD_RESERVE,
    ExhaustionFilter,
    OncePerInterval,
    ServerLimits,
    WebServer,
    connection_cap,
    server_config,
)
from uvicorn_support import ServerThread

WAIT = 20.0
"""Generous bound for "is closed eventually" (never a speed assertion)."""


class Running(ServerThread):
    """The real app behind :class:`WebServer` on 127.0.0.1:0 in a thread."""

    def __init__(self, config: Config, db: Database, now: datetime, limits: ServerLimits) -> None:
        app = create_app(config, db, clock=lambda: now)
        settings = server_config(
            app, host="127.0.0.1", port=0, limits=limits, log_level="warning", lifespan="off"
        )
        super().__init__(WebServer(settings))

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        return sock

    def healthz(self) -> bytes:
        with self.connect() as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (``socket.timeout`` if it never does)."""
    out = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return out
        out += piece


LIMITS = ServerLimits(header_timeout=1.0, keep_alive=1.0, max_connections=500, log_interval=60)


@pytest.fixture
def running(make_config: object, db: Database, fixed_now: datetime) -> Iterator[Running]:
    config = make_config()  # type: ignore[operator]
    with Running(config, db, fixed_now, LIMITS) as server:
        yield server


def test_slow_request_heads_are_closed_and_healthz_answers_meanwhile(running: Running) -> None:
    slow = [running.connect() for _ in range(60)]
    for sock in slow:
        sock.sendall(b"GET /heal")  # half a request line, never finished
    assert running.healthz().startswith(b"HTTP/1.1 200")
    for sock in slow:
        with sock:
            answer = read_all(sock)  # socket.timeout (a failure) if never closed
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_the_server_installs_the_exhaustion_filter(running: Running) -> None:
    for name in ("asyncio", "uvicorn.error"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, ExhaustionFilter) for f in filters) == 1


def test_a_silent_connection_is_closed(running: Running) -> None:
    with running.connect() as sock:
        assert read_all(sock) == b""


def test_the_next_request_head_is_timed_too(running: Running) -> None:
    with running.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost")  # then stalls
        rest = read_all(sock)
        assert b"HTTP/1.1 200" not in rest


def test_a_stalled_body_is_cut_off_without_a_traceback(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running.connect() as sock:
        sock.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nemail=a"
        )
        answer = read_all(sock)  # socket.timeout (a failure) if never closed
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert running.healthz().startswith(b"HTTP/1.1 200")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_slow_but_steady_head_still_times_out(running: Running) -> None:
    with running.connect() as sock:
        sock.settimeout(WAIT)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 100
        closed = False
        for byte in request:  # one byte every 50 ms: each piece arrives well in time
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
        if not closed:
            assert not read_all(sock).startswith(b"HTTP/1.1 200")


def test_connection_cap_answers_503_at_accept_and_logs_once(
    make_config: object, db: Database, fixed_now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config()  # type: ignore[operator]
    limits = replace(LIMITS, header_timeout=60.0, max_connections=3)
    caplog.set_level(logging.WARNING, logger="kabarfeed.web.server")
    with Running(config, db, fixed_now, limits) as server:
        held = [server.connect() for _ in range(3)]
        for sock in held:
            sock.sendall(b"G")
        time.sleep(0.2)  # let the server accept them (ordering, not a timing assertion)
        refused = []
        for _ in range(4):
            with server.connect() as extra:
                refused.append(read_all(extra))
        for sock in held:
            sock.close()
    assert all(r.startswith(b"HTTP/1.1 503") for r in refused), refused
    cap_logs = [r for r in caplog.records if "connection cap" in r.getMessage()]
    assert len(cap_logs) == 1


def test_cap_stays_under_the_descriptor_limit() -> None:
    assert connection_cap(2048, 1024) == 1024 - FD_RESERVE
    assert connection_cap(100, 1024) == 100
    assert connection_cap(2048, None) == 2048
    assert connection_cap(2048, 10) == 1


def test_once_per_interval_counts_what_it_holds_back() -> None:
    now = [0.0]
    once = OncePerInterval(60, clock=lambda: now[0])
    assert once.due("k") == 0
    assert once.due("k") is None
    assert once.due("k") is None
    assert once.due("other") == 0
    now[0] = 61
    assert once.due("k") == 2


def test_emfile_tracebacks_become_one_line_per_interval() -> None:
    now = [0.0]
    flt = ExhaustionFilter(OncePerInterval(60, clock=lambda: now[0]))

    def record(exc: BaseException | None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord(
            "asyncio",
            logging.ERROR,
            __file__,
            1,
            "socket.accept() out of system resource",
            (),
            info,
        )

    emfile = OSError(errno.EMFILE, "Too many open files")
    wrapped = RuntimeError("request failed")
    wrapped.__cause__ = emfile
    first = record(emfile)
    assert flt.filter(first) and first.exc_info is None
    assert "Too many open files" in first.getMessage()
    assert not any(flt.filter(record(emfile)) for _ in range(100))
    assert not flt.filter(record(wrapped))
    plain = record(ValueError("unrelated"))
    assert flt.filter(plain) and plain.exc_info is not None
    now[0] = 61
    again = record(emfile)
    assert flt.filter(again) and "101 more" in again.getMessage()
