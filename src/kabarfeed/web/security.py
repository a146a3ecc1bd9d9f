"""Web security primitives: HMAC signing, signed confirmation links, CSRF
tokens, rate limits, security headers and same-origin checks.

Everything time-dependent takes ``now``; nothing reads the clock itself.
Signatures are HMAC-SHA256 (truncated to 128 bits) keyed with the site
secret and compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
"""The shape of a subscriber link token (URL-safe base64, 128+ bits)."""
_PART_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""One dot-separated part of a signed value (token, stamp or signature)."""

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""Policy of the subscription pages: no script at all, our stylesheet only."""

DIGEST_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
"""Policy of the "view in browser" digest (an email: inline CSS, remote images)."""


def static_csp(base_url: str) -> str:
    """Policy for everything else (feeds, the built index with its inline CSS)."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' https: data:; object-src 'none'; base-uri 'none'; "
        f"form-action 'self' {origin_of(base_url)}; frame-ancestors 'none'"
    )


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def looks_like_token(value: str) -> bool:
    """Whether ``value`` has the shape of a subscriber token (cheap pre-check)."""
    return bool(TOKEN_RE.match(value))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Signer:
    """HMAC-SHA256 signatures over a purpose and some text parts."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the signing key must not be empty")
        self._key = key

    def sign(self, purpose: str, *parts: str) -> str:
        """A 128-bit URL-safe signature of ``parts`` for ``purpose``."""
        message = "\x1f".join((purpose, *parts)).encode("utf-8")
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest()[:16])

    def verify(self, signature: str, purpose: str, *parts: str) -> bool:
        """Whether ``signature`` is ours for these parts (constant time)."""
        return same_token(signature, self.sign(purpose, *parts))

    def digest(self, purpose: str, value: str) -> str:
        """A keyed hash of ``value`` (for rate-limit keys that must not hold emails)."""
        return self.sign(purpose, value)


def _stamp(moment: datetime) -> str:
    return format(int(moment.timestamp()), "x")


def _unstamp(text: str) -> datetime | None:
    """The moment a stamp names; ``None`` when it is not a stamp or out of range.
    Only ever called on text whose signature was verified first."""
    if not re.fullmatch(r"[0-9a-f]{1,12}", text):
        return None
    try:
        return datetime.fromtimestamp(int(text, 16), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _split_signed(value: str, fields: int) -> list[str] | None:
    """``value`` split on dots into exactly ``fields`` parts, each of the
    URL-safe alphabet and of bounded length (a cheap shape check, no parsing)."""
    parts = value.split(".")
    if len(parts) != fields or not all(_PART_RE.fullmatch(p) for p in parts):
        return None
    return parts


# -- confirmation links ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmLink:
    """A verified confirmation link: whose, and until when it is valid."""

    subscriber_token: str
    expires: datetime

    def expired(self, now: datetime) -> bool:
        """Whether the link is past its expiry."""
        return now >= self.expires


def confirm_token(signer: Signer, subscriber_token: str, expires: datetime) -> str:
    """``<token>.<expiry>.<signature>`` for ``/confirm/...`` links."""
    stamp = _stamp(expires)
    return f"{subscriber_token}.{stamp}.{signer.sign('confirm', subscriber_token, stamp)}"


def parse_confirm_token(signer: Signer, value: str) -> ConfirmLink | None:
    """The link behind ``value``; ``None`` when malformed or not signed by us.
    An expired but genuine link is returned (the page offers a new one).

    The signature is verified before any part is interpreted: nothing an
    attacker writes is parsed unless we signed it."""
    parts = _split_signed(value, 3)
    if parts is None:
        return None
    token, stamp, signature = parts
    if not signer.verify(signature, "confirm", token, stamp) or not looks_like_token(token):
        return None
    expires = _unstamp(stamp)
    return ConfirmLink(token, expires) if expires is not None else None


# -- CSRF --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsrfTokens:
    """Stateless CSRF tokens: ``<expiry>.<HMAC(form, binding, expiry)>``.

    ``binding`` ties a token to one context the attacker cannot know: the
    subscriber token of a link page, or the visitor's random ``kf_csrf``
    cookie on the public sign-up form.
    """

    signer: Signer
    ttl: timedelta

    def issue(self, form: str, binding: str, now: datetime) -> str:
        """A token for ``form`` valid for :attr:`ttl`."""
        stamp = _stamp(now + self.ttl)
        return f"{stamp}.{self.signer.sign('csrf', form, binding, stamp)}"

    def valid(self, token: str, form: str, binding: str, now: datetime) -> bool:
        """Whether ``token`` was issued for this form and binding and is unexpired
        (the signature is verified before the expiry is read)."""
        parts = _split_signed(token, 2)
        if parts is None or not binding:
            return False
        stamp, signature = parts
        if not self.signer.verify(signature, "csrf", form, binding, stamp):
            return False
        expires = _unstamp(stamp)
        return expires is not None and now < expires


def cross_site(headers: Mapping[str, str], own_origins: tuple[str, ...]) -> bool:
    """Whether a browser says this request comes from another site.

    ``Sec-Fetch-Site: cross-site`` is decisive when present; otherwise an
    ``Origin`` that is none of ours is cross-site. ``Origin: null`` says
    nothing (browsers send it for our own pages, whose referrer policy is
    ``no-referrer``); requests with neither header (old browsers, mail
    providers) are left to the token checks.
    """
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site:
        return fetch_site == "cross-site"
    origin = headers.get("origin", "null").lower().rstrip("/")
    return origin != "null" and origin not in own_origins


# -- rate limits ---------------------------------------------------------------------


# -- headers -------------------------------------------------------------------------


class SecurityHeaders:
    """ASGI middleware adding security headers to every response that lacks them."""

    def __init__(self, app: ASGIApp, *, csp: str) -> None:
        self.app = app
        self.defaults: tuple[tuple[bytes, bytes], ...] = tuple(
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in (
                ("content-security-policy", csp),
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "strict-origin-when-cross-origin"),
                ("cross-origin-opener-policy", "same-origin"),
                ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, adding the missing headers to ``http.response.start``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in self.defaults if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)
