"""The SMTP transport and the engine against real aiosmtpd servers with scripted
faults: for each, the end state of every delivery row and what the server
actually received."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from deliveryhelpers import (
    add_subscribers,
    by_state,
    email_of,
    message_bytes,
    queue,
    rows,
    run_engine,
    settings,
    states,
)
from kabarfeed.delivery.outbox import ResultKind, SendResult
from kabarfeed.delivery.ratelimit import RateLimiter
from kabarfeed.delivery.smtp import SmtpSettings, SmtpTransport
from kabarfeed.models import DeliveryState
from kabarfeed.store import Database
from smtpserver import Act, Faults, ScriptedSMTPServer, make_certificate


def transport(server: ScriptedSMTPServer | None, port: int = 0, **kw: object) -> SmtpTransport:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port if server else port,
        "security": "none",
        "timeout": 5.0,
        "pool_size": 4,
        "max_per_connection": 100,
        "reconnect_base": 0.0,
        "reconnect_max": 0.0,
    }
    base.update(kw)
    return SmtpTransport(SmtpSettings(**base), RateLimiter())  # type: ignore[arg-type]


@pytest.fixture(autouse=True, params=["pipelining", "one-by-one"])
def pipelining(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test runs against a server that advertises PIPELINING and one that does not."""
    on = request.param == "pipelining"
    monkeypatch.setattr(ScriptedSMTPServer, "PIPELINING", on)
    return on


@pytest.fixture
def clock(fixed_now: datetime) -> Callable[[], datetime]:
    return lambda: fixed_now


def setup_queue(db: Database, now: datetime, n: int) -> list[str]:
    ids = add_subscribers(db, n, now)
    queue(db, ids, now)
    return [f"reader{i}@example.org" for i in range(n)]


def assert_each_once(server: ScriptedSMTPServer, emails: list[str]) -> None:
    got = server.recipients()
    assert sorted(got) == sorted(emails)
    assert set(got.values()) == {1}


def test_all_sent_over_reused_connections(db: Database, clock, fixed_now, pipelining) -> None:
    emails = setup_queue(db, fixed_now, 30)
    with ScriptedSMTPServer() as server:
        smtp = transport(server, max_per_connection=5)
        report = run_engine(db, smtp, clock)
    assert report.ok and report.progress.sent == 30
    assert smtp.transactions == 30 and smtp.pipelined == (30 if pipelining else 0)
    assert_each_once(server, emails)
    assert states(db) == {"sent": 30}
    assert all(m.mail_from == "bounces@news.example.id" for m in server.received)
    # 30 messages, at most 5 per connection: reconnected, but every connection reused
    per_conn = {m.connection for m in server.received}
    assert 6 <= len(per_conn) <= 10 and server.connections == len(per_conn)
    for r in rows(db):
        assert r.attempts == 1 and r.sent_at == fixed_now and r.last_code == 250
        assert r.message_id == f"<digest.{r.subscriber_id}.2025-11-17@news.example.id>"


def test_451_first_attempt_is_deferred_then_sent_once(db: Database, fixed_now) -> None:
    emails = setup_queue(db, fixed_now, 6)
    now = [fixed_now]
    with ScriptedSMTPServer(Faults(defer_first={emails[2]})) as server:
        first = run_engine(db, transport(server), lambda: now[0])
        deferred = by_state(db, DeliveryState.DEFERRED)
        assert first.progress.sent == 5 and first.progress.deferred == 1
        assert [r.email for r in deferred] == [emails[2]]
        row = deferred[0]
        assert row.attempts == 1 and row.last_code == 451 and "Greylisted" in (row.last_reply or "")
        # backoff: retry_base (1 min) * 2**0 with jitter rand=0.5 -> exactly 1 min
        assert row.next_attempt_at == fixed_now + timedelta(minutes=1)
        again = run_engine(db, transport(server), lambda: now[0])
        assert again.progress.claimed == 0  # not due yet: nothing is sent twice
        now[0] = fixed_now + timedelta(minutes=2)
        last = run_engine(db, transport(server), lambda: now[0])
    assert last.progress.sent == 1
    assert_each_once(server, emails)
    assert states(db) == {"sent": 6}
    assert server.rcpt_attempts[emails[2]] == 2


