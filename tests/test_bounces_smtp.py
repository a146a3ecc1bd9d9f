"""A refusal at RCPT during our own SMTP dialogue joins the bounce policy."""

from __future__ import annotations

from datetime import datetime, timedelta

from deliveryhelpers import add_subscribers, queue, run_engine
from kabarfeed.bounces import store
from kabarfeed.bounces.model import Attribution, EventKind, EventSource
from kabarfeed.bounces.policy import PolicySettings
from kabarfeed.bounces.record import record_smtp_refusal
from kabarfeed.delivery.ratelimit import RateLimiter
from kabarfeed.delivery.smtp import SmtpSettings, SmtpTransport
from kabarfeed.store import Database
from smtpserver import Faults, ScriptedSMTPServer
from tests.bounces_support import add_sent, status_of


def test_a_user_unknown_at_rcpt_bounces_at_once_and_is_an_event(
    db: Database, fixed_now: datetime
) -> None:
    ids = add_subscribers(db, 2, fixed_now)
    queue(db, ids, fixed_now)
    with ScriptedSMTPServer(Faults(reject={"reader1@example.org"})) as server:
        settings = SmtpSettings("127.0.0.1", server.port, "none", timeout=5.0, reconnect_base=0)
        transport = SmtpTransport(settings, RateLimiter())
        run_engine(db, transport, lambda: fixed_now, bounce_threshold=3)
    assert status_of(db, ids[1]) == "bounced"  # 5.1.1: no waiting for 3 of them
    assert status_of(db, ids[0]) == "active"
    with db.connect() as conn:
        (event,) = store.list_events(conn)
    assert event.source is EventSource.SMTP and event.kind is EventKind.HARD
    assert event.attribution is Attribution.SMTP and event.subscriber_id == ids[1]
    assert event.status_code == "5.1.1" and "User unknown" in (event.diagnostic or "")


def test_other_refusals_count_as_soft_bounces_in_the_window(
    db: Database, fixed_now: datetime
) -> None:
    sent = add_sent(db, fixed_now)
    policy = PolicySettings(soft_threshold=3)
    for attempt in (1, 2, 3):
        with db.begin() as conn:
            event = record_smtp_refusal(
                conn,
                delivery_id=sent.delivery_id,
                subscriber_id=sent.subscriber_id,
                code=550,
                reply="5.7.1 Message rejected as spam by Content Filtering",
                attempt=attempt,
                settings=policy,
                now=fixed_now + timedelta(days=attempt),
            )
        assert event.kind is EventKind.SOFT
        expected = "bounced" if attempt == 3 else "active"
        assert status_of(db, sent.subscriber_id) == expected
