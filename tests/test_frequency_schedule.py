"""Daily and weekly editions with an injected clock, across a week and across
the DST-free WIB / WITA / WIT zones: a weekly reader gets one edition on
their weekday covering the last seven days; changing frequency mid-week
neither skips an article nor sends one twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kabarfeed.config import Config
from kabarfeed.digest.schedule import (
    WEEK,
    is_edition_day,
    next_edition_date,
    send_moment,
    window_max_age,
)
from kabarfeed.integrations import enqueue_group, skip_group
from kabarfeed.models import Consent, Subscriber, SubscriberStatus
from kabarfeed.scheduler import SendGroup
from kabarfeed.store import Database
from kabarfeed.store import subscribers as sub_store
from kabarfeed.store.schema import deliveries
from kabarfeed.subscribers import SubscriberDraft, check_weekday, validate_draft, with_defaults
from tests.conftest import ConfigFactory
from tests.feeds_support import make_article, store

MONDAY = date(2025, 11, 17)  # a Monday
ZONES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}


def _sub(**kw: object) -> Subscriber:
    base = Subscriber(
        1, "a@example.id", "t", "Asia/Makassar", "06:00", "id", SubscriberStatus.ACTIVE, MONDAY
    )  # type: ignore[arg-type]
    return replace(base, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ pure


@pytest.mark.parametrize("zone", ZONES.values())
def test_weekly_has_one_edition_day_a_week_in_every_zone(zone: str) -> None:
    weekly = _sub(frequency="weekly", weekly_day=3, timezone=zone)  # Thursday
    days = [MONDAY + timedelta(days=n) for n in range(14)]
    assert [d for d in days if is_edition_day(weekly, d)] == [
        date(2025, 11, 20),
        date(2025, 11, 27),
    ]
    assert all(is_edition_day(_sub(timezone=zone), d) for d in days)
    # Monday 08:00 local: the next edition is that Thursday at 06:00 local
    now = send_moment(zone, "08:00", MONDAY)
    assert next_edition_date(weekly, now) == date(2025, 11, 20)
    thursday_send = send_moment(zone, "06:00", date(2025, 11, 20))
    assert next_edition_date(weekly, thursday_send - timedelta(seconds=1)) == date(2025, 11, 20)
    assert next_edition_date(weekly, thursday_send) == date(2025, 11, 27)


def test_the_same_utc_moment_is_a_different_weekday_across_zones() -> None:
    # Sunday 23:30 WIB is Monday 00:30 WITA and 01:30 WIT
    now = datetime(2025, 11, 16, 16, 30, tzinfo=UTC)
    subs = {n: _sub(frequency="weekly", weekly_day=0, timezone=z) for n, z in ZONES.items()}
    nxt = {n: next_edition_date(s, now) for n, s in subs.items()}
    assert nxt == {"WIB": MONDAY, "WITA": MONDAY, "WIT": MONDAY}
    later = send_moment("Asia/Jayapura", "06:00", MONDAY)  # 21:00 UTC Sunday
    assert next_edition_date(subs["WIT"], later) == MONDAY + WEEK
    assert next_edition_date(subs["WIB"], later) == MONDAY  # still 04:00 in Jakarta


@settings(max_examples=60, deadline=None)
@given(
    since_hours=st.integers(min_value=1, max_value=24 * 20),
    changed=st.booleans(),
    weekly=st.booleans(),
)
def test_window_max_age_never_cuts_inside_an_editions_window(
    since_hours: int, changed: bool, weekly: bool
) -> None:
    cutoff = datetime(2025, 11, 24, 0, 0, tzinfo=UTC)
    since = cutoff - timedelta(hours=since_hours)
    sub = _sub(
        frequency="weekly" if weekly else "daily",
        frequency_since=since + timedelta(minutes=1) if changed else None,
    )
    default = timedelta(hours=48)
    age = window_max_age(sub, since, cutoff, default)
    assert age >= default
    if weekly or changed:
        assert age >= cutoff - since
    if weekly:
        assert age >= WEEK
    if not weekly and not changed:
        assert age == default


def test_weekday_names_in_english_and_indonesian() -> None:
    assert check_weekday("Kamis") == check_weekday("thursday") == check_weekday("thu") == 3
    assert check_weekday("6") == check_weekday("minggu") == 6
    with pytest.raises(Exception, match="not a weekday"):
        check_weekday("someday")


# ------------------------------------------------------------------ with the store


def _add(config: Config, db: Database, email: str, zone: str, **kw: object) -> Subscriber:
    draft = SubscriberDraft(
        email,
        regions=("balikpapan",),
        timezone=zone,
        send_at="06:00",
        consent=Consent(datetime(2025, 11, 1, tzinfo=UTC), "test"),
        **kw,  # type: ignore[arg-type]
    )
    ready = with_defaults(validate_draft(draft, config.taxonomy), config)
    with db.begin() as conn:
        return sub_store.add(conn, ready, now=datetime(2025, 11, 1, tzinfo=UTC))


def _editions(db: Database) -> dict[int, list[tuple[str, list[str]]]]:
    out: dict[int, list[tuple[str, list[str]]]] = {}
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.subscriber_id, deliveries.c.local_date, deliveries.c.article_ids)
            .where(deliveries.c.state != "skipped")
            .order_by(deliveries.c.local_date)
        )
        for sid, day, ids in rows:
            out.setdefault(sid, []).append((day, json.loads(ids)))
    return out


class _Week:
    """Articles arrive every six hours; each zone's 06:00 group runs every day."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config, self.db = config, db
        self.n = 0

    def publish_until(self, moment: datetime) -> None:
        start = datetime(2025, 11, 10, tzinfo=UTC)
        batch = []
        while start + timedelta(hours=6 * self.n) < moment:
            when = start + timedelta(hours=6 * self.n)
            batch.append(
                make_article(
                    self.n,
                    id=f"w{self.n:05d}",
                    url=f"https://news.example.id/w/{self.n}",
                    published=when,
                    updated=when,
                    first_seen=when,
                )
            )
            self.n += 1
        if batch:
            store(self.db, batch)

    def ids_between(self, after: datetime, until: datetime) -> set[str]:
        start = datetime(2025, 11, 10, tzinfo=UTC)
        return {
            f"w{n:05d}" for n in range(self.n) if after < start + timedelta(hours=6 * n) <= until
        }

    def days(self, first: date, count: int) -> Iterator[tuple[str, date, datetime]]:
        moments = sorted(
            (send_moment(zone, "06:00", first + timedelta(days=d)), zone, first + timedelta(days=d))
            for d in range(count)
            for zone in ZONES.values()
        )
        for moment, zone, day in moments:
            yield zone, day, moment

    def run(self, first: date, count: int, hook: object = None) -> None:
        for zone, day, moment in self.days(first, count):
            if callable(hook):
                hook(day, moment)
            self.publish_until(moment)
            enqueue_group(
                self.config, self.db, lambda m=moment: m, SendGroup(zone, "06:00"), day, moment
            )


