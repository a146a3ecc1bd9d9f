"""The bounce pipeline: parse → attribute → record → policy, on a real database."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from kabarfeed.bounces import store, verp
from kabarfeed.bounces.intake import ingest_bytes
from kabarfeed.bounces.model import Attribution, EventKind, EventSource
from kabarfeed.bounces.parse import classify_code, parse_report
from kabarfeed.errors import IntakeError
from kabarfeed.store import Database
from kabarfeed.store.schema import mail_events
from tests.bounces_support import BASE, SECRET, add_sent, fixture, settings, status_of

NOW = datetime.fromisoformat("2026-12-06T01:00:00+00:00")


def _events(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(mail_events)).scalar_one())


# -- VERP -------------------------------------------------------------------------------


def test_verp_token_round_trips_and_one_changed_character_is_forged() -> None:
    address = verp.encode(BASE, 4711, SECRET)
    assert address.startswith("bounces+4711-") and address.endswith("@news.example.id")
    assert verp.decode(BASE, address, SECRET) == verp.Decoded(verp.TokenState.VALID, 4711)
    assert verp.decode(BASE, address.upper(), SECRET).delivery_id == 4711  # case-folded by MTAs
    local, domain = address.split("@")
    flipped = local[:-1] + ("0" if local[-1] != "0" else "1") + "@" + domain
    assert verp.decode(BASE, flipped, SECRET).state is verp.TokenState.FORGED
    other_id = address.replace("+4711-", "+4712-")
    assert verp.decode(BASE, other_id, SECRET).state is verp.TokenState.FORGED
    assert verp.decode(BASE, address, b"another key").state is verp.TokenState.FORGED
    assert verp.decode(BASE, "bounces+junk@news.example.id", SECRET).state is verp.TokenState.FORGED
    assert verp.decode(BASE, BASE, SECRET).state is verp.TokenState.ABSENT
    assert verp.decode(BASE, "x+1-abc@elsewhere.example", SECRET).state is verp.TokenState.ABSENT


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source", "kind", "status"),
    [
        ("postfix-hard.eml", EventSource.DSN, EventKind.HARD, "5.1.1"),
        ("gmail-null-mx.eml", EventSource.DSN, EventKind.HARD, "5.1.10"),
        ("exim-soft-full.eml", EventSource.DSN, EventKind.SOFT, "4.2.2"),
        ("sendmail-delayed.eml", EventSource.DSN, EventKind.DELAYED, "4.4.7"),
        ("qmail-hard.eml", EventSource.MAIL, EventKind.HARD, "5.1.1"),
        ("exchange-ndr.eml", EventSource.MAIL, EventKind.HARD, None),
        ("arf-abuse.eml", EventSource.ARF, EventKind.COMPLAINT, None),
        ("ooo-indonesian.eml", EventSource.MAIL, EventKind.AUTOREPLY, None),
        ("vacation-rfc3834.eml", EventSource.MAIL, EventKind.AUTOREPLY, None),
    ],
)
def test_fixture_reports_parse_per_rfc(
    name: str, source: EventSource, kind: EventKind, status: str | None
) -> None:
    report = parse_report(fixture(name))
    assert report.source is source
    assert [f.kind for f in report.findings] == [kind]
    assert report.findings[0].status == status
    assert report.findings[0].recipient == "someone@example.net"
    if kind is not EventKind.AUTOREPLY:
        assert report.original_message_id == "<none@example.net>"
    if kind in (EventKind.HARD, EventKind.SOFT):  # what the receiving server said
        assert report.findings[0].diagnostic


def test_dsn_with_two_recipients_gives_one_finding_each_and_skips_delivered() -> None:
    raw = fixture("postfix-hard.eml").replace(
        b"Diagnostic-Code: smtp; 550 5.1.1",
        b"X-Note: first\r\nDiagnostic-Code: smtp; 550 5.1.1",
    )
    extra = (
        b"\r\nFinal-Recipient: rfc822; ok@example.net\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        b"\r\nFinal-Recipient: rfc822; full@example.net\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        b"Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n"
    )
    raw = raw.replace(
        b"    User unknown in virtual mailbox table\r\n", b"    User unknown\r\n" + extra, 1
    )
    report = parse_report(raw)
    assert [(f.recipient, f.kind) for f in report.findings] == [
        ("someone@example.net", EventKind.HARD),
        ("full@example.net", EventKind.SOFT),
    ]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("5.1.1", EventKind.HARD),
        ("5.1.10", EventKind.HARD),
        ("5.4.4", EventKind.HARD),
        ("5.2.2", EventKind.SOFT),
        ("5.7.1", EventKind.SOFT),
        ("4.2.2", EventKind.SOFT),
        ("550", EventKind.HARD),
        ("452", EventKind.SOFT),
    ],
)
def test_status_codes_classify(code: str, kind: EventKind) -> None:
    assert classify_code(code) is kind


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01\x02 binary junk \xff\xfe", b"just some words without headers\n"],
)
def test_garbage_is_an_intake_error(data: bytes) -> None:
    with pytest.raises(IntakeError):
        parse_report(data)


def test_a_report_cut_off_before_its_report_part_is_truncated() -> None:
    raw = fixture("postfix-hard.eml")
    cut = raw[: raw.index(b"Content-Description: Delivery report")]
    with pytest.raises(IntakeError, match="truncated"):
        parse_report(cut)


@hsettings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_fuzzed_bytes_only_ever_raise_intake_error(data: bytes) -> None:
    with contextlib.suppress(IntakeError):
        parse_report(data)


@hsettings(max_examples=80, deadline=None)
@given(st.data())
def test_fuzzed_damage_to_real_reports_never_escapes(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(p.name for p in fixture_dir().glob("*.eml"))))
    raw = bytearray(fixture(name))
    for _ in range(data.draw(st.integers(0, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(IntakeError):
        parse_report(bytes(raw[:cut]))


def fixture_dir() -> Path:
    from tests.bounces_support import FIXTURES

    return FIXTURES


# -- attribution and policy -----------------------------------------------------------------


def test_hard_bounce_to_the_verp_address_bounces_the_exact_subscriber(
    db: Database, tmp_path: Path
) -> None:
    sent = add_sent(db, NOW)
    other = add_sent(db, NOW, email="siti@example.net")
    out = ingest_bytes(db, fixture("postfix-hard.eml", sent), settings(tmp_path), now=NOW)
    (event,) = out.events
    assert event.kind is EventKind.HARD
    assert event.target.attribution is Attribution.VERP
    assert (event.target.delivery_id, event.target.subscriber_id) == (
        sent.delivery_id,
        sent.subscriber_id,
    )
    assert event.target.local_date == "2026-12-05"
    assert status_of(db, sent.subscriber_id) == "bounced"
    assert status_of(db, other.subscriber_id) == "active"
    with db.connect() as conn:
        (row,) = store.list_events(conn, subscriber_id=sent.subscriber_id)
    assert row.status_code == "5.1.1" and "User unknown" in (row.diagnostic or "")
    assert row.source is EventSource.DSN and "bounced" in (row.action or "")


def test_a_forged_verp_token_is_recorded_but_never_acted_on(db: Database, tmp_path: Path) -> None:
    sent = add_sent(db, NOW)
    forged = verp.encode(BASE, sent.delivery_id, b"someone else's key")
    raw = fixture("postfix-hard.eml", sent, verp_to=forged)
    (event,) = ingest_bytes(db, raw, settings(tmp_path), now=NOW).events
    assert event.target.attribution is Attribution.FORGED
    assert event.target.subscriber_id is None
    assert status_of(db, sent.subscriber_id) == "active"  # even though the Message-ID matches


def test_the_quoted_original_return_path_attributes_when_the_envelope_was_rewritten(
    db: Database, tmp_path: Path
) -> None:
    sent = add_sent(db, NOW)
    raw = fixture("exim-soft-full.eml", sent, message_id="<unknown@elsewhere>")
    raw = raw.replace(b"Envelope-to: " + sent.verp.encode(), b"Envelope-to: " + BASE.encode())
    raw = raw.replace(b"To: " + sent.verp.encode(), b"To: " + BASE.encode())
    assert raw.count(sent.verp.encode()) == 1  # only in the quoted original's Return-path
    (event,) = ingest_bytes(db, raw, settings(tmp_path), now=NOW).events
    assert event.target.attribution is Attribution.VERP
    assert event.target.delivery_id == sent.delivery_id


def test_without_verp_the_original_message_id_attributes(db: Database, tmp_path: Path) -> None:
    sent = add_sent(db, NOW)
    raw = fixture("gmail-null-mx.eml", sent, verp_to=BASE)
    (event,) = ingest_bytes(db, raw, settings(tmp_path), now=NOW).events
    assert event.target.attribution is Attribution.MESSAGE_ID
    assert event.target.delivery_id == sent.delivery_id
    assert status_of(db, sent.subscriber_id) == "bounced"


def test_without_verp_or_message_id_the_list_unsubscribe_token_attributes(
    db: Database, tmp_path: Path
) -> None:
    sent = add_sent(db, NOW)
    raw = fixture("postfix-hard.eml", sent, verp_to=BASE, message_id="<unknown@elsewhere>")
    (event,) = ingest_bytes(db, raw, settings(tmp_path), now=NOW).events
    assert event.target.attribution is Attribution.LIST_TOKEN
    assert event.target.subscriber_id == sent.subscriber_id
    assert status_of(db, sent.subscriber_id) == "bounced"


def test_a_bounce_naming_only_an_address_is_not_acted_on(db: Database, tmp_path: Path) -> None:
    sent = add_sent(db, NOW)
    raw = fixture(
        "postfix-hard.eml", sent, verp_to=BASE, message_id="<x@elsewhere>", token="y" * 32
    )
    (event,) = ingest_bytes(db, raw, settings(tmp_path), now=NOW).events
    assert event.target.attribution is Attribution.NONE
    assert status_of(db, sent.subscriber_id) == "active"


def test_soft_bounces_count_in_a_window_then_bounce(db: Database, tmp_path: Path) -> None:
    sent = add_sent(db, NOW)
    cfg = settings(tmp_path, soft_threshold=3, soft_window=timedelta(days=30))
    raw = fixture("exim-soft-full.eml", sent)

    def soft(n: int, when: datetime) -> None:
        report = raw.replace(b"Message-Id: <E1tJ2kL", f"Message-Id: <n{n}".encode())
        ingest_bytes(db, report, cfg, now=when)

    soft(1, NOW - timedelta(days=40))  # outside the window by the time of the third
    soft(2, NOW - timedelta(days=5))
    assert status_of(db, sent.subscriber_id) == "active"
    soft(3, NOW)
    assert status_of(db, sent.subscriber_id) == "active"  # 2 in the window
    soft(4, NOW + timedelta(hours=1))
    assert status_of(db, sent.subscriber_id) == "bounced"


def test_delays_and_auto_replies_are_stored_but_change_nothing(
    db: Database, tmp_path: Path
) -> None:
    sent = add_sent(db, NOW)
    for name in ("sendmail-delayed.eml", "ooo-indonesian.eml", "vacation-rfc3834.eml"):
        (event,) = ingest_bytes(db, fixture(name, sent), settings(tmp_path), now=NOW).events
        assert event.kind in (EventKind.DELAYED, EventKind.AUTOREPLY)
    assert status_of(db, sent.subscriber_id) == "active"
    assert _events(db) == 3


def test_a_complaint_unsubscribes_and_suppresses(db: Database, tmp_path: Path) -> None:
    sent = add_sent(db, NOW)
    (event,) = ingest_bytes(db, fixture("arf-abuse.eml", sent), settings(tmp_path), now=NOW).events
    assert event.kind is EventKind.COMPLAINT and event.target.attribution is Attribution.VERP
    assert status_of(db, sent.subscriber_id) == "unsubscribed"
    with db.connect() as conn:
        assert store.is_suppressed(conn, sent.email.upper())
        assert "complaint" in (store.get_event(conn, event.id).action or "")  # type: ignore[union-attr]


def test_the_same_report_twice_counts_once(db: Database, tmp_path: Path) -> None:
    sent = add_sent(db, NOW)
    cfg = settings(tmp_path, soft_threshold=2)
    raw = fixture("exim-soft-full.eml", sent)
    first = ingest_bytes(db, raw, cfg, now=NOW)
    second = ingest_bytes(db, raw, cfg, now=NOW + timedelta(minutes=1))
    assert not first.duplicate and second.duplicate
    assert second.events[0].id == first.events[0].id
    assert _events(db) == 1
    assert status_of(db, sent.subscriber_id) == "active"  # 1 soft bounce, not 2


def test_garbage_truncated_and_huge_input_is_kept_with_a_reason(
    db: Database, tmp_path: Path
) -> None:
    cfg = settings(tmp_path)
    garbage = ingest_bytes(db, b"\x00\xffnot mail", cfg, now=NOW)
    huge = ingest_bytes(db, b"Subject: x\r\n\r\n" + b"a" * (cfg.max_bytes + 1), cfg, now=NOW)
    assert garbage.events == () and huge.events == ()
    assert (
        garbage.failed_path is not None and garbage.failed_path.read_bytes() == b"\x00\xffnot mail"
    )
    assert "not a mail" in garbage.failed_path.with_suffix(".reason").read_text()
    assert huge.failed_path is not None and "too large" in (huge.reason or "")
    assert huge.failed_path.with_suffix(".reason").read_text().startswith("too large")
    assert _events(db) == 0


def test_an_unrecognised_mail_is_stored_and_kept_for_a_human(db: Database, tmp_path: Path) -> None:
    raw = b"From: a@example.net\r\nTo: bounces@news.example.id\r\nSubject: hello\r\n\r\nhi\r\n"
    out = ingest_bytes(db, raw, settings(tmp_path), now=NOW)
    assert [e.kind for e in out.events] == [EventKind.UNKNOWN]
    assert out.failed_path is not None and out.failed_path.read_bytes() == raw


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_fuzzed_input_never_escapes_the_intake(data: bytes, db: Database, tmp_path: Path) -> None:
    out = ingest_bytes(db, data, settings(tmp_path), now=NOW)
    assert out.events or out.failed_path is not None


@pytest.mark.parametrize(
    ("kind", "status", "trusted", "soft", "verdict", "suppress"),
    [
        (EventKind.HARD, "active", True, 0, "bounce", False),
        (EventKind.HARD, "active", False, 0, "none", False),
        (EventKind.HARD, "unsubscribed", True, 0, "none", False),
        (EventKind.SOFT, "active", True, 4, "none", False),
        (EventKind.SOFT, "active", True, 5, "bounce", False),
        (EventKind.COMPLAINT, "active", True, 0, "unsubscribe", True),
        (EventKind.COMPLAINT, "bounced", True, 0, "none", True),
        (EventKind.COMPLAINT, "active", False, 0, "none", False),
        (EventKind.UNSUBSCRIBE, "active", True, 0, "unsubscribe", False),
        (EventKind.DELAYED, "active", True, 0, "none", False),
        (EventKind.AUTOREPLY, "active", True, 0, "none", False),
    ],
)
def test_policy_decisions(
    kind: EventKind, status: str, trusted: bool, soft: int, verdict: str, suppress: bool
) -> None:
    from kabarfeed.bounces.policy import PolicySettings, decide
    from kabarfeed.models import SubscriberStatus

    decision = decide(
        kind,
        SubscriberStatus(status),
        trusted=trusted,
        soft_in_window=soft,
        settings=PolicySettings(soft_threshold=5),
    )
    assert (decision.verdict.value, decision.suppress) == (verdict, suppress)


def test_erasing_a_subscriber_erases_their_events_but_keeps_the_suppression(
    db: Database, tmp_path: Path
) -> None:
    from kabarfeed.store.subscribers import delete_subscriber

    sent = add_sent(db, NOW)
    ingest_bytes(db, fixture("arf-abuse.eml", sent), settings(tmp_path), now=NOW)
    with db.begin() as conn:
        delete_subscriber(conn, sent.subscriber_id)
    assert _events(db) == 0
    with db.connect() as conn:
        assert store.is_suppressed(conn, sent.email)  # the opt-out outlives the record
