"""Pure delivery logic: outbox decisions, backoff, the global rate limiter
(fake clock), the Maildir writer and DKIM signing with generated keys."""

from __future__ import annotations

import asyncio
import email
import mailbox
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from deliveryhelpers import message_bytes
from kabarfeed.config import DkimConfig, load_config
from kabarfeed.delivery.dkim import DkimSigner, dns_record
from kabarfeed.delivery.factory import make_transport
from kabarfeed.delivery.maildir import MaildirTransport, MaildirWriter
from kabarfeed.delivery.outbox import (
    ResultKind,
    RetryPolicy,
    SendResult,
    backoff,
    decide,
)
from kabarfeed.delivery.ratelimit import RateLimiter, TokenBucket
from kabarfeed.delivery.smtp import SmtpSettings, SmtpTransport, classify_reply, wire_data
from kabarfeed.errors import ConfigError
from kabarfeed.models import DeliveryState
from tests.faketime import FakeTime

NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)
POLICY = RetryPolicy(5, timedelta(minutes=1), timedelta(minutes=10), jitter=0.2)


# -- outbox --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "expected"), [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (40, 600)]
)
def test_backoff_doubles_and_caps(attempts: int, expected: float) -> None:
    assert backoff(attempts, POLICY, lambda: 0.5).total_seconds() == expected


def test_backoff_jitter_stays_within_bounds_and_cap() -> None:
    low = backoff(2, POLICY, lambda: 0.0).total_seconds()
    high = backoff(2, POLICY, lambda: 0.999999).total_seconds()
    assert low == pytest.approx(96) and high == pytest.approx(144, rel=1e-4)
    assert backoff(9, POLICY, lambda: 0.999).total_seconds() == 600  # cap holds after jitter


def test_decide_accepted_temporary_permanent() -> None:
    sent = decide(SendResult.accepted(), 0, NOW, POLICY, lambda: 0.5)
    assert (sent.state, sent.attempts, sent.sent) == (DeliveryState.SENT, 1, True)
    temp = decide(SendResult(ResultKind.TEMPORARY, 451, "later"), 1, NOW, POLICY, lambda: 0.5)
    assert temp.state is DeliveryState.DEFERRED and temp.attempts == 2
    assert temp.next_attempt_at == NOW + timedelta(minutes=2) and temp.code == 451
    last = decide(SendResult(ResultKind.TEMPORARY, 451, "later"), 4, NOW, POLICY, lambda: 0.5)
    assert last.state is DeliveryState.FAILED and last.attempts == 5
    perm = decide(
        SendResult(ResultKind.PERMANENT, 550, "no", hard_bounce=True), 0, NOW, POLICY, lambda: 0.5
    )
    assert perm.state is DeliveryState.FAILED and perm.bounce and perm.code == 550


def test_connection_fault_is_not_an_attempt() -> None:
    dec = decide(SendResult(ResultKind.CONNECTION, 421, "bye"), 2, NOW, POLICY, lambda: 0.5)
    assert dec.state is DeliveryState.QUEUED and dec.attempts == 2 and not dec.bounce


@pytest.mark.parametrize(
    ("code", "recipient", "kind", "bounce"),
    [
        (421, True, ResultKind.CONNECTION, False),
        (450, True, ResultKind.TEMPORARY, False),
        (452, False, ResultKind.TEMPORARY, False),
        (550, True, ResultKind.PERMANENT, True),
        (554, False, ResultKind.PERMANENT, False),
    ],
)
def test_classify_reply(code: int, recipient: bool, kind: ResultKind, bounce: bool) -> None:
    result = classify_reply(code, "text", recipient_phase=recipient)
    assert (result.kind, result.hard_bounce) == (kind, bounce)


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\r\nb", b"a\r\nb\r\n.\r\n"),  # a final line end is added
        (b".x\r\n..y\r\nz.\r\n.\r\n", b"..x\r\n...y\r\nz.\r\n..\r\n.\r\n"),  # dot-stuffed
        (b"a\nb\rc\r\n.d", b"a\r\nb\r\nc\r\n..d\r\n.\r\n"),  # bare LF/CR normalised
        (b"", b"\r\n.\r\n"),
    ],
)
def test_wire_data_is_crlf_and_dot_stuffed(data: bytes, wire: bytes) -> None:
    assert wire_data(data) == wire


