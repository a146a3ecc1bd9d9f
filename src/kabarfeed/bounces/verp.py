"""VERP envelope senders with a signed token.

``bounces@news.example.id`` becomes ``bounces+<id>-<mac>@news.example.id`` for
delivery ``<id>``; ``<mac>`` is the first 12 hex digits of an HMAC-SHA256 over
the id with the site secret. A bounce to such an address names the exact
delivery; a token whose MAC does not match is forged (or from another
installation) and is never acted on.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass

_MAC_LEN = 12
_TOKEN_RE = re.compile(r"^(\d{1,18})-([0-9a-f]{" + str(_MAC_LEN) + r"})$")


class TokenState(enum.StrEnum):
    """What an address says about VERP."""

    VALID = "valid"
    FORGED = "forged"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Decoded:
    """The outcome of reading one address; ``delivery_id`` only when valid."""

    state: TokenState
    delivery_id: int | None = None


def _mac(key: bytes, delivery_id: int) -> str:
    digest = hmac.new(key, b"kabarfeed-verp\x1f" + str(delivery_id).encode(), hashlib.sha256)
    return digest.hexdigest()[:_MAC_LEN]


def _split(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local, domain.lower()


def encode(base: str, delivery_id: int, key: bytes) -> str:
    """The envelope sender for ``delivery_id`` under the bounce address ``base``."""
    local, domain = _split(base)
    return f"{local}+{delivery_id}-{_mac(key, delivery_id)}@{domain}"


def decode(base: str, address: str, key: bytes) -> Decoded:
    """Read ``address`` against the bounce address ``base``.

    ``ABSENT`` when it is not a VERP form of ``base`` at all; ``FORGED`` when it
    is, but the token is malformed or its MAC does not match.
    """
    base_local, base_domain = _split(base)
    local, domain = _split(address)
    if not base_local or domain != base_domain:
        return Decoded(TokenState.ABSENT)
    prefix = base_local.lower() + "+"
    if not local.lower().startswith(prefix):
        return Decoded(TokenState.ABSENT)
    match = _TOKEN_RE.match(local[len(prefix) :].lower())
    if match is None:
        return Decoded(TokenState.FORGED)
    delivery_id = int(match[1])
    if not hmac.compare_digest(match[2], _mac(key, delivery_id)):
        return Decoded(TokenState.FORGED)
    return Decoded(TokenState.VALID, delivery_id)
