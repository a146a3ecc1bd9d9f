"""An in-process aiosmtpd server on port 0 with scriptable faults.

The server runs on its own event loop in a background thread, so both sync
tests and asyncio tests (and subprocesses) can talk to it. Faults are decided
by counters, never by wall-clock time:

- ``defer_first``: recipients that get ``451`` on their first RCPT;
- ``defer_always``: recipients that always get ``451`` at RCPT;
- ``reject``: recipients that always get ``550`` at RCPT;
- ``shutdown_at``: MAIL command numbers (1-based, server-wide) answered with
  ``421`` after which the server closes the connection;
- ``drop_data_at``: DATA numbers at which the connection is cut before any reply
  (the message is not accepted);
- ``stall_data``: DATA never answers (until the server stops) — for timeouts;
- ``max_per_connection``: MAIL beyond this many in one session gets ``421`` + close;
- ``script``: per recipient and attempt (the n-th RCPT for that address), one
  :class:`Act` — accept, ``421`` and close, ``451``, ``550``, drop mid-DATA
  (after some content, before the final dot), drop after the final dot (the
  message is stored, no reply), stall before the final dot (at RCPT) or after
  it (stored, the reply comes ``stall`` seconds later). Attempts beyond the
  script are accepted; ``plan`` (a function of address and attempt) is used
  for recipients without a script;
- ``dot_delay``: seconds before every reply to the final dot (a slow relay; the
  message is accepted).

Every message the server *stored* is in ``received`` (``replied`` tells
whether its ``250`` was sent — a stored message whose reply never left is the
one a client must treat as an unknown outcome).
- ``tls``: ``"starttls"`` (required before MAIL) or ``"tls"`` (implicit) with a
  self-signed certificate made at test time (:func:`make_certificate`);
- ``auth``: ``{user: password}``, with ``auth_mechanisms`` (``PLAIN``/``LOGIN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import ssl
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

import tls_support

ALL_MECHANISMS = ("PLAIN", "LOGIN")
_SERIALS = itertools.count(1)


def _key(session: Session) -> int:
    """A unique number per session (``id()`` is reused once a session is freed)."""
    if not hasattr(session, "kf_serial"):
        session.kf_serial = next(_SERIALS)  # type: ignore[attr-defined]
    return int(session.kf_serial)  # type: ignore[attr-defined]


class Act(enum.StrEnum):
    """What the server does with one recipient's attempt."""

    ACCEPT = "accept"
    CLOSE_421 = "421-close"
    """``421`` to RCPT, then the connection is closed."""
    DEFER_451 = "451"
    REJECT_550 = "550"
    DROP_MID_DATA = "drop-mid-data"
    """The connection is cut after the first line of content: nothing stored."""
    DROP_AFTER_DOT = "drop-after-dot"
    """The message is stored, then the connection is cut without a reply."""
    STALL_BEFORE_DOT = "stall-before-dot"
    """RCPT is answered only after ``stall`` seconds (nothing stored)."""
    STALL_MID_DATA = "stall-mid-data"
    """After ``354`` the server stops reading for ``stall`` seconds, then hangs up
    (nothing stored): a large message cannot leave the client."""
    STALL_AFTER_DOT = "stall-after-dot"
    """The message is stored; its ``250`` comes ``stall`` seconds later."""


STORING = frozenset({Act.ACCEPT, Act.DROP_AFTER_DOT, Act.STALL_AFTER_DOT})
"""Acts after which the server holds the message."""


@dataclass(frozen=True)
class Received:
    """One message the server accepted (stored)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int
    tls: bool
    user: str | None
    act: Act = Act.ACCEPT
    """``DROP_AFTER_DOT``/``STALL_AFTER_DOT``: stored, but the reply may never have arrived."""


@dataclass
class Faults:
    """What the server does wrong (see the module docstring)."""

    defer_first: set[str] = field(default_factory=set)
    defer_always: set[str] = field(default_factory=set)
    reject: set[str] = field(default_factory=set)
    shutdown_at: set[int] = field(default_factory=set)
    drop_data_at: set[int] = field(default_factory=set)
    stall_data: bool = False
    max_per_connection: int | None = None
    reject_reply: str = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    """The reply to RCPT for ``reject`` (5.1.x: the address does not exist)."""
    script: dict[str, list[Act]] = field(default_factory=dict)
    plan: Callable[[str, int], Act] | None = None
    stall: float = 1.0
    dot_delay: float = 0.0

    def act(self, address: str, attempt: int) -> Act:
        """The scripted act for ``address``'s ``attempt``-th RCPT (1-based)."""
        steps = self.script.get(address)
        if steps is not None:
            return steps[attempt - 1] if attempt <= len(steps) else Act.ACCEPT
        return self.plan(address, attempt) if self.plan is not None else Act.ACCEPT