def test_wire_data_roundtrips_the_message() -> None:
    message = b"Subject: x\r\n\r\n.\r\n..two\r\nend\r\n"
    lines = wire_data(message)[: -len(b".\r\n")].split(b"\r\n")
    unstuffed = b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines)
    assert unstuffed == message


# -- rate limiter ----------------------------------------------------------------


async def _consumer(limiter: RateLimiter, fake: FakeTime, count: int) -> None:
    for _ in range(count):
        await limiter.acquire()
        fake.sends.append(fake.now)


def _max_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    # 1 µs tolerance for float rounding of the accumulated slot times
    return max(sum(1 for t in ordered if start <= t < start + window - 1e-6) for start in ordered)


async def test_rate_is_global_across_connections() -> None:
    fake = FakeTime()
    limiter = RateLimiter(per_second=10, clock=fake.clock, sleep=fake.sleep)
    await fake.run(*(_consumer(limiter, fake, 25) for _ in range(4)))
    assert len(fake.sends) == 100
    # 100 messages at 10/s from 4 "connections": 9.9 s, not 2.5 s
    assert max(fake.sends) - min(fake.sends) == pytest.approx(9.9)
    assert _max_in_window(fake.sends, 1.0) == 10


async def test_per_minute_limit_applies_with_per_second() -> None:
    fake = FakeTime()
    limiter = RateLimiter(per_second=10, per_minute=120, clock=fake.clock, sleep=fake.sleep)
    await fake.run(*(_consumer(limiter, fake, 30) for _ in range(4)))
    assert _max_in_window(fake.sends, 60.0) == 120
    assert _max_in_window(fake.sends, 1.0) <= 10


async def test_unlimited_never_sleeps() -> None:
    fake = FakeTime()
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    await _consumer(limiter, fake, 50)
    assert limiter.unlimited and fake.now == 100.0


def test_token_bucket_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    slots = []
    for _ in range(5):
        at = bucket.earliest(0.0)
        bucket.take(at)
        slots.append(at)
    assert slots == [0.0, 0.0, 0.0, 0.5, 1.0]


# -- maildir -----------------------------------------------------------------------


def test_maildir_writes_atomically_readable_messages(tmp_path: Path) -> None:
    writer = MaildirWriter(tmp_path / "mail")
    transport = MaildirTransport(writer)
    for i in range(3):
        data = message_bytes(f"r{i}@example.org", f"<m{i}@x>")
        result = asyncio.run(transport.send("bounces@news.example.id", f"r{i}@example.org", data))
        assert result.kind is ResultKind.ACCEPTED
    assert os.listdir(tmp_path / "mail" / "tmp") == []
    names = os.listdir(tmp_path / "mail" / "new")
    assert len(set(names)) == 3
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    got = sorted(m["To"] for m in box)
    assert got == ["r0@example.org", "r1@example.org", "r2@example.org"]
    assert {m["Return-Path"] for m in box} == {"<bounces@news.example.id>"}


def test_maildir_names_sort_in_delivery_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # within one second, microseconds 95000 then 120000: unpadded, "M120000"
    # would sort before "M95000"
    times = iter([1_800_000_000_095_000_000, 1_800_000_000_120_000_000])
    real = time.time_ns  # the patch is on the time module: anyone else gets real time
    monkeypatch.setattr(time, "time_ns", lambda: next(times, None) or real())
    writer = MaildirWriter(tmp_path / "mail")
    first, second = (writer.deliver(b"Subject: %d\r\n\r\n" % i) for i in range(2))
    assert sorted([second.name, first.name]) == [first.name, second.name]
    assert ".M095000P" in first.name


