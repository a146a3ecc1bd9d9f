"""SMTP transport: a pool of persistent aiosmtplib connections.

Each connection is reused for many messages and replaced after
``max_per_connection`` messages or after any connection-level fault. Replies
are classified per recipient (4xx temporary, 5xx permanent); faults of the
connection itself — refused, reset mid-DATA, timeout, TLS or AUTH failure,
``421`` — are reported as :attr:`ResultKind.CONNECTION` and never blamed on
the recipient. After a fault the pool waits (exponential backoff) before it
connects again. One :class:`RateLimiter` paces every connection together.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosmtplib

from kabarfeed.config import SmtpConfig
from kabarfeed.delivery.outbox import ResultKind, SendResult
from kabarfeed.delivery.ratelimit import RateLimiter

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
Sleep = Callable[[float], Awaitable[None]]
_CONNECTION_ERRORS = (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Plain connection settings (the password already taken out of its SecretStr)."""

    host: str
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    ca_file: Path | None = None
    verify_tls: bool = True
    pool_size: int = 4
    max_per_connection: int = 100
    helo: str = ""
    reconnect_base: float = 1.0
    reconnect_max: float = 60.0

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


class _Connection:
    """One pooled SMTP session; opened lazily, replaced after N messages or a fault."""

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext) -> None:
        self._settings = settings
        self._context = context
        self.client: aiosmtplib.SMTP | None = None
        self.sent = 0

    @property
    def usable(self) -> bool:
        """Connected and still under its message budget."""
        return (
            self.client is not None
            and self.client.is_connected
            and self.sent < self._settings.max_per_connection
        )

    async def open(self) -> aiosmtplib.SMTP:
        """Connect, secure and authenticate a fresh session."""
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
        self.client = client
        await client.connect()
        if s.security == "starttls":
            await client.starttls(tls_context=self._context)
        if s.username:
            await client.login(s.username, s.password)
        self.sent = 0
        return client

    async def close(self) -> None:
        """QUIT politely when possible, else drop the socket."""
        client, self.client = self.client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit(timeout=min(self._settings.timeout, 5.0))
        except _CONNECTION_ERRORS:
            client.close()

    def abort(self) -> None:
        """Drop the socket at once (after a fault)."""
        client, self.client = self.client, None
        if client is not None:
            client.close()


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
            client = conn.client if conn.usable and conn.client else await self._connect(conn)
        except _CONNECTION_ERRORS as e:
            return self._fault(conn, e)
        await self._limiter.acquire()
        try:
            result = await _transaction(client, envelope_from, recipient, data)
        except _CONNECTION_ERRORS as e:
            return self._fault(conn, e)
        conn.sent += 1
        if result.kind is ResultKind.CONNECTION:
            conn.abort()
            self._failures += 1
        else:
            self._failures = 0
        return result

    async def _connect(self, conn: _Connection) -> aiosmtplib.SMTP:
        if self._failures:
            delay = min(
                self.settings.reconnect_base * 2 ** (self._failures - 1),
                self.settings.reconnect_max,
            )
            await self._sleep(delay)
        client = await conn.open()
        self.connections_opened += 1
        return client

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


async def _transaction(
    client: aiosmtplib.SMTP, envelope_from: str, recipient: str, data: bytes
) -> SendResult:
    """MAIL, RCPT, DATA for one recipient; negative replies become results.

    Sender refusals are the server's or the configuration's problem, not the
    recipient's: they are reported as connection-level.
    """
    options = [f"SIZE={len(data)}"] if client.supports_extension("size") else []
    try:
        await client.mail(envelope_from, options=options)
    except aiosmtplib.SMTPResponseException as e:
        await _reset(client)
        return SendResult(ResultKind.CONNECTION, e.code, f"MAIL FROM refused: {e.message}")
    try:
        await client.rcpt(recipient)
    except aiosmtplib.SMTPResponseException as e:
        await _reset(client)
        return classify_reply(e.code, e.message, recipient_phase=True)
    try:
        response = await client.data(data)
    except aiosmtplib.SMTPResponseException as e:
        await _reset(client)
        return classify_reply(e.code, e.message, recipient_phase=False)
    return SendResult.accepted(response.code, response.message)


async def _reset(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.rset()
    except _CONNECTION_ERRORS:
        client.close()
