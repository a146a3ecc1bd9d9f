"""DKIM signing of outgoing messages (dkimpy), RSA or Ed25519.

RFC 8058 requires both ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` to
be covered by a DKIM signature for one-click unsubscribe to be honoured;
dkimpy's default header list omits the latter, so the list is explicit.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from kabarfeed.config import DkimConfig
from kabarfeed.errors import ConfigError, DeliveryError

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
    b"Content-Language",
)
"""Headers covered by the signature (those absent from a message are skipped)."""

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]


@dataclass(frozen=True, slots=True)
class DkimSigner:
    """Signs whole RFC 5322 messages for ``domain`` with ``selector``."""

    domain: str
    selector: str
    private_key: bytes
    algorithm: Algorithm = "rsa-sha256"

    @classmethod
    def from_config(cls, config: DkimConfig) -> DkimSigner | None:
        """The signer for ``[dkim]``, or ``None`` when signing is off."""
        if not config.enabled or config.key_file is None:
            return None
        key = load_private_key(config.key_file, config.algorithm)
        return cls(config.domain, config.selector, key, config.algorithm)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a ``DKIM-Signature`` header prepended."""
        present = _header_names(message)
        headers = [h for h in SIGNED_HEADERS if h.lower() in present]
        try:
            signature = dkim.sign(
                message,
                self.selector.encode(),
                self.domain.encode(),
                self.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=self.algorithm.encode(),
                include_headers=headers,
            )
        except dkim.DKIMException as e:
            raise DeliveryError(f"DKIM signing failed: {e}") from e
        return bytes(signature) + message


def _header_names(message: bytes) -> set[bytes]:
    head = message.split(b"\r\n\r\n", 1)[0]
    return {
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t") and b":" in line
    }


def load_private_key(path: Path, algorithm: Algorithm) -> bytes:
    """Read a PEM key (RSA or Ed25519) or a raw base64 Ed25519 seed, in dkimpy's form."""
    try:
        raw = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError([f"dkim.key_file: cannot read {path}: {e.strerror}"]) from e
    if algorithm == "rsa-sha256":
        if b"PRIVATE KEY-----" not in raw:
            raise ConfigError([f"dkim.key_file: {path} is not a PEM private key"])
        return raw
    return _ed25519_seed(raw, path)


def _ed25519_seed(raw: bytes, path: Path) -> bytes:
    if not raw.startswith(b"-----BEGIN"):
        return raw
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except ValueError as e:
        raise ConfigError([f"dkim.key_file: {path}: {e}"]) from e
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError([f"dkim.key_file: {path} is not an Ed25519 key"])
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed)


def dns_record(private_key_pem: bytes, algorithm: Algorithm) -> str:
    """The ``<selector>._domainkey`` TXT record value for a PEM private key."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if algorithm == "ed25519-sha256":
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(pub).decode()}"
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