def test_4xx_until_max_attempts_fails(db: Database, fixed_now) -> None:
    emails = setup_queue(db, fixed_now, 1)
    now = [fixed_now]
    with ScriptedSMTPServer(Faults(defer_always={emails[0]})) as server:
        for expected in (DeliveryState.DEFERRED, DeliveryState.DEFERRED, DeliveryState.FAILED):
            run_engine(db, transport(server), lambda: now[0])
            assert rows(db)[0].state is expected
            now[0] += timedelta(hours=2)
    [row] = rows(db)
    assert row.state is DeliveryState.FAILED and row.attempts == 3 and row.last_code == 451
    assert server.received == []


def test_550_fails_at_once_and_counts_bounces(db: Database, fixed_now, clock) -> None:
    emails = setup_queue(db, fixed_now, 5)
    with ScriptedSMTPServer(Faults(reject={emails[1]})) as server:
        report = run_engine(db, transport(server), clock, bounce_threshold=1)
    assert not report.ok and report.progress.failed == 1 and report.progress.sent == 4
    [failed] = by_state(db, DeliveryState.FAILED)
    assert failed.email == emails[1] and failed.last_code == 550 and failed.attempts == 1
    assert "User unknown" in (failed.last_reply or "")
    assert email_of(db)[failed.subscriber_id][1] == "bounced"
    assert sorted(server.recipients()) == sorted(e for e in emails if e != emails[1])


def test_421_mid_session_requeues_without_blame(db: Database, clock, fixed_now) -> None:
    emails = setup_queue(db, fixed_now, 20)
    with ScriptedSMTPServer(Faults(shutdown_at={3, 11})) as server:
        report = run_engine(db, transport(server), clock)
    assert report.ok and report.progress.connection_faults == 2
    assert server.shutdowns == 2
    assert_each_once(server, emails)
    assert states(db) == {"sent": 20}
    assert all(r.attempts == 1 for r in rows(db))  # a 421 is not an attempt


def test_drop_mid_data_is_unknown_and_retried_once_later(db: Database, fixed_now) -> None:
    """The client cannot tell a cut mid-DATA from a cut after the final dot once
    its bytes have left: both are unknown, retried after unknown_retry_after."""
    emails = setup_queue(db, fixed_now, 12)
    now = [fixed_now]
    script = {emails[2]: [Act.DROP_MID_DATA], emails[7]: [Act.DROP_MID_DATA]}
    with ScriptedSMTPServer(Faults(script=script)) as server:
        first = run_engine(db, transport(server, pool_size=2), lambda: now[0])
        assert first.progress.unknown == 2 and first.progress.sent == 10
        parked = by_state(db, DeliveryState.UNKNOWN)
        assert sorted(r.email for r in parked) == [emails[2], emails[7]]
        assert all(r.next_attempt_at == fixed_now + timedelta(minutes=30) for r in parked)
        assert all("unknown outcome" in (r.last_reply or "") for r in parked)
        assert run_engine(db, transport(server), lambda: now[0]).progress.claimed == 0
        now[0] += timedelta(minutes=31)
        last = run_engine(db, transport(server), lambda: now[0])
    assert last.progress.sent == 2
    assert_each_once(server, emails)  # nothing was stored mid-DATA: one copy each
    assert states(db) == {"sent": 12}


def test_drop_after_dot_is_unknown_and_its_retry_is_the_documented_duplicate(
    db: Database, fixed_now
) -> None:
    emails = setup_queue(db, fixed_now, 4)
    now = [fixed_now]
    with ScriptedSMTPServer(Faults(script={emails[1]: [Act.DROP_AFTER_DOT]})) as server:
        first = run_engine(db, transport(server), lambda: now[0])
        assert first.progress.unknown == 1 and first.progress.sent == 3
        now[0] += timedelta(minutes=31)
        run_engine(db, transport(server), lambda: now[0])
    assert states(db) == {"sent": 4}
    copies = server.messages_for(emails[1])
    assert len(copies) == 2 and server.unreplied[emails[1]] == 1  # the server had it
    assert len({_message_id(m.data) for m in copies}) == 1  # the same Message-ID
    [row] = [r for r in rows(db) if r.email == emails[1]]
    assert row.attempts == 2 and row.unknown_outcomes == 1


