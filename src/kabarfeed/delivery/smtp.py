"""SMTP transport: a pool of persistent connections with a lean, pipelining
transaction path.

Each connection is opened, secured (implicit TLS or STARTTLS) and
authenticated by aiosmtplib; the established session is then handed to
:class:`_Wire`, a small reply reader that sends ``MAIL``, ``RCPT`` and ``DATA``
as one pipelined group when the server advertises ``PIPELINING`` (RFC 2920),
one by one otherwise, and writes the message bytes as they are (already CRLF
and dot-stuffed here with two C-speed passes — no per-message MIME parsing).

Connections are reused for many messages and replaced after
``max_per_connection`` messages or after any connection-level fault. Replies
are classified per recipient (4xx temporary, 5xx permanent); faults of the
connection itself — refused, reset mid-DATA, timeout, TLS or AUTH failure,
``421`` — are reported as :attr:`ResultKind.CONNECTION` and never blamed on
the recipient. After a fault the pool waits (exponential backoff) before it
connects again. One :class:`RateLimiter` paces every connection together.

Every step waits as long as RFC 5321 section 4.5.3.2 recommends (each
configurable under ``[smtp]``): connect and greeting 5 min, MAIL 5 min, RCPT
5 min, the ``354`` to DATA 2 min, the message data reaching the network 3 min,
the reply to the final dot 10 min. A timeout or a dropped connection *after*
the whole message, final dot included, reached the network is
:attr:`ResultKind.UNKNOWN`: the server may have accepted it, so it must not be
retried as if it had not (see :mod:`kabarfeed.delivery.outbox`). Before that
point a fault is a plain connection fault: the server cannot have the message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

import aiosmtplib

from kabarfeed.config import SmtpConfig
from kabarfeed.delivery.outbox import ResultKind, SendResult
from kabarfeed.delivery.ratelimit import RateLimiter

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
Sleep = Callable[[float], Awaitable[None]]
_CONNECTION_ERRORS = (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError)
_MAX_REPLY = 32 * 1024
_UNSAFE_ADDRESS = re.compile(r"[\x00-\x20\x7f<>]")
_LINE_ENDS = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Plain connection settings (the password already taken out of its SecretStr)."""

    host: str
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: str = ""
    timeout: float = 300.0
    """EHLO, STARTTLS, AUTH, RSET, QUIT."""
    ca_file: Path | None = None
    verify_tls: bool = True
    pool_size: int = 4
    max_per_connection: int = 100
    helo: str = ""
    reconnect_base: float = 1.0
    reconnect_max: float = 60.0
    greeting_timeout: float = 300.0
    mail_timeout: float = 300.0
    rcpt_timeout: float = 300.0
    data_timeout: float = 120.0
    data_block_timeout: float = 180.0
    data_end_timeout: float = 600.0

    @classmethod
    def from_config(cls, cfg: SmtpConfig) -> SmtpSettings:
        """Settings from ``[smtp]``."""
        return cls(
            cfg.host,
            cfg.port,
            cfg.security,
            cfg.username,
            cfg.password.get_secret_value(),
            cfg.timeout.total_seconds(),
            cfg.ca_file,
            cfg.verify_tls,
            cfg.pool_size,
            cfg.max_per_connection,
            cfg.helo,
            cfg.reconnect_base.total_seconds(),
            cfg.reconnect_max.total_seconds(),
            cfg.greeting_timeout.total_seconds(),
            cfg.mail_timeout.total_seconds(),
            cfg.rcpt_timeout.total_seconds(),
            cfg.data_timeout.total_seconds(),
            cfg.data_block_timeout.total_seconds(),
            cfg.data_end_timeout.total_seconds(),
        )

    def capped(self, seconds: float) -> SmtpSettings:
        """These settings with every wait at most ``seconds``."""
        return replace(
            self,
            timeout=min(self.timeout, seconds),
            greeting_timeout=min(self.greeting_timeout, seconds),
            mail_timeout=min(self.mail_timeout, seconds),
            rcpt_timeout=min(self.rcpt_timeout, seconds),
            data_timeout=min(self.data_timeout, seconds),
            data_block_timeout=min(self.data_block_timeout, seconds),
            data_end_timeout=min(self.data_end_timeout, seconds),
        )

    def __repr__(self) -> str:
        return f"SmtpSettings({self.host}:{self.port}, {self.security}, user={self.username!r})"


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """System CAs plus ``ca_file``; verification off only when configured so."""
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def classify_reply(code: int, reply: str, *, recipient_phase: bool) -> SendResult:
    """A negative SMTP reply as an outbox result (421 is always the connection's)."""
    if code == 421 or code < 400:
        return SendResult(ResultKind.CONNECTION, code, reply)
    if code < 500:
        return SendResult(ResultKind.TEMPORARY, code, reply)
    return SendResult(ResultKind.PERMANENT, code, reply, hard_bounce=recipient_phase)


