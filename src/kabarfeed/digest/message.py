"""Mail headers and fast MIME serialisation, shared by digests and confirmation mails.

Everything that reaches a header passes :func:`header_text` (no CR/LF or
other control characters from data), addresses with a line break or control
character are refused, and every folded line is checked once more before it
leaves (:func:`checked_header`): a line break inside a header is only ever a
fold. Non-ASCII becomes RFC 2047 encoded words through the stdlib policy.
``List-Unsubscribe`` is folded between its URIs (the stdlib would turn a
long mailto URI into encoded words, which clients do not decode inside
``<...>``).

The serialiser writes exactly what :class:`email.message.EmailMessage` with
:data:`MAIL_POLICY` writes for the same parts (tests prove it), but from
pre-folded header lines and quoted-printable bodies encoded line by line with
a cache, so shared lines are encoded once per batch, not once per recipient.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Any, cast
from urllib.parse import urlsplit

from kabarfeed.errors import InputError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_URL_LIST_HEADERS = frozenset({"list-unsubscribe", "list-post", "list-help", "list-subscribe"})
_SIMPLE_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+/^_`{|}~ -]*$")  # atext but "=" and "?"
_MAX_LINE = 76


def header_text(value: str) -> str:
    """``value`` made safe for a header: control characters and line breaks
    become single spaces, runs of whitespace collapse, ends are trimmed."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()


def _fold_url_list(name: str, value: str, linesep: str) -> str:
    uris = [u.strip() for u in value.split(",") if u.strip()]
    line = f"{name}: "
    lines: list[str] = []
    for i, uri in enumerate(uris):
        piece = uri + ("," if i < len(uris) - 1 else "")
        if line.strip() and not line.endswith(": ") and len(line) + 1 + len(piece) > _MAX_LINE:
            lines.append(line.rstrip())
            line = " "
        line += piece if line.endswith((": ", " ")) else " " + piece
    lines.append(line.rstrip())
    return linesep.join(lines) + linesep


class _MailPolicy(EmailPolicy):
    """SMTP policy (CRLF; 76 columns, the quoted-printable limit of RFC 2045)
    that folds URL lists between URIs."""

    def fold(self, name: str, value: Any) -> str:
        if name.lower() in _URL_LIST_HEADERS:
            return _fold_url_list(name, header_text(str(value)), self.linesep)
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() in _URL_LIST_HEADERS:
            return self.fold(name, value).encode("ascii")
        return bytes(super().fold_binary(name, value))


MAIL_POLICY = _MailPolicy(linesep="\r\n", max_line_length=_MAX_LINE)
"""The policy every kabarfeed message is written with."""


_BAD_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n|\r\n(?![ \t])")


def checked_header(line: bytes) -> bytes:
    """``line`` (one folded header, CRLF-terminated) when its only line breaks
    are folds (CRLF then a space or tab) and the final CRLF; else
    :class:`InputError`: the value would have started a header of its own."""
    name = line.split(b":", 1)[0]
    if not line.endswith(b"\r\n") or _BAD_BREAK.search(line[:-2]) or not name.isascii():
        raise InputError(f"refused a {name[:40]!r} header with a line break in its value")
    return line


def fold(name: str, value: str) -> bytes:
    """One header line (folded, CRLF-terminated, encoded words for non-ASCII)."""
    folded = MAIL_POLICY.fold_binary(name, MAIL_POLICY.header_factory(name, header_text(value)))
    return checked_header(folded)


def _plain_address(addr: str) -> str:
    """``addr`` when it has no line break or control character; else :class:`InputError`
    (an address is never "cleaned": a mangled one would go somewhere else)."""
    if _CONTROL.search(addr):
        raise InputError(f"{addr[:80]!r} is not a usable email address (line break or control)")
    return addr


def address(display_name: str | None, addr: str) -> str:
    """``Name <addr>`` with the name quoted as RFC 5322 needs (or just ``addr``)."""
    name = header_text(display_name or "")
    try:
        return str(Address(display_name=name, addr_spec=_plain_address(addr).strip()))
    except (ValueError, IndexError) as e:
        raise InputError(f'"{addr}" is not a usable email address') from e


def fold_address(name: str, display_name: str | None, addr: str) -> bytes:
    """A fast path for ``To``/``From``: plain ASCII names skip the stdlib parser."""
    dn = header_text(display_name or "")
    addr = _plain_address(addr)
    if (dn and not _SIMPLE_NAME.match(dn)) or not addr.isascii():
        return fold(name, address(dn, addr))
    value = f"{dn} <{addr}>" if dn else addr
    line = f"{name}: {value}"
    if len(line) > _MAX_LINE or "  " in dn:
        return fold(name, address(dn, addr))
    return checked_header((line + "\r\n").encode("ascii"))


def site_domain(base_url: str) -> str:
    """The host of ``base_url`` (no port), for Message-ID and List-Id."""
    return (urlsplit(base_url).hostname or "localhost").lower()


def deterministic_message_id(key: bytes, domain: str, *parts: str) -> str:
    """``<hash@domain>`` from ``parts`` (HMAC-SHA256 keyed with ``key``): the same
    edition always carries the same Message-ID, so a re-send after a crash is
    recognisable, and the id reveals nothing about the subscriber."""
    digest = hmac.new(key, "\x1f".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"<{digest[:32]}@{domain}>"


def list_unsubscribe(unsubscribe_url: str, mailto: str, token: str) -> str:
    """The ``List-Unsubscribe`` value: the one-click URL and a mailto fallback."""
    return f"<{unsubscribe_url}>, <mailto:{mailto}?subject=unsubscribe-{token}>"


def format_date_header(moment: datetime) -> str:
    """RFC 5322 date (``Mon, 17 Nov 2025 06:00:00 +0000``)."""
    return format_datetime(moment)


def boundary_for(message_id: str) -> str:
    """A MIME boundary that cannot occur in quoted-printable text (``=_`` never does)."""
    return "=_kf_" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:16]