def test_a_week_of_daily_and_weekly_editions_across_three_zones(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config("[digest]\nmax_articles = 200\n")
    week = _Week(config, db)
    week.publish_until(datetime(2025, 11, 16, tzinfo=UTC))  # the week before
    daily = {n: _add(config, db, f"d-{n}@example.id", z) for n, z in ZONES.items()}
    weekly = {
        n: _add(config, db, f"w-{n}@example.id", z, frequency="weekly", weekly_day=3)
        for n, z in ZONES.items()
    }
    week.run(MONDAY, 10)  # Monday 17 ... Wednesday 26 November
    editions = _editions(db)
    for name, zone in ZONES.items():
        assert [d for d, _ in editions[daily[name].id]] == [
            (MONDAY + timedelta(days=d)).isoformat() for d in range(10)
        ]
        ((day, ids),) = editions[weekly[name].id]
        assert day == "2025-11-20"
        cutoff = send_moment(zone, "06:00", date(2025, 11, 20))
        expected = week.ids_between(cutoff - WEEK, cutoff)
        assert set(ids) == expected and len(expected) == 28  # 7 days x 4 articles


def _all_sent(db: Database, sid: int) -> list[str]:
    return [i for _, ids in _editions(db).get(sid, []) for i in ids]


@pytest.mark.parametrize("zone", ZONES.values())
def test_daily_to_weekly_mid_week_neither_skips_nor_doubles(
    make_config: ConfigFactory, db: Database, zone: str
) -> None:
    config = make_config("[digest]\nmax_articles = 200\n")
    week = _Week(config, db)
    sub = _add(config, db, "r@example.id", zone)
    switch = date(2025, 11, 19)  # Wednesday, after its daily edition

    def hook(day: date, moment: datetime) -> None:
        if day == switch + timedelta(days=1) and moment == send_moment(zone, "06:00", day):
            draft = SubscriberDraft(sub.email, frequency="weekly", weekly_day=0)
            with db.begin() as conn:
                sub_store.update_preferences(conn, sub.id, draft, now=moment - timedelta(hours=1))

    week.run(MONDAY, 14, hook)  # to Sunday 30 November; the weekly edition is Monday 24th
    days = [d for d, _ in _editions(db)[sub.id]]
    assert days == ["2025-11-17", "2025-11-18", "2025-11-19", "2025-11-24"]
    sent = _all_sent(db, sub.id)
    assert len(sent) == len(set(sent))  # nothing twice
    first = send_moment(zone, "06:00", MONDAY) - timedelta(hours=24)
    last = send_moment(zone, "06:00", date(2025, 11, 24))
    assert set(sent) == week.ids_between(first, last)  # nothing skipped


@pytest.mark.parametrize("zone", ZONES.values())
def test_weekly_to_daily_mid_week_keeps_articles_older_than_max_age(
    make_config: ConfigFactory, db: Database, zone: str
) -> None:
    config = make_config('[digest]\nmax_articles = 200\nmax_age = "48h"\n')
    week = _Week(config, db)
    week.publish_until(datetime(2025, 11, 10, 12, tzinfo=UTC))
    sub = _add(config, db, "r@example.id", zone, frequency="weekly", weekly_day=0)

    def hook(day: date, moment: datetime) -> None:
        if day == date(2025, 11, 21) and moment == send_moment(zone, "06:00", day):
            draft = SubscriberDraft(sub.email, frequency="daily")
            with db.begin() as conn:
                sub_store.update_preferences(conn, sub.id, draft, now=moment - timedelta(hours=1))

    week.run(MONDAY, 7, hook)  # Monday (weekly) ... Sunday; daily from Friday 21st
    days = [d for d, _ in _editions(db)[sub.id]]
    assert days == ["2025-11-17", "2025-11-21", "2025-11-22", "2025-11-23"]
    sent = _all_sent(db, sub.id)
    assert len(sent) == len(set(sent))
    monday = send_moment(zone, "06:00", MONDAY)
    friday = send_moment(zone, "06:00", date(2025, 11, 21))
    # Friday's edition reaches back to Monday's cut-off, four days: beyond max_age
    friday_ids = _editions(db)[sub.id][1][1]
    assert set(friday_ids) == week.ids_between(monday, friday)
    last = send_moment(zone, "06:00", date(2025, 11, 23))
    assert set(sent) == week.ids_between(monday - WEEK, last)


def test_a_late_weekly_group_is_not_skipped_on_other_days(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config()
    sub = _add(config, db, "r@example.id", "Asia/Makassar", frequency="weekly", weekly_day=4)
    group = SendGroup("Asia/Makassar", "06:00")
    moment = send_moment("Asia/Makassar", "06:00", MONDAY) + timedelta(hours=9)
    assert skip_group(config, db, group, MONDAY, moment, "late") == 0
    friday = date(2025, 11, 21)
    assert skip_group(config, db, group, friday, moment + timedelta(days=4), "late") == 1
    with db.connect() as conn:
        rows = list(conn.execute(select(deliveries.c.local_date)))
    assert [r[0] for r in rows] == ["2025-11-21"] and sub.frequency == "weekly"
