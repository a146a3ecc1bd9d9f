"""Welcome editions: a newly confirmed reader's first digest, right away, exactly once.

Pure selection first, then the real store: promise → welcome row (once) →
the next regular edition continues from its cut-off without repeating.
"""

from __future__ import annotations

import email
import json
from datetime import date, timedelta
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kabarfeed.cli import main
from kabarfeed.config import Config
from kabarfeed.delivery.enqueue import WelcomeReport, enqueue_editions, enqueue_welcomes
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.digest.selection import select_latest
from kabarfeed.errors import ConfigError
from kabarfeed.models import Consent, DeliveryState, SubscriberStatus
from kabarfeed.store import Database, sources, welcomes
from kabarfeed.store import deliveries as outbox
from kabarfeed.store import subscribers as store
from kabarfeed.store.schema import deliveries
from kabarfeed.subscribers import SubscriberDraft, greets, with_defaults
from kabarfeed.web.signup import confirm
from tests.conftest import REPO, ConfigFactory
from tests.digest_support import CUTOFF, article, save, subscriber

NOW = CUTOFF + timedelta(hours=3)  # 09:00 WITA, after the 06:00 send time


# -- pure selection ----------------------------------------------------------------


def test_latest_n_whatever_their_age_in_sections(make_config: ConfigFactory) -> None:
    taxonomy = make_config().taxonomy
    old = [article(n, at=CUTOFF - timedelta(days=400 + n)) for n in range(1, 8)]
    other_region = article(50, regions=("jayapura",))
    not_yet = article(60, at=NOW + timedelta(minutes=1))
    sub = subscriber(regions=("balikpapan",))
    picked = select_latest(
        sub, [*old, other_region, not_yet, old[0]], limit=5, cutoff=NOW, taxonomy=taxonomy
    )
    assert [a.id for a in picked.articles] == [a.id for a in old[:5]]
    assert picked.total_matching == 7
    assert picked.cutoff == NOW
    assert picked.since < min(a.first_seen for a in picked.articles)
    assert [s.slug for s in picked.sections] == ["balikpapan"]


@settings(max_examples=40, deadline=None)
@given(
    ages=st.lists(st.integers(min_value=0, max_value=5000), min_size=0, max_size=25),
    limit=st.integers(min_value=1, max_value=12),
)
def test_welcome_window_holds_exactly_its_articles(ages: list[int], limit: int) -> None:
    from kabarfeed.models import Region, Taxonomy

    taxonomy = Taxonomy((Region("balikpapan", "Balikpapan", "Asia/Makassar"),), ())
    pool = [article(i + 1, at=NOW - timedelta(hours=h)) for i, h in enumerate(ages)]
    picked = select_latest(subscriber(), pool, limit=limit, cutoff=NOW, taxonomy=taxonomy)
    chosen = {a.id for a in picked.articles}
    assert len(chosen) == min(limit, len(pool))
    newest = sorted(pool, key=lambda a: (a.published, a.id), reverse=True)[:limit]
    assert chosen == {a.id for a in newest}
    inside = {a.id for a in pool if picked.since < a.first_seen <= picked.cutoff}
    assert chosen <= inside  # the window covers every article sent ...
    later = [a for a in pool if a.first_seen > picked.cutoff]
    assert not later  # ... and the next edition starts at the cut-off


# -- the store: promise, record once, continue -----------------------------------------


def _add(config: Config, db: Database, email: str = "baru@example.org", **kw: object) -> int:
    draft = SubscriberDraft(email=email, regions=("balikpapan",), **kw)  # type: ignore[arg-type]
    with db.begin() as conn:
        sub = store.add(conn, with_defaults(draft, config), now=NOW)
        return sub.id


def _promise(db: Database, sid: int) -> None:
    with db.begin() as conn:
        welcomes.promise(conn, sid, NOW)


def _rows(db: Database, sid: int) -> list[outbox.DeliveryRow]:
    with db.connect() as conn:
        rows = [r for r in outbox.list_deliveries(conn) if r.subscriber_id == sid]
    return sorted(rows, key=lambda r: r.local_date)


def _sent_ids(db: Database, sid: int) -> dict[str, list[str]]:
    """Each edition's article ids, by local date."""
    d = deliveries.c
    query = select(d.local_date, d.article_ids).where(d.subscriber_id == sid)
    with db.connect() as conn:
        return {day: json.loads(ids) for day, ids in conn.execute(query)}