def test_maildir_unwritable_is_a_connection_fault(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = asyncio.run(MaildirTransport(MaildirWriter(blocker / "mail")).send("a@b", "c@d", b"x"))
    assert result.kind is ResultKind.CONNECTION and "cannot write to maildir" in result.reply


# -- DKIM ----------------------------------------------------------------------------


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


DIGEST_HEAD = (
    b"From: Nusantara Plus <redaksi@news.example.id>\r\nTo: pembaca@example.org\r\n"
    b"Subject: Kabar Balikpapan\r\nDate: Mon, 17 Nov 2025 06:00:00 +0800\r\n"
    b"Message-ID: <d.1.2025-11-17@news.example.id>\r\nList-Id: Nusantara Plus <news.example.id>\r\n"
    b"List-Unsubscribe: <https://news.example.id/u/TOKEN>,\r\n <mailto:u@news.example.id>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nIsi berita.\r\n"
)


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_dkim_signature_verifies_and_covers_unsubscribe(tmp_path: Path, algorithm: str) -> None:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "rsa-sha256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(_pem(key))
    config = DkimConfig(
        enabled=True,
        domain="news.example.id",
        selector="kabar2025",
        key_file=key_file,
        algorithm=algorithm,
    )  # type: ignore[arg-type]
    signer = DkimSigner.from_config(config)
    assert signer is not None
    signed = signer.sign(DIGEST_HEAD)
    record = dns_record(_pem(key), algorithm)  # type: ignore[arg-type]

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"kabar2025._domainkey.news.example.id."
        return record.encode()

    assert dkim.verify(signed, dnsfunc=dns)
    header = email.message_from_bytes(signed)["DKIM-Signature"]
    tags = dict(t.strip().split("=", 1) for t in "".join(header.split()).split(";") if t)
    signed_headers = {h.lower() for h in tags["h"].split(":")}
    assert {
        "list-unsubscribe",
        "list-unsubscribe-post",
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "mime-version",
        "content-type",
    } <= signed_headers
    assert tags["a"] == algorithm
    tampered = signed.replace(b"One-Click", b"Two-Click")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_dkim_disabled_and_bad_key(tmp_path: Path) -> None:
    assert DkimSigner.from_config(DkimConfig()) is None
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    config = DkimConfig(enabled=True, domain="d", selector="s", key_file=bad)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        DkimSigner.from_config(config)


# -- [smtp] step timeouts and unknown outcomes ---------------------------------


def test_smtp_step_timeouts_default_to_rfc_5321_and_reach_the_transport(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[smtp]\nhost = "mail.example.org"\nrcpt_timeout = "90s"\n')
    settings = SmtpSettings.from_config(load_config(path, environ={}).smtp)
    assert (settings.greeting_timeout, settings.mail_timeout, settings.rcpt_timeout) == (
        300,
        300,
        90,
    )
    assert (settings.data_timeout, settings.data_block_timeout) == (120, 180)
    assert settings.data_end_timeout == 600  # no longer the 30 s of [smtp] timeout


def test_a_zero_smtp_wait_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[smtp]\ndata_end_timeout = "0s"\nlease = "0s"\n')
    with pytest.raises(ConfigError, match="data_end_timeout, lease must be longer than 0s"):
        load_config(path, environ={})


def test_unknown_outcome_is_retried_then_left_for_an_admin() -> None:
    policy = RetryPolicy(5, timedelta(minutes=1), timedelta(hours=1))
    now = datetime(2025, 11, 17, tzinfo=UTC)
    result = SendResult(ResultKind.UNKNOWN, None, "no reply to the final dot")
    first = decide(result, 0, now, policy, lambda: 0.5)
    assert first.state is DeliveryState.UNKNOWN and first.unknowns == 1 and first.attempts == 1
    assert first.next_attempt_at == now + timedelta(minutes=30) and not first.sent
    second = decide(result, 1, now, policy, lambda: 0.5, unknowns_before=1)
    assert second.state is DeliveryState.UNKNOWN and second.next_attempt_at is None
    assert "left for an admin" in second.reply
    accepted = decide(SendResult.accepted(), 1, now, policy, lambda: 0.5, unknowns_before=1)
    assert accepted.sent and accepted.unknowns == 1  # the count stays on the row


def test_confirmation_mails_cap_every_smtp_step(tmp_path: Path) -> None:
    """A web request waits for a confirmation mail: no 10-minute final dot there."""
    path = tmp_path / "config.toml"
    path.write_text('[smtp]\nhost = "mail.example.org"\nconfirmation_timeout = "20s"\n')
    config = load_config(path, environ={})
    confirmation = make_transport(config)
    digest = make_transport(config, RateLimiter())
    assert isinstance(confirmation, SmtpTransport) and isinstance(digest, SmtpTransport)
    assert confirmation.settings.data_end_timeout == confirmation.settings.greeting_timeout == 20
    assert digest.settings.data_end_timeout == 600 and digest.settings.timeout == 300
