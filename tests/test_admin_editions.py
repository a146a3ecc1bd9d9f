"""Editions and digest preview in the console: counts by state, failed
deliveries with their SMTP reply, retry (admins, audited), and the preview of
a subscriber's next edition or of a region/category mix (nothing recorded)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from starlette.testclient import TestClient

from admin_support import add_account, csrf_of, log_in
from conftest import ConfigFactory
from digest_support import CUTOFF, article, save
from kabarfeed.admin import audit, editions, preview
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor, AuditFilter
from kabarfeed.config import Config
from kabarfeed.errors import InputError
from kabarfeed.models import DeliveryState
from kabarfeed.store import Database
from kabarfeed.store import deliveries as dstore
from kabarfeed.store import subscribers as sstore
from kabarfeed.store.schema import deliveries
from kabarfeed.subscribers import SubscriberDraft, with_defaults
from kabarfeed.web import create_app

ACTOR = Actor.console("pemred@example.id")
NOW = CUTOFF + timedelta(hours=1)


@pytest.fixture
def config(make_config: ConfigFactory, tmp_path: Path) -> Config:
    return make_config(
        f'[feeds]\noutput = "{tmp_path / "public"}"\n[maildir]\npath = "{tmp_path / "mail"}"\n'
    )


@pytest.fixture
def ids(db: Database, config: Config) -> list[int]:
    out = []
    with db.begin() as conn:
        for address in ("ani@example.com", "budi@example.com"):
            draft = with_defaults(SubscriberDraft(address, regions=("balikpapan",)), config)
            out.append(sstore.add(conn, draft, now=NOW - timedelta(days=3)).id)
        rows = [
            dstore.NewDelivery(sid, "2025-11-17", CUTOFF - timedelta(days=1), CUTOFF, ("a",))
            for sid in out
        ]
        dstore.insert_editions(conn, rows, NOW)
        conn.execute(
            update(deliveries)
            .where(deliveries.c.subscriber_id == out[1])
            .values(state="failed", last_code=550, last_reply="5.1.1 mailbox unavailable")
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.subscriber_id == out[0])
            .values(state="sent", sent_at=NOW)
        )
    return out


def test_editions_view_and_retry(db: Database, ids: list[int]) -> None:
    view = editions.editions_view(db, None)
    assert [(d.local_date, d.counts) for d in view.days] == [
        ("2025-11-17", {"sent": 1, "failed": 1})
    ]
    [failed] = view.problems
    assert failed.email == "budi@example.com" and failed.last_reply == "5.1.1 mailbox unavailable"
    assert editions.editions_view(db, "2025-11-16").problems == ()
    count = editions.retry(db, ACTOR, state=DeliveryState.FAILED, local_date="2025-11-17", now=NOW)
    assert count == 1
    with db.connect() as conn:
        states = dict(
            conn.execute(
                select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
            ).all()
        )
    assert states == {"sent": 1, "queued": 1}
    [entry] = audit.search(db, AuditFilter(action="deliveries.retry"))
    assert entry.target == "2025-11-17" and entry.after == {"state": "queued", "count": 1}


def test_preview_of_a_subscriber_and_of_a_mix_records_nothing(
    db: Database, config: Config, ids: list[int]
) -> None:
    save(
        db,
        [
            article(1, title="Rakor akhir tahun Balikpapan", at=NOW - timedelta(minutes=10)),
            article(
                2,
                title="Jembatan Samarinda",
                regions=("samarinda",),
                at=NOW - timedelta(minutes=20),
            ),
        ],
    )
    before = editions.editions_view(db, None)
    ani = preview.for_subscriber(db, config, ids[0])
    shown = preview.render(db, config, ani, now=NOW)
    assert shown.articles == 1 and "Rakor akhir tahun Balikpapan" in shown.html
    assert "Rakor akhir tahun Balikpapan" in shown.text and shown.subject
    mix = preview.for_mix(config, ("samarinda",), (), "en", NOW)
    other = preview.render(db, config, mix, now=NOW)
    assert "Jembatan Samarinda" in other.html and "Rakor akhir tahun" not in other.html
    assert editions.editions_view(db, None) == before
    with pytest.raises(InputError):
        preview.for_mix(config, ("atlantis",), (), "id", NOW)


def _client(config: Config, db: Database, who: str, role: Role) -> TestClient:
    client = TestClient(create_app(config, db, clock=lambda: NOW), follow_redirects=False)
    add_account(db, who, role, ACTOR, now=NOW)
    log_in(client, who)
    return client


def test_pages(db: Database, config: Config, ids: list[int]) -> None:
    save(db, [article(1, title="Rakor akhir tahun Balikpapan", at=NOW - timedelta(minutes=10))])
    editor = _client(config, db, "editor@example.id", Role.EDITOR)
    page = editor.get("/admin/editions")
    assert page.status_code == 200 and "5.1.1 mailbox unavailable" in page.text
    assert "/admin/editions/retry" not in page.text
    forbidden = editor.post("/admin/editions/retry", data={"csrf": csrf_of(page.text)})
    assert forbidden.status_code == 403
    shown = editor.get(f"/admin/preview?subscriber={ids[0]}")
    assert shown.status_code == 200 and "Rakor akhir tahun Balikpapan" in shown.text
    assert "frame-src 'self'" in shown.headers["content-security-policy"]
    frame = editor.get(f"/admin/preview/frame?subscriber={ids[0]}")
    assert frame.status_code == 200 and "Rakor akhir tahun Balikpapan" in frame.text
    assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
    assert editor.get("/admin/preview?subscriber=9999").status_code == 404
    mixed = editor.get("/admin/preview?mix=1&regions=samarinda&language=en")
    assert mixed.status_code == 200 and "pratinjau@example.invalid" in mixed.text
    admin = _client(config, db, "pemred@example.id", Role.ADMIN)
    page = admin.get("/admin/editions?date=2025-11-17")
    done = admin.post(
        "/admin/editions/retry",
        data={"csrf": csrf_of(page.text), "state": "failed", "date": "2025-11-17"},
    )
    assert done.status_code == 303 and "retried=1" in done.headers["location"]
    assert "1 pengiriman dimasukkan lagi" in admin.get(done.headers["location"]).text
    bogus = admin.post("/admin/editions/retry", data={"csrf": csrf_of(page.text), "state": "sent"})
    assert bogus.status_code == 403


def test_send_a_test_edition_to_me(db: Database, config: Config, ids: list[int]) -> None:
    save(db, [article(1, title="Rakor akhir tahun Balikpapan", at=NOW - timedelta(minutes=10))])
    client = _client(config, db, "redaktur@example.id", Role.EDITOR)
    page = client.get(f"/admin/preview?subscriber={ids[0]}")
    query = re.search(r'name="query" value="([^"]+)"', page.text)
    assert query
    sent = client.post("/admin/preview/send", data={"csrf": csrf_of(page.text), "query": query[1]})
    assert sent.status_code == 303 and "done=test_sent" in sent.headers["location"]
    assert "redaktur@example.id" in client.get(sent.headers["location"]).text
    [mail] = list((config.maildir.path / "new").iterdir())
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "redaktur@example.id"
    assert "Rakor akhir tahun Balikpapan" in mail.read_text(encoding="utf-8", errors="replace")
    [entry] = audit.search(db, AuditFilter(action="digest.send_test"))
    assert entry.target == "ani@example.com" and entry.after == {
        "to": "redaktur@example.id",
        "sent": True,
    }
    assert editions.editions_view(db, None).days[0].counts == {"sent": 1, "failed": 1}


def test_dashboard_numbers(db: Database, config: Config, ids: list[int]) -> None:
    from kabarfeed.admin.dashboard import dashboard
    from kabarfeed.store.schema import mail_events

    with db.begin() as conn:
        conn.execute(
            mail_events.insert().values(
                dedup_key="k1",
                received_at=NOW,
                source="dsn",
                kind="hard",
                attribution="verp",
                subscriber_id=ids[1],
            )
        )
    board = dashboard(config, db, NOW)
    [edition] = board.editions
    assert (edition.timezone, edition.send_at, edition.local_date) == (
        "Asia/Makassar",
        "06:00",
        "2025-11-17",
    )
    assert (edition.queued, edition.sent, edition.failed, edition.percent_done) == (0, 1, 1, 100)
    assert board.subscribers_by_status == {"active": 2}
    signed = {g.day.isoformat(): g.signed_up for g in board.growth if g.signed_up}
    assert signed == {(NOW - timedelta(days=3)).date().isoformat(): 2}
    assert (board.mail.sent, board.mail.hard, board.mail.rate(board.mail.hard)) == (1, 1, "100.0%")


def test_pause_holds_every_sender_until_resumed(db: Database, config: Config) -> None:
    import asyncio

    from deliveryhelpers import add_subscribers, outbox, queue
    from kabarfeed.delivery.runner import StoppableOutbox

    ids = add_subscribers(db, 3, NOW, prefix="pause")
    queue(db, ids, NOW)
    first, second = (StoppableOutbox(outbox(db, run), asyncio.Event()) for run in ("a", "b"))
    editions.pause_sending(db, ACTOR, reason="template fix", now=NOW)
    assert first.claim(10, NOW) == [] and second.claim(10, NOW) == []
    assert editions.editions_view(db, None).pause.reason == "template fix"  # type: ignore[union-attr]
    assert editions.resume_sending(db, ACTOR, now=NOW)
    assert not editions.resume_sending(db, ACTOR, now=NOW)
    assert len(first.claim(10, NOW)) == 3
    actions = [e.action for e in audit.search(db, AuditFilter())]
    assert actions == ["delivery.resume", "delivery.pause"]


def test_pause_and_resume_pages(db: Database, config: Config, ids: list[int]) -> None:
    admin = _client(config, db, "pemred@example.id", Role.ADMIN)
    page = admin.get("/admin/editions")
    paused = admin.post(
        "/admin/editions/pause", data={"csrf": csrf_of(page.text), "reason": "DKIM key rotation"}
    )
    assert paused.status_code == 303
    shown = admin.get(paused.headers["location"]).text
    assert 'id="paused"' in shown and "DKIM key rotation" in shown
    assert "DKIM key rotation" in admin.get("/admin/").text  # the dashboard says so too
    editor = _client(config, db, "redaktur@example.id", Role.EDITOR)
    view = editor.get("/admin/editions")
    assert 'id="paused"' in view.text and "/admin/editions/resume" not in view.text
    assert (
        editor.post("/admin/editions/resume", data={"csrf": csrf_of(view.text)}).status_code == 403
    )
    resumed = admin.post("/admin/editions/resume", data={"csrf": csrf_of(shown)})
    assert resumed.status_code == 303 and 'id="paused"' not in admin.get("/admin/editions").text