def make_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate (also usable as the client's CA file) and its key."""
    return tls_support.self_signed(folder, "smtp", "kabarfeed test SMTP", host=host, days=2)


class _Handler:
    def __init__(self, server: ScriptedSMTPServer) -> None:
        self.s = server

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.s.pipelining:  # aiosmtpd reads commands in order, so it can pipeline
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        s = self.s
        with s.lock:
            s.mail_count += 1
            number = s.mail_count
            s.per_session[_key(session)] += 1
            in_session = s.per_session[_key(session)]
        limit = s.faults.max_per_connection
        if number in s.faults.shutdown_at or (limit is not None and in_session > limit):
            s.shutdowns += 1
            asyncio.get_running_loop().call_soon(_close, smtp)
            return "421 4.3.2 Service shutting down, closing transmission channel"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        s = self.s
        with s.lock:
            s.rcpt_attempts[address] += 1
            attempt = s.rcpt_attempts[address]
        act = s.faults.act(address, attempt)
        with s.lock:
            s.acts.append((address, attempt, act))
        session.kf_act = act  # type: ignore[attr-defined]
        if act is Act.CLOSE_421:
            asyncio.get_running_loop().call_soon(_close, smtp)
            return "421 4.3.2 Service shutting down, closing transmission channel"
        if act is Act.DEFER_451:
            return "451 4.3.0 Try again later"
        if act is Act.REJECT_550:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if act is Act.STALL_BEFORE_DOT:
            await _sleep_unless_stopped(s, s.faults.stall)
            return "451 4.3.0 stalled"
        if address in s.faults.reject:
            return s.faults.reject_reply.format(address=address)
        if address in s.faults.defer_always or (address in s.faults.defer_first and attempt == 1):
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        s = self.s
        with s.lock:
            s.data_count += 1
            number = s.data_count
        if s.faults.stall_data:
            await s.stop_event.wait()
            return "451 4.3.0 stalled"
        if number in s.faults.drop_data_at:
            if smtp.transport is not None:
                smtp.transport.abort()
            return "451 4.3.0 connection dropped"
        act = getattr(session, "kf_act", Act.ACCEPT)
        content = envelope.original_content or b""
        with s.lock:
            s.received.append(
                Received(
                    envelope.mail_from or "",
                    tuple(envelope.rcpt_tos),
                    content,
                    s.connection_ids.setdefault(_key(session), len(s.connection_ids) + 1),
                    session.ssl is not None,
                    s.session_user.get(_key(session)),
                    act if act in STORING else Act.ACCEPT,
                )
            )
        if act is Act.DROP_AFTER_DOT:
            s.no_reply(envelope.rcpt_tos)
            if smtp.transport is not None:
                smtp.transport.abort()
            return "451 4.3.0 connection dropped"
        if act is Act.STALL_AFTER_DOT:
            s.no_reply(envelope.rcpt_tos)  # aiosmtpd cancels this if the client hangs up
            await _sleep_unless_stopped(s, s.faults.stall)
            if smtp.transport is not None and not smtp.transport.is_closing():
                s.no_reply(envelope.rcpt_tos, -1)  # the client is still there for the 250
        elif s.faults.dot_delay:
            await _sleep_unless_stopped(s, s.faults.dot_delay)
        if act is not Act.STALL_AFTER_DOT and (
            smtp.transport is None or smtp.transport.is_closing()
        ):
            s.no_reply(envelope.rcpt_tos)  # a slow moment: the client gave up before the 250
        return f"250 2.0.0 Ok: queued as {number}"


async def _sleep_unless_stopped(server: ScriptedSMTPServer, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.stop_event.wait(), seconds)


def _close(smtp: SMTP) -> None:
    if smtp.transport is not None:
        smtp.transport.close()


class _FaultySMTP(SMTP):
    """aiosmtpd's server, able to cut a connection in the middle of DATA."""

    kf_server: ScriptedSMTPServer

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        act = getattr(self.session, "kf_act", Act.ACCEPT)
        cut = (Act.DROP_MID_DATA, Act.STALL_MID_DATA)
        if act not in cut or self.envelope is None or not self.envelope.rcpt_tos:
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")  # some content, never the final dot
        if act is Act.STALL_MID_DATA:
            await _sleep_unless_stopped(self.kf_server, self.kf_server.faults.stall)
        if self.transport is not None:
            self.transport.abort()


class ScriptedSMTPServer:
    """Start with ``with ScriptedSMTPServer(...) as server:``; ``server.port``.

    ``pipelining`` advertises PIPELINING (RFC 2920); the default is the class's
    ``PIPELINING``, which tests may switch to run both client paths.
    """

    PIPELINING = False

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        tls: str = "none",
        cert: tuple[Path, Path] | None = None,
        auth: dict[str, str] | None = None,
        auth_mechanisms: tuple[str, ...] = ALL_MECHANISMS,
        host: str = "127.0.0.1",
        pipelining: bool | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.pipelining = self.PIPELINING if pipelining is None else pipelining
        self.tls = tls
        self.cert = cert
        self.auth = auth
        self.auth_mechanisms = auth_mechanisms
        self.host = host
        self.port = 0
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.per_session: Counter[int] = Counter()
        self.connection_ids: dict[int, int] = {}
        self.session_user: dict[int, str] = {}
        self.auth_failures = 0
        self.mail_count = self.data_count = self.shutdowns = self.connections = 0
        self.acts: list[tuple[str, int, Act]] = []
        self.unreplied: Counter[str] = Counter()
        """Stored messages whose ``250`` never reached the client, per recipient."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.stop_event: asyncio.Event

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> ScriptedSMTPServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        self.stop_event = asyncio.Event()
        context = self._tls_context() if self.tls != "none" else None
        self._server = await self._loop.create_server(
            lambda: self._protocol(context),
            self.host,
            0,
            ssl=context if self.tls == "tls" else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop() -> None:
            self.stop_event.set()
            if self._server is not None:
                self._server.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _tls_context(self) -> ssl.SSLContext:
        assert self.cert is not None, "TLS needs cert=make_certificate(tmp_path)"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, self.cert))
        return context

    def _protocol(self, context: ssl.SSLContext | None) -> SMTP:
        self.connections += 1
        kwargs: dict[str, Any] = {
            "hostname": "localhost",
            "handler": _Handler(self),
            "loop": self._loop,
            "timeout": 30,
        }
        if self.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if self.auth is not None:
            excluded = [m for m in ALL_MECHANISMS if m not in self.auth_mechanisms]
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=False,
                auth_exclude_mechanism=excluded,
            )
        with warnings.catch_warnings():  # AUTH without TLS is intended here
            warnings.simplefilter("ignore", UserWarning)
            smtp = _FaultySMTP(**kwargs)
        smtp.kf_server = self
        return smtp

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.auth is not None
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.auth.get(user) == password:
                self.session_user[_key(session)] = f"{user}/{mechanism}"
                return AuthResult(success=True)
        self.auth_failures += 1
        # handled=False makes aiosmtpd answer 535; without it the client hangs.
        return AuthResult(success=False, handled=False)

    # -- inspection ----------------------------------------------------------

    def recipients(self) -> Counter[str]:
        """How many messages each recipient received."""
        with self.lock:
            return Counter(r for m in self.received for r in m.rcpt_tos)

    def no_reply(self, recipients: list[str], count: int = 1) -> None:
        """Note stored messages whose reply the client never got (or take the note back)."""
        with self.lock:
            for address in recipients:
                self.unreplied[address] += count

    def messages_for(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.received if address in m.rcpt_tos]