def test_second_unknown_outcome_is_left_for_an_admin(db: Database, fixed_now) -> None:
    emails = setup_queue(db, fixed_now, 1)
    now = [fixed_now]
    script = {emails[0]: [Act.DROP_AFTER_DOT, Act.DROP_AFTER_DOT]}
    with ScriptedSMTPServer(Faults(script=script)) as server:
        for _ in range(2):
            run_engine(db, transport(server), lambda: now[0])
            now[0] += timedelta(hours=1)
        assert run_engine(db, transport(server), lambda: now[0]).progress.claimed == 0
    [row] = rows(db)
    assert row.state is DeliveryState.UNKNOWN and row.next_attempt_at is None
    assert "left for an admin" in (row.last_reply or "")


def test_stall_before_the_dot_times_out_without_blame(db: Database, clock, fixed_now) -> None:
    emails = setup_queue(db, fixed_now, 6)
    script = {emails[3]: [Act.STALL_BEFORE_DOT]}
    with ScriptedSMTPServer(Faults(script=script, stall=5.0)) as server:
        report = run_engine(db, transport(server, rcpt_timeout=1.0), clock)
    assert report.ok and report.progress.connection_faults == 1 and report.progress.unknown == 0
    assert_each_once(server, emails)
    assert states(db) == {"sent": 6}
    assert all(r.attempts == 1 for r in rows(db))  # a timeout before the dot is no attempt


def test_data_that_cannot_leave_is_a_connection_fault_not_unknown(db: Database, clock) -> None:
    """A server that stops reading mid-DATA: the message (larger than the socket
    buffers) never fully left, so the server cannot have it — a plain fault
    after ``data_block_timeout``, retried without blame; not an unknown outcome."""
    address = "reader0@example.org"
    big = message_bytes(address, "<big@news.example.id>", 24 * 1024 * 1024)
    faults = Faults(script={address: [Act.STALL_MID_DATA]}, stall=5.0)
    with ScriptedSMTPServer(faults) as server:
        smtp = transport(server, data_block_timeout=0.3)

        async def twice() -> tuple[SendResult, SendResult]:
            try:
                first = await smtp.send("bounces@news.example.id", address, big)
                second = await smtp.send("bounces@news.example.id", address, big[:4000])
                return first, second
            finally:
                await smtp.close()

        first, second = asyncio.run(twice())
        stored = server.messages_for(address)
    assert first.kind is ResultKind.CONNECTION and "not sent within" in first.reply
    assert second.kind is ResultKind.ACCEPTED and len(stored) == 1


def test_slow_reply_to_the_dot_within_its_timeout_is_sent(db: Database, clock, fixed_now) -> None:
    """The old single 30 s timeout also bounded the final dot; it has its own now."""
    emails = setup_queue(db, fixed_now, 3)
    with ScriptedSMTPServer(Faults(dot_delay=2.5)) as server:
        report = run_engine(
            db, transport(server, timeout=1.0, mail_timeout=1.0, rcpt_timeout=1.0), clock
        )
    assert report.ok and report.progress.sent == 3 and report.progress.unknown == 0
    assert_each_once(server, emails)


def test_server_limits_messages_per_connection(db: Database, clock, fixed_now) -> None:
    emails = setup_queue(db, fixed_now, 15)
    with ScriptedSMTPServer(Faults(max_per_connection=3)) as server:
        report = run_engine(db, transport(server, pool_size=1), clock)
    assert report.ok
    assert_each_once(server, emails)
    assert server.shutdowns == 4 and states(db) == {"sent": 15}


def test_client_reconnects_before_server_limit(db: Database, clock, fixed_now) -> None:
    emails = setup_queue(db, fixed_now, 15)
    with ScriptedSMTPServer(Faults(max_per_connection=3)) as server:
        report = run_engine(db, transport(server, pool_size=1, max_per_connection=3), clock)
    assert report.ok and report.progress.connection_faults == 0
    assert server.shutdowns == 0 and server.connections == 5
    assert_each_once(server, emails)