def describe(error: BaseException) -> str:
    """A short, secret-free description of a connection-level error."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"
    text = str(error) or error.__class__.__name__
    return f"{error.__class__.__name__}: {text}"[:500]


def wire_data(data: bytes) -> bytes:
    """``data`` as DATA content: CRLF line ends, dot-stuffed, ending ``.CRLF``.

    Messages built by kabarfeed are CRLF already, which three ``count`` passes
    confirm; anything else is normalised first.
    """
    crlf = data.count(b"\r\n")
    if crlf != data.count(b"\n") or crlf != data.count(b"\r"):
        data = _LINE_ENDS.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class Reply(NamedTuple):
    """One (possibly multi-line) SMTP reply."""

    code: int
    text: str


class ConnectionClosed(ConnectionError):
    """The server closed the session (the last reply, e.g. a 421, is in the text)."""


class _Wire(asyncio.Protocol):
    """Collects the replies of an established session, so pipelined commands
    can be written in one go and their replies read together."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.WriteTransport | None = None
        self._writable: asyncio.Future[None] | None = None
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._replies: deque[Reply] = deque()
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self.last: Reply | None = None

    @classmethod
    def take_over(cls, client: aiosmtplib.SMTP, timeout: float) -> _Wire:
        """Move ``client``'s established (secured, authenticated) transport to a wire."""
        transport = client.transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            raise ConnectionClosed("the session closed during setup")
        wire = cls(timeout)
        transport.set_protocol(wire)
        wire.connection_made(transport)
        # pause_writing/resume_writing now tell whether every byte written has
        # reached the socket (see :meth:`drain`)
        transport.set_write_buffer_limits(high=0, low=0)
        return wire

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Asyncio callback."""
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Asyncio callback: parse every complete reply line."""
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            self._line(bytes(buffer[start:end]).rstrip(b"\r"))
            start = end + 1
        del buffer[:start]
        if len(buffer) > _MAX_REPLY:
            self._fail(ConnectionClosed("reply line too long"))
        elif self._waiter is not None and len(self._replies) >= self._want:
            self._wake(None)

    def _line(self, line: bytes) -> None:
        self._lines.append(line)
        if line[3:4] == b"-":
            return
        lines, self._lines = self._lines, []
        if not line[:3].isdigit():
            self._fail(ConnectionClosed(f"malformed reply {line[:80]!r}"))
            return
        text = "\n".join(x[4:].decode("utf-8", "replace").strip() for x in lines)
        self.last = Reply(int(line[:3]), text)
        self._replies.append(self.last)

    def connection_lost(self, exc: Exception | None) -> None:
        """Asyncio callback."""
        last = f": {self.last.code} {self.last.text}" if self.last else ""
        error = ConnectionClosed(f"connection closed{last}")
        error.__cause__ = exc
        self.transport = None
        self._fail(error)

    def eof_received(self) -> bool:
        """Asyncio callback: close our side too."""
        return False

    def _fail(self, error: Exception) -> None:
        self._error = self._error or error
        if self.transport is not None:
            self.transport.abort()
        self._wake(self._error)
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_exception(self._error)

    def pause_writing(self) -> None:
        """Asyncio callback: bytes are waiting in the transport's buffer."""
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """Asyncio callback: the transport's buffer is empty again."""
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    async def drain(self, timeout: float) -> None:
        """Wait until every byte written has been handed to the socket, at most
        ``timeout`` seconds (the connection is dropped after that)."""
        if self._error is not None:
            raise self._error
        writable = self._writable
        if writable is None or writable.done():
            return
        loop = asyncio.get_running_loop()
        timer = loop.call_later(
            timeout, self._fail, TimeoutError(f"message data not sent within {timeout:g}s")
        )
        try:
            await asyncio.shield(writable)
        finally:
            timer.cancel()

    def _wake(self, error: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    @property
    def open(self) -> bool:
        """Whether commands can still be written."""
        return self._error is None and self.transport is not None

    def write(self, data: bytes) -> None:
        """Send bytes (commands or message content)."""
        if self._error is not None:
            raise self._error
        if self.transport is None or self.transport.is_closing():
            raise ConnectionClosed("connection closed")
        self.transport.write(data)

    async def read(self, count: int, timeout: float | None = None) -> list[Reply]:
        """The next ``count`` replies, waiting at most ``timeout`` (default: the
        wire's) for them."""
        if len(self._replies) < count:
            await self._wait(count, self.timeout if timeout is None else timeout)
        return [self._replies.popleft() for _ in range(count)]

    async def _wait(self, count: int, timeout: float) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        self._want, self._waiter = count, loop.create_future()
        timer = loop.call_later(timeout, self._expire, timeout)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _expire(self, timeout: float) -> None:
        self._fail(TimeoutError(f"no SMTP reply within {timeout:g}s"))

    def close(self) -> None:
        """Drop the socket."""
        if self.transport is not None:
            self.transport.abort()


@dataclass(frozen=True, slots=True)
class StepTimeouts:
    """Seconds to wait for each step of a transaction (RFC 5321 4.5.3.2)."""

    mail: float = 300.0
    rcpt: float = 300.0
    data: float = 120.0
    data_block: float = 180.0
    data_end: float = 600.0

    @classmethod
    def of(cls, s: SmtpSettings) -> StepTimeouts:
        """The steps' timeouts from the settings."""
        return cls(
            s.mail_timeout, s.rcpt_timeout, s.data_timeout, s.data_block_timeout, s.data_end_timeout
        )


@dataclass(frozen=True, slots=True)
class _Session:
    """An open connection: its wire and what the server advertised."""

    wire: _Wire
    pipelining: bool
    size: bool
    smtputf8: bool
    timeouts: StepTimeouts


class _Connection:
    """One pooled SMTP session; opened lazily, replaced after N messages or a fault."""

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext) -> None:
        self._settings = settings
        self._context = context
        self.session: _Session | None = None
        self.sent = 0

    @property
    def usable(self) -> bool:
        """Connected and still under its message budget."""
        return (
            self.session is not None
            and self.session.wire.open
            and self.sent < self._settings.max_per_connection
        )

    async def open(self) -> _Session:
        """Connect, secure and authenticate a fresh session (aiosmtplib), then
        take its transport over for the transactions."""
        await self.close()
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            use_tls=s.security == "tls",
            start_tls=False,
            tls_context=self._context,
            local_hostname=s.helo or None,
        )
        try:
            await client.connect(timeout=s.greeting_timeout)
            if s.security == "starttls":
                await client.starttls(tls_context=self._context)
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
            if s.username:
                await client.login(s.username, s.password)
            wire = _Wire.take_over(client, s.timeout)
        except BaseException:
            client.close()
            raise
        has = client.supports_extension
        self.session = _Session(
            wire, has("pipelining"), has("size"), has("smtputf8"), StepTimeouts.of(s)
        )
        self.sent = 0
        return self.session

    async def close(self) -> None:
        """QUIT politely when possible, else drop the socket."""
        session, self.session = self.session, None
        if session is None or not session.wire.open:
            return
        wire = session.wire
        wire.timeout = min(wire.timeout, 5.0)
        try:
            wire.write(b"QUIT\r\n")
            await wire.read(1)
        except _CONNECTION_ERRORS:
            pass
        wire.close()

    def abort(self) -> None:
        """Drop the socket at once (after a fault)."""
        session, self.session = self.session, None
        if session is not None:
            session.wire.close()


