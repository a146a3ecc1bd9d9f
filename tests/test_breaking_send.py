"""Breaking alerts end to end against a real aiosmtpd server: a push marked
``breaking`` queues one alert per matching opted-in reader (once, however
often it is pushed), the outbox runner that sends editions sends them (short,
autoescaped, List-Unsubscribe, Content-Language), quiet hours hold an alert
until they end, and the daily cap stops the fourth."""

from __future__ import annotations

import asyncio
import email
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from sqlalchemy import select

from kabarfeed.config import Config
from kabarfeed.delivery.breaking import enqueue_alerts
from kabarfeed.delivery.runner import OutboxRunner
from kabarfeed.models import Consent, Subscriber
from kabarfeed.push import parse_payload, push_article
from kabarfeed.store import Database
from kabarfeed.store import alerts as alert_store
from kabarfeed.store import subscribers as sub_store
from kabarfeed.store.articles import get_article
from kabarfeed.store.schema import breaking_alerts
from kabarfeed.subscribers import SubscriberDraft, validate_draft, with_defaults
from smtpserver import ScriptedSMTPServer
from tests.api_support import api_config, article
from tests.conftest import ConfigFactory

NOON_WITA = datetime(2025, 11, 17, 4, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _add(config: Config, db: Database, email_: str, **kw: Any) -> Subscriber:
    draft = SubscriberDraft(
        email_,
        timezone=kw.pop("timezone", "Asia/Makassar"),
        consent=Consent(datetime(2025, 11, 1, tzinfo=UTC), "test"),
        **kw,
    )
    ready = with_defaults(validate_draft(draft, config.taxonomy), config)
    with db.begin() as conn:
        return sub_store.add(conn, ready, now=datetime(2025, 11, 1, tzinfo=UTC))


def _config(make_config: ConfigFactory, tmp_path: Path, port: int, extra: str = "") -> Config:
    return api_config(
        make_config,
        tmp_path,
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        f'[digest]\nsend_at = "06:00"\n{extra}',
    )


def _push(config: Config, db: Database, now: datetime, n: int, **over: Any) -> str:
    body = article(n, published=(now - timedelta(minutes=10)).isoformat(), breaking=True, **over)
    payload = parse_payload(body, source="redaksi", default_tz="Asia/Makassar")
    source = next(s for s in config.sources if s.name == "redaksi")
    outcome = push_article(config, db, source, payload, now=now)
    assert outcome.article is not None
    return outcome.article.id


def _send(config: Config, db: Database, clock: Clock) -> Any:
    return asyncio.run(OutboxRunner(config, db, clock).run())


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def test_a_pushed_breaking_article_alerts_matching_opted_in_readers_once(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    clock = Clock(NOON_WITA)
    with ScriptedSMTPServer() as server:
        config = _config(make_config, tmp_path, server.port)
        only = _add(config, db, "kilat@example.id", frequency="breaking", language="en")
        _add(config, db, "harian@example.id", breaking_alerts=True, regions=("balikpapan",))
        _add(config, db, "biasa@example.id")  # daily, no opt-in
        _add(config, db, "surabaya@example.id", frequency="breaking", regions=("surabaya",))
        title = "Banjir <script>alert(1)</script> di Balikpapan & sekitarnya, tinggi air <1 m"
        article_id = _push(config, db, clock.now, 1, title=title)
        _push(config, db, clock.now, 1, title=title)  # the same push again: nothing new
        report = _send(config, db, clock)
        assert report.progress.sent == 2
        got = {r: m for m in server.received for r in m.rcpt_tos}
        assert sorted(got) == ["harian@example.id", "kilat@example.id"]
        # sent again later (a re-push, another runner): nobody gets it twice
        clock.now += timedelta(minutes=5)
        _push(config, db, clock.now, 1, title=title + " (update)")
        assert _send(config, db, clock).progress.sent == 0
        assert len(server.received) == 2

    msg = _parse(got["kilat@example.id"].data)
    assert msg["Subject"].strip().startswith("Breaking news: Banjir")
    assert msg["Content-Language"] == "en"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"/u/{only.token}" in msg["List-Unsubscribe"]
    assert msg["Message-ID"]
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and text is not None
    assert "<script>" not in html.get_content()
    stored_title = msg["Subject"].strip().removeprefix("Breaking news: ")
    assert "&" in stored_title and "<" in stored_title, stored_title
    assert stored_title.replace("&", "&amp;").replace("<", "&lt;") in html.get_content()
    assert "https://news.example.id/berita/1" in text.get_content()
    harian = _parse(got["harian@example.id"].data)
    assert harian["Subject"].strip().startswith("Berita kilat: ")
    with db.connect() as conn:
        rows = conn.execute(select(breaking_alerts.c.state, breaking_alerts.c.article_id)).all()
        assert get_article(conn, article_id) is not None
    assert sorted(rows) == [("sent", article_id), ("sent", article_id)]


def test_quiet_hours_hold_an_alert_and_the_cap_stops_the_fourth(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    late = datetime(2025, 11, 17, 15, 0, tzinfo=UTC)  # 23:00 WITA, 22:00 WIB
    clock = Clock(late)
    with ScriptedSMTPServer() as server:
        config = _config(make_config, tmp_path, server.port)
        _add(config, db, "wita@example.id", frequency="breaking")
        _add(config, db, "wib@example.id", frequency="breaking", timezone="Asia/Jakarta")
        wit = _add(config, db, "wit@example.id", frequency="breaking", timezone="Asia/Jayapura")
        _push(config, db, clock.now, 1)
        assert _send(config, db, clock).progress.sent == 0  # all three are in quiet hours
        with db.connect() as conn:
            released = alert_store.next_held(conn, clock.now)
        assert released == datetime(2025, 11, 17, 21, 0, tzinfo=UTC)  # 06:00 WIT
        clock.now = released
        _send(config, db, clock)
        assert [m.rcpt_tos for m in server.received] == [("wit@example.id",)]
        clock.now = datetime(2025, 11, 17, 23, 0, tzinfo=UTC)  # 07:00 WITA, 06:00 WIB
        _send(config, db, clock)
        assert sorted(r for m in server.received for r in m.rcpt_tos) == [
            "wib@example.id",
            "wit@example.id",
            "wita@example.id",
        ]
        # the held alert counted on Tuesday: three more fresh articles that
        # Tuesday morning reach WIT only twice (1 + 2 = the cap of 3)
        for n in (2, 3, 4):
            _push(config, db, clock.now, n)
        _send(config, db, clock)
    wit_mail = [m for m in server.received if "wit@example.id" in m.rcpt_tos]
    assert len(wit_mail) == 3
    with db.connect() as conn:
        counts = alert_store.counted(conn, [wit.id], [datetime(2025, 11, 18).date()])
    assert counts == {(wit.id, datetime(2025, 11, 18).date()): 3}


def test_no_breaking_readers_or_a_cap_of_zero_queue_nothing(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    config = _config(make_config, tmp_path, 1, "breaking_max_per_day = 0\n")
    _add(config, db, "kilat@example.id", frequency="breaking")
    _push(config, db, NOON_WITA, 1)
    with db.connect() as conn:
        stored = get_article(conn, _push(config, db, NOON_WITA, 1))
    assert stored is not None
    assert enqueue_alerts(config, db, [stored], NOON_WITA) == 0
    with db.connect() as conn:
        assert alert_store.count_by_state(conn) == {}


def test_front_matter_breaking_in_the_directory_source_alerts_once(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    from kabarfeed.ingest import Ingestor

    clock = Clock(NOON_WITA)
    with ScriptedSMTPServer() as server:
        config = _config(make_config, tmp_path, server.port)
        _add(config, db, "kilat@example.id", frequency="breaking")
        folder = tmp_path / "redaksi"
        published = (NOON_WITA - timedelta(minutes=3)).isoformat()
        for name, flag in (("kilat", "true"), ("biasa", "false")):
            (folder / f"{name}.md").write_text(
                f"---\ntitle: Gempa {name} guncang Balikpapan\ndate: {published}\n"
                f"regions: [balikpapan]\nbreaking: {flag}\n---\n\nBALIKPAPAN - Gempa {name}.\n",
                encoding="utf-8",
            )
        report = Ingestor(config, db, clock).run(["redaksi"])
        assert report.total("new") == 2
        assert not any("unknown key" in w for o in report.outcomes for w in o.warnings)
        Ingestor(config, db, clock).run(["redaksi"])  # read again: nothing new
        assert _send(config, db, clock).progress.sent == 1
    [received] = server.received
    assert "Gempa kilat" in _parse(received.data)["Subject"]
    with db.connect() as conn:
        assert alert_store.count_by_state(conn) == {"sent": 1}


def _weekly_editions(config: Config, db: Database) -> dict[str, list[str]]:
    from kabarfeed.delivery.enqueue import enqueue_editions
    from kabarfeed.digest.schedule import send_moment
    from kabarfeed.store.schema import deliveries, subscribers

    thursday = datetime(2025, 11, 20).date()
    moment = send_moment("Asia/Makassar", "06:00", thursday) + timedelta(minutes=1)
    with db.connect() as conn:
        ids = sorted(conn.execute(select(subscribers.c.id)).scalars())
    enqueue_editions(config, db, ids, thursday, now=moment)
    with db.connect() as conn:
        rows = conn.execute(
            select(subscribers.c.email, deliveries.c.article_ids).join(
                subscribers, subscribers.c.id == deliveries.c.subscriber_id
            )
        ).all()
    import json

    return {email_: sorted(json.loads(ids_)) for email_, ids_ in rows}


def _week_of_news(config: Config, db: Database, clock: Clock) -> tuple[str, str]:
    _add(config, db, "alerts@example.id", frequency="weekly", weekly_day=3, breaking_alerts=True)
    _add(config, db, "plain@example.id", frequency="weekly", weekly_day=3)
    tuesday = datetime(2025, 11, 18, 4, 0, tzinfo=UTC)  # 12:00 WITA
    clock.now = tuesday
    breaking = _push(config, db, tuesday, 1)
    body = article(2, published=(tuesday - timedelta(minutes=5)).isoformat())
    payload = parse_payload(body, source="redaksi", default_tz="Asia/Makassar")
    source = next(s for s in config.sources if s.name == "redaksi")
    regular = push_article(config, db, source, payload, now=tuesday).article
    assert regular is not None
    assert _send(config, db, clock).progress.sent == 1  # the alert
    return breaking, regular.id


def test_a_weekly_edition_leaves_out_what_its_reader_got_as_an_alert(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    clock = Clock(NOON_WITA)
    with ScriptedSMTPServer() as server:
        config = _config(make_config, tmp_path, server.port)
        breaking, regular = _week_of_news(config, db, clock)
    assert _weekly_editions(config, db) == {
        "alerts@example.id": [regular],
        "plain@example.id": sorted([breaking, regular]),
    }


def test_weekly_repeats_breaking_keeps_them(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    clock = Clock(NOON_WITA)
    with ScriptedSMTPServer() as server:
        config = _config(make_config, tmp_path, server.port, "weekly_repeats_breaking = true\n")
        breaking, regular = _week_of_news(config, db, clock)
    both = sorted([breaking, regular])
    assert _weekly_editions(config, db) == {"alerts@example.id": both, "plain@example.id": both}


def test_status_shows_breaking_readers_alerts_and_what_quiet_hours_hold(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    import json

    from click.testing import CliRunner

    from kabarfeed.cli import main
    from kabarfeed.status import gather_status

    late = datetime(2025, 11, 17, 15, 0, tzinfo=UTC)  # 23:00 WITA
    config = _config(make_config, tmp_path, 1)
    _add(config, db, "kilat@example.id", frequency="breaking")
    _add(config, db, "mingguan@example.id", frequency="weekly", breaking_alerts=True)
    _add(config, db, "biasa@example.id")
    _push(config, db, late, 1)
    report = gather_status(config, db, late, config_path=tmp_path / "config.toml")
    assert report.frequencies == {"breaking": 1, "daily": 1, "weekly": 1}
    assert report.breaking == {
        "breaking_only": 1,
        "opted_in": 1,
        "alerts": {"queued": 2},
        "held": 2,
        "next_release": datetime(2025, 11, 17, 22, 0, tzinfo=UTC),  # 06:00 WITA
    }
    cli = ["--config", str(tmp_path / "config.toml"), "status"]
    as_json = json.loads(CliRunner().invoke(main, [*cli, "--json"]).output)
    assert as_json["breaking"]["alerts"] == {"queued": 2}
    text = CliRunner().invoke(main, cli).output
    assert "breaking alerts: 1 breaking-only and 1 opted-in readers; alerts 2 queued" in text


def test_erasing_a_subscriber_erases_their_alerts(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    config = _config(make_config, tmp_path, 1)
    gone = _add(config, db, "hapus@example.id", frequency="breaking")
    _add(config, db, "tetap@example.id", frequency="breaking")
    _push(config, db, NOON_WITA, 1)
    with db.begin() as conn:
        sub_store.delete_subscriber(conn, gone.id)
    with db.connect() as conn:
        left = conn.execute(select(breaking_alerts.c.subscriber_id)).scalars().all()
    assert left and gone.id not in left


def test_an_address_refused_at_rcpt_bounces_the_reader(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    from kabarfeed.models import SubscriberStatus
    from smtpserver import Faults

    clock = Clock(NOON_WITA)
    with ScriptedSMTPServer(Faults(reject={"mati@example.id"})) as server:
        config = _config(make_config, tmp_path, server.port)
        dead = _add(config, db, "mati@example.id", frequency="breaking")
        _add(config, db, "hidup@example.id", frequency="breaking")
        _push(config, db, clock.now, 1)
        report = _send(config, db, clock)
    assert (report.progress.sent, report.progress.failed) == (1, 1)
    with db.connect() as conn:
        found = sub_store.get(conn, dead.id)
        assert alert_store.count_by_state(conn) == {"sent": 1, "failed": 1}
    assert found is not None and found.status is SubscriberStatus.BOUNCED


def test_an_editor_sends_breaking_alerts_from_the_console(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    import re

    from starlette.testclient import TestClient

    from kabarfeed.admin import accounts, audit
    from kabarfeed.admin.accounts import Role
    from kabarfeed.admin.audit import Actor, AuditFilter
    from kabarfeed.web import create_app

    clock = Clock(NOON_WITA)
    config = _config(make_config, tmp_path, 1)
    _add(config, db, "kilat@example.id", frequency="breaking")
    body = article(1, published=(NOON_WITA - timedelta(minutes=10)).isoformat())
    payload = parse_payload(body, source="redaksi", default_tz="Asia/Makassar")
    source = next(s for s in config.sources if s.name == "redaksi")
    stored = push_article(config, db, source, payload, now=NOON_WITA).article
    assert stored is not None
    with db.connect() as conn:
        assert alert_store.count_by_state(conn) == {}  # not breaking when pushed
    admin = Actor.console("admin@example.id")
    invite = accounts.add_account(
        db, "redaktur@example.id", Role.EDITOR, admin, now=clock.now, ttl=timedelta(days=1)
    )
    accounts.set_password(db, invite.token, "kopi-tubruk-pagi", now=clock.now)
    client = TestClient(create_app(config, db, clock=clock), follow_redirects=False)

    def csrf(html: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found
        return found[1]

    login = client.get("/admin/login")
    client.post(
        "/admin/login",
        data={
            "csrf": csrf(login.text),
            "email": "redaktur@example.id",
            "password": "kopi-tubruk-pagi",
        },
    )
    page = client.get(f"/admin/articles/{stored.id}")
    assert f'action="/admin/articles/{stored.id}/breaking"' in page.text
    forged = client.post(f"/admin/articles/{stored.id}/breaking", data={"csrf": "x"})
    assert forged.status_code in (400, 403)
    done = client.post(f"/admin/articles/{stored.id}/breaking", data={"csrf": csrf(page.text)})
    assert done.status_code == 303
    assert "Berita kilat: 1 peringatan masuk antrean." in client.get(done.headers["location"]).text
    again = client.post(f"/admin/articles/{stored.id}/breaking", data={"csrf": csrf(page.text)})
    assert again.headers["location"].endswith("n=0")  # once per article and reader
    with db.connect() as conn:
        assert alert_store.count_by_state(conn) == {"queued": 1}
    actions = [e.action for e in audit.search(db, AuditFilter())]
    assert actions.count("article.breaking") == 2


def test_a_queued_alert_is_skipped_once_its_reader_stops_taking_them(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    clock = Clock(NOON_WITA)
    with ScriptedSMTPServer() as server:
        config = _config(make_config, tmp_path, server.port)
        reader = _add(config, db, "ragu@example.id", breaking_alerts=True)
        _add(config, db, "tetap@example.id", frequency="breaking")
        _push(config, db, clock.now, 1)
        with db.begin() as conn:
            sub_store.update_preferences(
                conn, reader.id, SubscriberDraft(reader.email, breaking_alerts=False), now=clock.now
            )
        report = _send(config, db, clock)
    assert (report.progress.sent, report.progress.skipped) == (1, 1)
    assert [m.rcpt_tos for m in server.received] == [("tetap@example.id",)]
    with db.connect() as conn:
        assert alert_store.count_by_state(conn) == {"sent": 1, "skipped": 1}