class QPCache:
    """Quoted-printable encoding (exactly :func:`email.quoprimime.body_encode`)
    of text line by line, remembering lines already encoded."""

    def __init__(self, limit: int = 200_000) -> None:
        self._lines: dict[bytes, bytes] = {}
        self._limit = limit

    def line(self, raw: bytes) -> bytes:
        """One encoded line including its CRLF."""
        hit = self._lines.get(raw)
        if hit is None:
            hit = _qp_line(raw)
            if len(self._lines) >= self._limit:
                self._lines.clear()
            self._lines[raw] = hit
        return hit

    def lines(self, raws: Iterable[bytes]) -> list[bytes]:
        """Several encoded lines."""
        return [self.line(r) for r in raws]

    def encode(self, text: str) -> bytes:
        """A whole body: UTF-8, CRLF line ends, quoted-printable."""
        return b"".join(self.lines(text.encode("utf-8").splitlines()))


def _qp_line(raw: bytes) -> bytes:
    encoded = quoprimime.body_encode(raw.decode("latin-1") + "\n", _MAX_LINE, eol="\r\n")
    return encoded.encode("ascii")


_PART_HEAD = (
    b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: '
    b"quoted-printable\r\n%s\r\n"
)


def serialize(
    headers: Sequence[bytes],
    boundary: str,
    text_qp: bytes,
    html_qp: bytes | None,
    *,
    trailer: Sequence[bytes] = (),
) -> bytes:
    """A complete message from folded header lines and encoded bodies.

    With ``html_qp`` it is multipart/alternative (text first, then HTML),
    otherwise a single text/plain part. ``trailer`` holds folded ``Content-*``
    headers of the whole message (e.g. ``Content-Language``), written after
    ``Content-Type`` as the stdlib does.
    """
    head = b"".join(headers) + b"MIME-Version: 1.0\r\n"
    tail = b"".join(trailer)
    if html_qp is None:
        return head + _PART_HEAD % (b"plain", tail) + text_qp
    b = boundary.encode("ascii")
    return b"".join(
        (
            head,
            b'Content-Type: multipart/alternative; boundary="',
            b,
            b'"\r\n',
            tail,
            b"\r\n--",
            b,
            b"\r\n",
            _PART_HEAD % (b"plain", b""),
            text_qp,
            b"\r\n--",
            b,
            b"\r\n",
            _PART_HEAD % (b"html", b""),
            html_qp,
            b"\r\n--",
            b,
            b"--\r\n",
        )
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    """The addressing of one message (everything but the bodies)."""

    from_name: str
    from_address: str
    to_name: str | None
    to_address: str
    subject: str
    date: datetime
    message_id: str
    reply_to: str = ""
    extra: tuple[tuple[str, str], ...] = ()


def _is_content(name: str) -> bool:
    return name.lower().startswith("content-")


def envelope_headers(env: Envelope) -> list[bytes]:
    """Folded header lines for ``env`` in kabarfeed's order (no ``Content-*``)."""
    lines = [
        fold_address("From", env.from_name, env.from_address),
        fold_address("To", env.to_name, env.to_address),
        fold("Subject", env.subject),
        fold("Date", format_date_header(env.date)),
        fold("Message-ID", env.message_id),
    ]
    if env.reply_to:
        lines.append(fold("Reply-To", env.reply_to))
    lines.extend(fold(name, value) for name, value in env.extra if not _is_content(name))
    return lines


def content_headers(env: Envelope) -> list[bytes]:
    """The folded ``Content-*`` extras of ``env`` (e.g. ``Content-Language``)."""
    return [fold(name, value) for name, value in env.extra if _is_content(name)]


def build_message(env: Envelope, text: str, html: str | None = None) -> bytes:
    """A complete, ready-to-send message (e.g. a confirmation mail)."""
    cache = QPCache()
    html_qp = cache.encode(html) if html is not None else None
    return serialize(
        envelope_headers(env),
        boundary_for(env.message_id),
        cache.encode(text),
        html_qp,
        trailer=content_headers(env),
    )


def reference_message(env: Envelope, text: str, html: str | None = None) -> bytes:
    """The same message built the plain way, with :class:`EmailMessage`.

    Slow; used by tests and the benchmark to prove :func:`build_message` and
    the batch renderer write identical bytes.
    """
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = address(env.from_name, env.from_address)
    msg["To"] = address(env.to_name, env.to_address)
    msg["Subject"] = header_text(env.subject)
    msg["Date"] = format_date_header(env.date)
    msg["Message-ID"] = env.message_id
    if env.reply_to:
        msg["Reply-To"] = env.reply_to
    for name, value in env.extra:
        if not _is_content(name):
            msg[name] = header_text(value)
    msg["MIME-Version"] = "1.0"
    if html is None:
        msg.set_content(text, cte="quoted-printable")
    else:
        msg.make_alternative()
        msg.set_boundary(boundary_for(env.message_id))
        for body, subtype in ((text, "plain"), (html, "html")):
            part = MIMEPart(policy=MAIL_POLICY)
            part.set_content(body, subtype=subtype, cte="quoted-printable")
            msg.attach(cast(EmailMessage, part))  # typeshed wants EmailMessage
    for name, value in env.extra:
        if _is_content(name):
            msg[name] = header_text(value)
    return msg.as_bytes()
