"""The breaking-alerts preference: a breaking-only rhythm (alerts, no digest)
and a daily/weekly reader's opt-in, from the CLI, CSV, the web forms and the
admin page; a breaking-only reader gets no edition row on any day."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kabarfeed.cli import main
from kabarfeed.digest.schedule import gets_breaking, is_edition_day, send_moment
from kabarfeed.integrations import enqueue_group, group_subscriber_ids
from kabarfeed.models import Consent, Subscriber, SubscriberStatus
from kabarfeed.scheduler import SendGroup
from kabarfeed.store import Database
from kabarfeed.store import subscribers as sub_store
from kabarfeed.store.schema import deliveries
from kabarfeed.subscribers import SubscriberDraft, validate_draft, with_defaults
from tests.conftest import ConfigFactory
from tests.test_web_pages import Web, _make_web, csrf_of, subscribe

MONDAY = date(2025, 11, 17)
MOMENT = datetime(2025, 11, 1, tzinfo=UTC)


def _cli(tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _get(db: Database, email: str) -> Subscriber:
    with db.connect() as conn:
        found = sub_store.get_by_email(conn, email)
    assert found is not None
    return found


def test_cli_add_change_list_import_export(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    make_config()
    _cli(tmp_path, "subscribers", "add", "only@example.id", "--frequency", "breaking")
    _cli(tmp_path, "subscribers", "add", "also@example.id", "--breaking")
    _cli(tmp_path, "subscribers", "add", "plain@example.id")
    listed = {s["email"]: s for s in json.loads(_cli(tmp_path, "subscribers", "list", "--json"))}
    assert {e: (s["frequency"], s["breaking_alerts"]) for e, s in listed.items()} == {
        "only@example.id": ("breaking", True),
        "also@example.id": ("daily", True),
        "plain@example.id": ("daily", False),
    }
    table = _cli(tmp_path, "subscribers", "list")
    assert "breaking only" in table and "day + breaking" in table

    out = _cli(
        tmp_path, "subscribers", "frequency", "plain@example.id", "weekly", "--weekday", "rabu",
        "--breaking",
    )  # fmt: skip
    assert "weekly on wednesday + breaking alerts" in out
    plain = _get(db, "plain@example.id")
    assert (plain.frequency, plain.weekly_day, plain.breaking_alerts) == ("weekly", 2, True)
    # without --breaking/--no-breaking the opt-in is left alone
    _cli(tmp_path, "subscribers", "frequency", "plain@example.id", "daily")
    assert _get(db, "plain@example.id").breaking_alerts is True
    _cli(tmp_path, "subscribers", "frequency", "plain@example.id", "daily", "--no-breaking")
    assert _get(db, "plain@example.id").breaking_alerts is False
    only = _get(db, "only@example.id")
    _cli(tmp_path, "subscribers", "frequency", "only@example.id", "daily")
    back = _get(db, "only@example.id")
    assert back.frequency == "daily" and back.frequency_since is not None
    assert only.frequency_since is None

    csv_in = tmp_path / "in.csv"
    csv_in.write_text(
        "email,frequency,breaking\n"
        "k@example.id,kilat,\n"
        "y@example.id,mingguan,ya\n"
        "n@example.id,daily,no\n"
        "bad@example.id,daily,maybe\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path / "config.toml"), "subscribers", "import", str(csv_in)]
    )
    assert "in.csv:5:" in result.output and "maybe" in result.output
    assert _get(db, "k@example.id").frequency == "breaking"
    assert _get(db, "y@example.id").breaking_alerts is True
    assert _get(db, "n@example.id").breaking_alerts is False

    exported = tmp_path / "out.csv"
    _cli(tmp_path, "subscribers", "export", str(exported))
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(",frequency,weekday,breaking")
    assert any(
        line.startswith("k@example.id,") and line.endswith(",breaking,,no") for line in lines
    )
    assert any(
        line.startswith("y@example.id,") and line.endswith(",weekly,monday,yes") for line in lines
    )

    # the export re-imports as is: nothing changes
    again = CliRunner().invoke(
        main, ["--config", str(tmp_path / "config.toml"), "subscribers", "import", str(exported)]
    )
    assert again.exit_code == 0, again.output
    assert _get(db, "y@example.id").breaking_alerts is True
    assert _get(db, "k@example.id").frequency == "breaking"


def test_gets_breaking_and_no_edition_day_for_breaking_only() -> None:
    base = Subscriber(
        1, "a@example.id", "t", "Asia/Jakarta", "06:00", "id", SubscriberStatus.ACTIVE, MOMENT
    )
    only = replace(base, frequency="breaking")
    assert gets_breaking(only) and not gets_breaking(base)
    assert gets_breaking(replace(base, frequency="weekly", breaking_alerts=True))
    assert not any(is_edition_day(only, MONDAY + timedelta(days=n)) for n in range(7))
    assert all(is_edition_day(base, MONDAY + timedelta(days=n)) for n in range(7))


def _add(config_db: tuple[object, Database], email: str, **kw: object) -> Subscriber:
    config, db = config_db
    draft = SubscriberDraft(
        email,
        regions=("balikpapan",),
        timezone="Asia/Makassar",
        send_at="06:00",
        consent=Consent(datetime(2025, 11, 1, tzinfo=UTC), "test"),
        **kw,  # type: ignore[arg-type]
    )
    ready = with_defaults(validate_draft(draft, config.taxonomy), config)  # type: ignore[attr-defined]
    with db.begin() as conn:
        return sub_store.add(conn, ready, now=datetime(2025, 11, 1, tzinfo=UTC))


def test_a_breaking_only_reader_gets_no_edition_row(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config()
    daily = _add((config, db), "d@example.id", breaking_alerts=True)
    only = _add((config, db), "b@example.id", frequency="breaking")
    group = SendGroup("Asia/Makassar", "06:00")
    for n in range(7):
        day = MONDAY + timedelta(days=n)
        assert group_subscriber_ids(db, group, day) == [daily.id]
        moment = send_moment("Asia/Makassar", "06:00", day) + timedelta(minutes=1)
        enqueue_group(config, db, lambda m=moment: m, group, day, moment)
    with db.connect() as conn:
        rows = list(conn.execute(select(deliveries.c.subscriber_id)))
    assert {r[0] for r in rows} == {daily.id} and len(rows) == 7
    assert only.id in group_subscriber_ids(db, group)  # the undated query still lists them


@pytest.fixture
def web(make_config: ConfigFactory, db: Database, fixed_now: datetime, tmp_path: Path) -> Web:
    return _make_web(make_config, db, fixed_now, tmp_path, "subscribe_per_ip_per_hour = 1000")


def test_web_forms_offer_breaking_only_and_the_opt_in(web: Web) -> None:
    form = web.client.get("/subscribe").text
    assert '<option value="breaking">Hanya berita kilat (breaking news)</option>' in form
    assert 'name="breaking" value="yes">' in form
    status, _ = subscribe(web, "ani@example.com", frequency="weekly-4", breaking="yes")
    assert status == 200
    sub = web.subscriber("ani@example.com")
    assert sub is not None and (sub.frequency, sub.breaking_alerts) == ("weekly", True)

    page = web.client.get(f"/preferences/{sub.token}").text
    assert 'name="breaking" value="yes" checked>' in page
    data = {
        "csrf": csrf_of(page),
        "regions": ["balikpapan"],
        "send_at": "06:00",
        "timezone": "Asia/Makassar",
        "language": "en",
        "frequency": "breaking",
    }
    saved = web.client.post(f"/preferences/{sub.token}", data=data, follow_redirects=False)
    assert saved.status_code == 303
    after = web.subscriber("ani@example.com")
    assert after is not None and (after.frequency, after.breaking_alerts) == ("breaking", False)
    shown = web.client.get(f"/preferences/{sub.token}").text
    assert '<option value="breaking" selected>Breaking news alerts only</option>' in shown
    assert 'name="breaking" value="yes">' in shown

    forged = dict(data, csrf=csrf_of(shown), frequency="breaking-1")
    assert web.client.post(f"/preferences/{sub.token}", data=forged).status_code == 400
