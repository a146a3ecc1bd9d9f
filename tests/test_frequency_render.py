"""The weekly edition's layout: "the week in <place>" title and subject, the
week's dates in the intro, the articles grouped by the reader's regions and
categories and capped, advertorials still labelled; a daily reader with the
very same articles in the same batch keeps the daily layout."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import date, timedelta
from email.message import EmailMessage

from kabarfeed.config import Config
from kabarfeed.digest.preview import build_preview
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.digest.selection import select_articles
from kabarfeed.models import Subscriber
from kabarfeed.store import Database
from kabarfeed.store import subscribers as sub_store
from kabarfeed.subscribers import SubscriberDraft, validate_draft, with_defaults
from tests.conftest import ConfigFactory
from tests.digest_support import CUTOFF, article, sample_articles, save, subscriber

MONDAY = date(2025, 11, 17)


def _parts(raw: bytes) -> tuple[str, str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return str(message["Subject"]), str(text.get_content()), str(html.get_content())


def test_weekly_and_daily_in_one_batch(make_config: ConfigFactory) -> None:
    config = make_config('[digest]\nadvertorial_label = "Advertorial"\n')
    renderer = DigestRenderer(config, clock=lambda: CUTOFF)
    articles = sample_articles()
    daily = subscriber(1)
    weekly = replace(subscriber(2), frequency="weekly", weekly_day=0)
    batch = [
        EditionInput(daily, MONDAY, articles, len(articles)),
        EditionInput(weekly, MONDAY, articles, len(articles)),
    ]
    (d_subject, d_text, d_html), (w_subject, w_text, w_html) = (
        _parts(m.data) for m in renderer.render_batch(batch)
    )
    assert w_subject.startswith("Sepekan di Balikpapan")
    assert d_subject.startswith("Kabar Balikpapan")
    assert "Berita pilihan sepekan terakhir, 11 November – Senin, 17 November 2025." in w_text
    assert "sepekan" not in d_text
    assert "mingguan" in w_html and "mingguan" not in d_html
    assert "Advertorial" in w_html and "Promo akhir tahun" in w_html
    reference = renderer.render_reference(batch[1])
    assert _parts(reference.data)[1] == w_text


def test_weekly_edition_groups_and_caps_the_weeks_articles(make_config: ConfigFactory) -> None:
    config = make_config("[digest]\nmax_articles = 5\n")
    weekly = replace(
        subscriber(1, regions=("balikpapan", "samarinda"), categories=()),
        frequency="weekly",
    )
    week = [
        article(n, regions=("samarinda",) if i % 3 == 0 else ("balikpapan",))
        for i, n in enumerate(range(1, 24 * 7, 12))
    ]
    chosen = select_articles(
        weekly,
        week,
        since=CUTOFF - timedelta(days=7),
        cutoff=CUTOFF,
        taxonomy=config.taxonomy,
        config=config.digest,
        max_age=timedelta(days=7),
    )
    assert chosen.total_matching == len(week) == 14
    assert len(chosen.articles) == 5
    assert [s.slug for s in chosen.sections] == ["balikpapan"]  # the reader's first region first
    uncapped = select_articles(
        weekly,
        week,
        since=CUTOFF - timedelta(days=7),
        cutoff=CUTOFF,
        taxonomy=config.taxonomy,
        config=config.digest.model_copy(update={"max_articles": 50}),
        max_age=timedelta(days=7),
    )
    assert [(s.slug, len(s.articles)) for s in uncapped.sections] == [
        ("balikpapan", 9),
        ("samarinda", 5),
    ]
    renderer = DigestRenderer(config, clock=lambda: CUTOFF)
    edition = EditionInput(weekly, MONDAY, chosen.articles, chosen.total_matching)
    _, text, _ = _parts(renderer.render_one(edition).data)
    assert "9" in text and "lainnya di web" in text  # the rest behind "more on the web"


def test_a_weekly_readers_welcome_names_their_day(make_config: ConfigFactory) -> None:
    config = make_config()
    renderer = DigestRenderer(config, clock=lambda: CUTOFF)
    weekly = replace(subscriber(1), frequency="weekly", weekly_day=3)
    articles = sample_articles()
    welcome = EditionInput(weekly, MONDAY, articles, len(articles), first=True)
    _, text, _ = _parts(renderer.render_one(welcome).data)
    assert "ringkasan mingguan tiba setiap hari Kamis pukul 06:00 WITA" in text
    english = replace(weekly, language="en")
    _, text_en, _ = _parts(renderer.render_one(replace(welcome, subscriber=english)).data)
    assert "weekly digest arrives every Thursday at 06:00 WITA" in text_en


def test_preview_of_a_weekly_reader_covers_their_week(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config("[digest]\nmax_articles = 100\n")
    save(db, [article(n) for n in range(1, 24 * 9, 24)])  # one a day, nine days back
    weekly = _stored_weekly(config, db)
    preview = build_preview(db, config, weekly, now=CUTOFF)
    articles = preview.edition.articles
    days_back = sorted(round((CUTOFF - a.first_seen) / timedelta(days=1)) for a in articles)
    assert days_back == [0, 1, 2, 3, 4, 5, 6]  # the last seven days, nothing older


def _stored_weekly(config: Config, db: Database) -> Subscriber:
    draft = SubscriberDraft(
        "w@example.id", regions=("balikpapan",), frequency="weekly", weekly_day=0
    )
    ready = with_defaults(validate_draft(draft, config.taxonomy), config)
    with db.begin() as conn:
        return sub_store.add(conn, ready, now=CUTOFF - timedelta(days=30))
