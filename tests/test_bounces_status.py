"""Mail health in ``kabarfeed status`` and ``/metrics``: sent, bounces,
complaints and unsubscribes with rates, per edition and over 7/30 days, and
the warnings past 0.1 % complaints / 2 % bounces."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import insert, update
from starlette.testclient import TestClient

from deliveryhelpers import add_subscribers
from kabarfeed.bounces import store
from kabarfeed.bounces.model import Attribution, EventKind, EventSource, Target
from kabarfeed.bounces.stats import Rates, mail_health
from kabarfeed.cli import main
from kabarfeed.store import Database
from kabarfeed.store.schema import deliveries, subscribers
from kabarfeed.web.app import create_app
from tests.conftest import ConfigFactory

NOW = datetime.now(UTC).replace(microsecond=0)


def _sent(db: Database, ids: list[int], local_date: str, when: datetime) -> list[int]:
    rows = [
        {
            "subscriber_id": i,
            "local_date": local_date,
            "since_at": when - timedelta(days=1),
            "cutoff_at": when,
            "state": "sent",
            "attempts": 1,
            "created_at": when,
            "updated_at": when,
            "sent_at": when,
        }
        for i in ids
    ]
    with db.begin() as conn:
        conn.execute(insert(deliveries), rows)
        return [
            r.id
            for r in conn.execute(deliveries.select().where(deliveries.c.local_date == local_date))
        ]


def _event(db: Database, n: int, kind: EventKind, delivery: int, sub: int, day: str) -> None:
    with db.begin() as conn:
        store.insert_event(
            conn,
            dedup_key=f"t:{kind}:{n}",
            now=NOW - timedelta(hours=1),
            source=EventSource.DSN,
            kind=kind,
            target=Target(Attribution.VERP, delivery, sub, day),
            provider=None,
            recipient=None,
            status_code=None,
            diagnostic=None,
            raw_ref=None,
            action=None,
        )


def _newsroom(db: Database) -> None:
    ids = add_subscribers(db, 100, NOW - timedelta(days=40))
    old = _sent(db, ids[:50], "2000-01-01", NOW - timedelta(days=20))  # only in the 30-day window
    new = _sent(db, ids, "2000-01-02", NOW - timedelta(days=1))
    for n in range(3):
        _event(db, n, EventKind.HARD, new[n], ids[n], "2000-01-02")
    _event(db, 9, EventKind.COMPLAINT, new[9], ids[9], "2000-01-02")
    _event(db, 10, EventKind.SOFT, old[10], ids[10], "2000-01-01")
    _event(db, 11, EventKind.DELAYED, new[11], ids[11], "2000-01-02")
    with db.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id.in_(ids[20:22]))
            .values(status="unsubscribed", unsubscribed_at=NOW - timedelta(days=2))
        )


def test_rates_per_window_and_edition_with_warnings(db: Database) -> None:
    _newsroom(db)
    with db.connect() as conn:
        health = mail_health(conn, NOW)
    week, month = health.windows
    assert (week.sent, week.hard, week.soft, week.complaints, week.unsubscribes) == (
        100,
        3,
        1,  # the soft bounce was received an hour ago (about an older edition)
        1,
        2,
    )
    assert month.sent == 150 and week.delayed == 1
    assert week.bounce_rate == 0.04  # a delay is not a bounce
    assert [e.label for e in health.editions] == ["2000-01-02", "2000-01-01"]
    newest = health.editions[0]
    assert (newest.sent, newest.hard, newest.complaints) == (100, 3, 1)
    assert newest.bounce_rate == 0.03 and newest.complaint_rate == 0.01
    assert any("7d: complaint rate 1.00% is above 0.1%" in w for w in health.warnings)
    assert any("2000-01-02: bounce rate 3.00% is above 2%" in w for w in health.warnings)
    assert not any(w.startswith("2000-01-01") for w in health.warnings)  # 1 soft of 50: 2%


def test_rates_thresholds_are_strictly_above() -> None:
    assert Rates("x", sent=1000, complaints=1, hard=20).warnings() == []
    assert len(Rates("x", sent=1000, complaints=2, hard=21).warnings()) == 2
    assert Rates("x").warnings() == [] and Rates("x").bounce_rate == 0.0


def test_status_and_metrics_show_mail_health(
    db: Database, make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config()
    _newsroom(db)
    runner = CliRunner()
    args = ["--config", str(tmp_path / "config.toml"), "status"]
    as_json = runner.invoke(main, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    mail = json.loads(as_json.output)["mail"]
    assert mail["windows"][0]["label"] == "7d" and mail["windows"][0]["sent"] == 100
    assert any("complaint rate" in w for w in mail["warnings"])
    text = runner.invoke(main, args, env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert "warning: 7d: complaint rate 1.00% is above 0.1%" in text.output
    assert "2000-01-02" in text.output
    metrics = TestClient(create_app(config, db, clock=lambda: NOW)).get("/metrics").text
    assert 'kabarfeed_mail_sent{window="7d"} 100' in metrics
    assert 'kabarfeed_mail_sent{window="30d"} 150' in metrics
    assert 'kabarfeed_mail_hard_bounces{edition="2000-01-02"} 3' in metrics
    assert 'kabarfeed_mail_complaint_rate{window="7d"} 0.01' in metrics
    assert 'kabarfeed_mail_delayed{edition="2000-01-02"} 1' in metrics