def test_welcome_is_recorded_once_and_next_edition_does_not_repeat(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config('[digest]\nwelcome = "latest:3"\n')
    save(db, [article(n, at=CUTOFF - timedelta(days=90 + n)) for n in range(1, 6)])
    sid = _add(config, db)
    _promise(db, sid)
    report = enqueue_welcomes(config, db, now=NOW)
    assert (report.queued, report.waiting, report.dropped) == (1, 0, 0)
    again = enqueue_welcomes(config, db, now=NOW + timedelta(minutes=1))
    assert (again.queued, again.waiting, again.dropped) == (0, 0, 0)
    [row] = _rows(db, sid)
    assert row.state is DeliveryState.QUEUED and row.local_date == "2025-11-17"
    assert row.article_count == 3
    with db.connect() as conn:
        assert welcomes.pending(conn) == {}
    assert _sent_ids(db, sid) == {"2025-11-17": ["art0001", "art0002", "art0003"]}
    # Today's regular edition is the welcome: nothing more that day.
    assert enqueue_editions(config, db, [sid], date(2025, 11, 17), now=NOW) == 0
    # Tomorrow: only what arrived after the welcome's cut-off, never its articles.
    fresh = article(900, at=NOW + timedelta(hours=2))
    save(db, [fresh])
    tomorrow = CUTOFF + timedelta(days=1)
    assert enqueue_editions(config, db, [sid], date(2025, 11, 18), now=tomorrow) == 1
    assert _sent_ids(db, sid)["2025-11-18"] == ["art0900"]


def test_promise_waits_for_articles_and_a_regular_edition_becomes_the_welcome(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config()
    sid = _add(config, db)
    _promise(db, sid)
    waiting = enqueue_welcomes(config, db, now=NOW)
    assert (waiting.queued, waiting.waiting) == (0, 1)
    # The day's regular edition while the store is empty: no row, the promise stays.
    assert enqueue_editions(config, db, [sid], date(2025, 11, 17), now=NOW) == 0
    assert _rows(db, sid) == []
    # Articles arrive (old ones too); the next regular edition is the welcome.
    save(db, [article(n, at=CUTOFF - timedelta(days=30 * n)) for n in range(1, 13)])
    tomorrow = CUTOFF + timedelta(days=1)
    assert enqueue_editions(config, db, [sid], date(2025, 11, 18), now=tomorrow) == 1
    [row] = _rows(db, sid)
    assert row.article_count == 10  # "latest:10", whatever their age ([digest] max_age is 48h)
    with db.connect() as conn:
        assert welcomes.pending(conn) == {}


def test_welcome_waits_until_every_enabled_source_was_read(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    """On a new install the first digest is not made of the fastest source alone."""
    for name in ("cepat", "lambat"):
        (tmp_path / name).mkdir()
    config = make_config(
        '[digest]\nwelcome = "latest:3"\n'
        + "".join(
            f'[[sources]]\nname = "{n}"\nkind = "directory"\npath = "{tmp_path / n}"\n'
            for n in ("cepat", "lambat")
        )
    )
    save(db, [article(n, at=CUTOFF - timedelta(days=n)) for n in range(1, 4)])
    sid = _add(config, db)
    _promise(db, sid)
    later = NOW + timedelta(minutes=5)
    with db.begin() as conn:
        for name in ("cepat", "lambat"):
            sources.ensure_source(conn, name, "directory", str(tmp_path / name), now=NOW)
        sources.record_success(conn, "cepat", now=NOW, next_fetch_at=later)
    assert enqueue_welcomes(config, db, now=NOW) == WelcomeReport(waiting=1)
    with db.begin() as conn:  # a failed read counts as read: it must not hold welcomes forever
        sources.record_failure(conn, "lambat", "timeout", now=NOW, next_fetch_at=later)
    assert enqueue_welcomes(config, db, now=NOW).queued == 1


@pytest.mark.parametrize("case", ["off", "unsubscribed", "had a digest"])
def test_promises_that_no_longer_apply_are_dropped(
    make_config: ConfigFactory, db: Database, case: str
) -> None:
    extra = '[digest]\nwelcome = "off"\n' if case == "off" else ""
    config = make_config(extra)
    save(db, [article(1)])
    sid = _add(config, db)
    if case == "unsubscribed":
        with db.begin() as conn:
            store.set_status(conn, sid, SubscriberStatus.UNSUBSCRIBED, now=NOW)
    if case == "had a digest":
        enqueue_editions(config, db, [sid], date(2025, 11, 16), now=CUTOFF)
        assert [r.state for r in _rows(db, sid)] == [DeliveryState.QUEUED]
    _promise(db, sid)
    report = enqueue_welcomes(config, db, now=NOW)
    assert (report.queued, report.dropped) == (0, 1)
    with db.connect() as conn:
        assert welcomes.pending(conn) == {}


def test_web_confirmation_promises_a_welcome(make_config: ConfigFactory, db: Database) -> None:
    config = make_config()
    sid = _add(
        config,
        db,
        status=SubscriberStatus.PENDING,
        consent=Consent(NOW, "web", "203.0.113.9", "Firefox", "2025-11"),
    )
    with db.connect() as conn:
        token = store.get(conn, sid).token  # type: ignore[union-attr]
        assert welcomes.pending(conn) == {}
    _, activated = confirm(db, token, now=NOW)
    assert activated
    with db.connect() as conn:
        assert welcomes.pending(conn) == {sid: NOW}
    _, again = confirm(db, token, now=NOW + timedelta(hours=1))
    assert not again


@pytest.mark.parametrize("value", ["latest:0", "latest:201", "10", "latest", "on"])
def test_welcome_setting_is_validated(make_config: ConfigFactory, value: str) -> None:
    with pytest.raises(ConfigError, match=r"digest\.welcome"):
        make_config(f'[digest]\nwelcome = "{value}"\n')


def test_welcome_setting_values(make_config: ConfigFactory) -> None:
    assert make_config().digest.welcome_articles == 10
    assert make_config('[digest]\nwelcome = "off"\n').digest.welcome_articles == 0
    assert make_config('[digest]\nwelcome = "latest:200"\n').digest.welcome_articles == 200


def test_same_day_slot_taken_waits_for_the_next_day(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config()
    save(db, [article(1)])
    sid = _add(config, db)
    with db.begin() as conn:
        outbox.insert_editions(
            conn,
            [outbox.NewDelivery(sid, "2025-11-17", NOW, NOW, (), DeliveryState.SKIPPED, "late", 0)],
            NOW,
        )
    _promise(db, sid)
    report = enqueue_welcomes(config, db, now=NOW)
    assert (report.queued, report.waiting) == (0, 1)
    next_day = enqueue_welcomes(config, db, now=NOW + timedelta(days=1))
    assert next_day.queued == 1
    assert [r.local_date for r in _rows(db, sid)] == ["2025-11-17", "2025-11-18"]


def test_dropped_promise_for_deleted_subscriber(make_config: ConfigFactory, db: Database) -> None:
    config = make_config()
    sid = _add(config, db)
    _promise(db, sid)
    with db.begin() as conn:
        store.delete_subscriber(conn, sid)
    assert enqueue_welcomes(config, db, now=NOW).dropped == 1
    after = enqueue_welcomes(config, db, now=NOW)
    assert (after.queued, after.waiting, after.dropped) == (0, 0, 0)


def test_cli_add_with_welcome_gets_the_sample_articles_at_once(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    mail = tmp_path / "mail"
    make_config(
        f'[[sources]]\nname = "redaksi"\nkind = "directory"\n'
        f'path = "{REPO / "examples" / "articles"}"\n\n[maildir]\npath = "{mail}"\n'
    )

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), *args])
        assert result.exit_code == 0, result.output
        return result.output

    cli("ingest")
    cli("subscribers", "add", "sambut@example.org", "--welcome")
    cli("subscribers", "add", "biasa@example.org")
    preview = tmp_path / "preview.html"
    shown = cli("digest", "preview", "--email", "sambut@example.org", "--html", str(preview))
    assert "9 of 9 matching articles" in shown  # the welcome, as it would be sent
    assert "Selamat datang di Nusantara Plus!" in preview.read_text(encoding="utf-8")
    cli("digest", "send", "--force")
    # The sample articles are a year old: only the welcome edition holds them.
    [sent] = list((mail / "new").iterdir())
    message = email.message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert "sambut@example.org" in str(message["To"])
    assert "(9 berita)" in str(message["Subject"])
    body = message.get_body(("plain",))
    assert body is not None and "Selamat datang di Nusantara Plus!" in body.get_content()


def test_first_edition_greets_unless_the_list_was_imported() -> None:
    assert greets(subscriber(consent=Consent(NOW, "web")))
    assert greets(subscriber(consent=Consent(NOW, "seed")))
    assert not greets(subscriber(consent=Consent(NOW, "import")))


def test_greeting_renders_in_the_subscribers_language(make_config: ConfigFactory) -> None:
    config = make_config()
    renderer = DigestRenderer(config, clock=lambda: NOW)
    sub = subscriber(language="en", timezone="Asia/Jakarta", send_at="07:00")
    first = EditionInput(sub, date(2025, 11, 17), (article(1),), 1, first=True)
    later = EditionInput(sub, date(2025, 11, 18), (article(1),), 1)
    [a, b] = renderer.render_batch([first, later])
    assert b"Welcome to Nusantara Plus!" in a.data and b"07:00 WIB" in a.data
    assert b"Welcome to" not in b.data