class SmtpTransport:
    """The engine's :class:`~kabarfeed.delivery.engine.Transport` over an SMTP pool."""

    name = "smtp"

    def __init__(
        self,
        settings: SmtpSettings,
        limiter: RateLimiter | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._limiter = limiter or RateLimiter()
        self._sleep = sleep
        context = tls_context(settings)
        self._idle: asyncio.LifoQueue[_Connection] = asyncio.LifoQueue()
        self._all = [_Connection(settings, context) for _ in range(settings.pool_size)]
        for conn in self._all:
            self._idle.put_nowait(conn)
        self._failures = 0
        self.connections_opened = 0
        self.transactions = 0
        self.pipelined = 0

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Deliver one message to one recipient over a pooled connection."""
        conn = await self._idle.get()
        try:
            return await self._send_on(conn, envelope_from, recipient, data)
        finally:
            self._idle.put_nowait(conn)

    async def _send_on(
        self, conn: _Connection, envelope_from: str, recipient: str, data: bytes
    ) -> SendResult:
        try:
            session = conn.session if conn.usable and conn.session else await self._connect(conn)
        except _CONNECTION_ERRORS as e:
            return self._fault(conn, e)
        await self._limiter.acquire()
        self.transactions += 1
        self.pipelined += session.pipelining
        try:
            result = await transaction(session, envelope_from, recipient, data)
        except _CONNECTION_ERRORS as e:
            return self._fault(conn, e)
        conn.sent += 1
        if result.kind in (ResultKind.CONNECTION, ResultKind.UNKNOWN):
            conn.abort()
            self._failures += 1
        else:
            self._failures = 0
        return result

    async def _connect(self, conn: _Connection) -> _Session:
        if self._failures:
            delay = min(
                self.settings.reconnect_base * 2 ** (self._failures - 1),
                self.settings.reconnect_max,
            )
            await self._sleep(delay)
        session = await conn.open()
        self.connections_opened += 1
        return session

    def _fault(self, conn: _Connection, error: BaseException) -> SendResult:
        conn.abort()
        self._failures += 1
        code = error.code if isinstance(error, aiosmtplib.SMTPResponseException) else None
        log.warning(
            "smtp %s:%s connection fault: %s",
            self.settings.host,
            self.settings.port,
            describe(error),
        )
        return SendResult(ResultKind.CONNECTION, code, describe(error))

    async def close(self) -> None:
        """QUIT every open connection."""
        await asyncio.gather(*(c.close() for c in self._all), return_exceptions=True)


def _address(session: _Session, address: str) -> bytes | None:
    """``address`` for a MAIL/RCPT command, or None when it cannot be sent safely."""
    if _UNSAFE_ADDRESS.search(address):
        return None
    if address.isascii() or session.smtputf8:
        return address.encode("utf-8")
    return None


def _commands(session: _Session, sender: bytes, recipient: bytes, size: int) -> list[bytes]:
    mail = b"MAIL FROM:<" + sender + b">"
    if session.size:
        mail += b" SIZE=%d" % size
    if not (sender + recipient).isascii():
        mail += b" SMTPUTF8"
    return [mail + b"\r\n", b"RCPT TO:<" + recipient + b">\r\n", b"DATA\r\n"]


async def _envelope(session: _Session, commands: list[bytes]) -> list[Reply]:
    """Replies to MAIL, RCPT and DATA: one pipelined group, or one by one
    (stopping at the first refusal) when the server cannot pipeline."""
    wire, t = session.wire, session.timeouts
    timeouts = (t.mail, t.rcpt, t.data)
    replies: list[Reply] = []
    if session.pipelining:
        wire.write(b"".join(commands))
        for timeout in timeouts:  # each reply has its own timer, as if sent one by one
            replies += await wire.read(1, timeout)
        return replies
    for command, ok, timeout in zip(commands, (250, 250, 354), timeouts, strict=True):
        wire.write(command)
        replies += await wire.read(1, timeout)
        if replies[-1].code not in (ok, 251):
            break
    return replies


def _refusal(replies: list[Reply]) -> SendResult | None:
    """The result of a refused MAIL, RCPT or DATA; None when DATA may follow."""
    mail = replies[0]
    if mail.code == 421 or mail.code >= 400 or mail.code < 200:
        code = mail.code if mail.code >= 400 else None
        return SendResult(ResultKind.CONNECTION, code, f"MAIL FROM refused: {mail.text}")
    if len(replies) > 1 and replies[1].code not in (250, 251):
        return classify_reply(replies[1].code, replies[1].text, recipient_phase=True)
    if len(replies) > 2 and replies[2].code != 354:
        return classify_reply(replies[2].code, replies[2].text, recipient_phase=False)
    return None


async def transaction(
    session: _Session, envelope_from: str, recipient: str, data: bytes
) -> SendResult:
    """MAIL, RCPT, DATA for one recipient; negative replies become results.

    Sender refusals are the server's or the configuration's problem, not the
    recipient's: they are reported as connection-level.
    """
    sender, rcpt = _address(session, envelope_from), _address(session, recipient)
    if sender is None:
        return SendResult(
            ResultKind.CONNECTION, None, f"unusable envelope sender {envelope_from!r}"
        )
    if rcpt is None:
        return SendResult(ResultKind.PERMANENT, None, f"unusable recipient address {recipient!r}")
    payload = wire_data(data)
    replies = await _envelope(session, _commands(session, sender, rcpt, len(data)))
    refused = _refusal(replies)
    if refused is not None:
        await _abandon(session.wire, replies)
        return refused
    wire, t = session.wire, session.timeouts
    wire.write(payload)
    await wire.drain(t.data_block)  # a fault until here: the server cannot have the message
    try:
        (done,) = await wire.read(1, t.data_end)
    except _CONNECTION_ERRORS as e:
        return SendResult(ResultKind.UNKNOWN, None, f"no reply to the final dot: {describe(e)}")
    if done.code == 250:
        return SendResult.accepted(done.code, done.text)
    return classify_reply(done.code, done.text, recipient_phase=False)


async def _abandon(wire: _Wire, replies: list[Reply]) -> None:
    """End a refused transaction: an empty message if DATA was accepted anyway
    (RFC 2920), then RSET; a session that cannot do that is dropped."""
    try:
        if len(replies) == 3 and replies[2].code == 354:
            wire.write(b".\r\n")
            await wire.read(1)
        if wire.open:
            wire.write(b"RSET\r\n")
            await wire.read(1)
    except _CONNECTION_ERRORS:
        wire.close()