def test_server_stalling_after_the_dot_gives_unknown_outcomes_and_pauses(
    db: Database, clock, fixed_now
) -> None:
    setup_queue(db, fixed_now, 10)
    with ScriptedSMTPServer(Faults(stall_data=True)) as server:
        report = run_engine(
            db,
            transport(server, data_end_timeout=0.3, pool_size=2),
            clock,
            engine_settings=settings(pause_after_failures=3),
        )
    assert report.paused and "consecutive connection failures" in report.pause_reason
    assert server.received == []
    found = states(db)
    assert found["unknown"] == report.progress.unknown >= 3  # the dot left: maybe delivered
    assert found == {"unknown": found["unknown"], "queued": 10 - found["unknown"]}
    for r in rows(db):  # the others were never tried: nobody blamed, nothing left "sending"
        assert r.attempts == (1 if r.state is DeliveryState.UNKNOWN else 0)


def test_refused_connection_pauses(db: Database, clock, fixed_now) -> None:
    setup_queue(db, fixed_now, 10)
    with ScriptedSMTPServer() as server:
        port = server.port
    report = run_engine(
        db, transport(None, port=port), clock, engine_settings=settings(pause_after_failures=4)
    )
    assert report.paused and report.released == 10
    assert "Connect" in report.pause_reason or "refused" in report.pause_reason.lower()
    assert states(db) == {"queued": 10}


def test_starttls_with_ca_file(db: Database, clock, fixed_now, tmp_path: Path) -> None:
    emails = setup_queue(db, fixed_now, 5)
    cert = make_certificate(tmp_path)
    with ScriptedSMTPServer(tls="starttls", cert=cert) as server:
        report = run_engine(db, transport(server, security="starttls", ca_file=cert[0]), clock)
    assert report.ok
    assert_each_once(server, emails)
    assert all(m.tls for m in server.received)


def test_untrusted_certificate_is_a_connection_fault(db, clock, fixed_now, tmp_path) -> None:
    setup_queue(db, fixed_now, 5)
    cert = make_certificate(tmp_path)
    with ScriptedSMTPServer(tls="starttls", cert=cert) as server:
        report = run_engine(
            db,
            transport(server, security="starttls"),
            clock,
            engine_settings=settings(pause_after_failures=2),
        )
    assert report.paused and "CERTIFICATE_VERIFY_FAILED" in report.pause_reason
    assert server.received == [] and states(db) == {"queued": 5}


def test_implicit_tls(db: Database, clock, fixed_now, tmp_path: Path) -> None:
    emails = setup_queue(db, fixed_now, 4)
    cert = make_certificate(tmp_path)
    with ScriptedSMTPServer(tls="tls", cert=cert) as server:
        report = run_engine(db, transport(server, security="tls", ca_file=cert[0]), clock)
    assert report.ok
    assert_each_once(server, emails)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth(db: Database, clock, fixed_now, mechanism: str) -> None:
    emails = setup_queue(db, fixed_now, 4)
    server = ScriptedSMTPServer(auth={"kabar": "s3cret"}, auth_mechanisms=(mechanism,))
    with server:
        report = run_engine(db, transport(server, username="kabar", password="s3cret"), clock)
    assert report.ok
    assert_each_once(server, emails)
    assert {m.user for m in server.received} == {f"kabar/{mechanism}"}


def test_wrong_password_pauses_without_blame(db: Database, clock, fixed_now) -> None:
    setup_queue(db, fixed_now, 4)
    with ScriptedSMTPServer(auth={"kabar": "s3cret"}) as server:
        report = run_engine(
            db,
            transport(server, username="kabar", password="nope"),
            clock,
            engine_settings=settings(pause_after_failures=2),
        )
    assert report.paused and "535" in report.pause_reason
    assert "nope" not in report.pause_reason
    assert server.auth_failures >= 2 and states(db) == {"queued": 4}


def test_skips_unsubscribed_meanwhile(db: Database, clock, fixed_now) -> None:
    ids = add_subscribers(db, 3, fixed_now)
    gone = add_subscribers(db, 1, fixed_now, prefix="gone", status="unsubscribed")
    queue(db, ids + gone, fixed_now)
    with ScriptedSMTPServer() as server:
        report = run_engine(db, transport(server), clock)
    assert report.ok and report.progress.skipped == 1
    assert states(db) == {"sent": 3, "skipped": 1}
    assert "gone0@example.org" not in server.recipients()


def _message_id(data: bytes) -> bytes:
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip()
    return b""
