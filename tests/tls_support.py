"""Certificates made at test time: self-signed TLS certificates for the
in-process servers (also usable as the client's CA file) and plain signing
certificates for webhook signatures."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def certificate(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    common_name: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    host: str | None = None,
) -> x509.Certificate:
    """A certificate for ``common_name`` signed by its own ``key``; with
    ``host`` (an IP address) it serves TLS for localhost and ``host`` and is
    its own CA."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if host is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
            ),
            critical=False,
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


def self_signed(
    folder: Path, prefix: str, common_name: str, *, host: str = "127.0.0.1", days: int = 1
) -> tuple[Path, Path]:
    """A TLS certificate for localhost / ``host`` valid ``days`` from now and
    its key, written as ``<prefix>-cert.pem`` and ``<prefix>-key.pem``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = certificate(
        key,
        common_name,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=days),
        host=host,
    )
    cert_path, key_path = folder / f"{prefix}-cert.pem", folder / f"{prefix}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
