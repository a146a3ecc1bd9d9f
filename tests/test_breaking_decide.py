"""The breaking-alert decider: who gets an alert for an article, the daily
cap, and quiet hours in the reader's own zone (WIB/WITA/WIT), with an
injected clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kabarfeed.config import DigestConfig
from kabarfeed.digest.breaking import (
    BreakingRules,
    QuietHours,
    plan_alerts,
    release_moment,
    rules_from,
)
from kabarfeed.errors import InputError
from kabarfeed.models import Article, Category, Region, Subscriber, SubscriberStatus, Taxonomy
from tests.feeds_support import make_article

ZONES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
QUIET = QuietHours(time(22), time(6))
TAXONOMY = Taxonomy(
    regions=(
        Region("kalimantan-timur", "Kalimantan Timur", "Asia/Makassar"),
        Region("balikpapan", "Balikpapan", "Asia/Makassar", "kalimantan-timur"),
        Region("samarinda", "Samarinda", "Asia/Makassar", "kalimantan-timur"),
        Region("jakarta", "Jakarta", "Asia/Jakarta"),
    ),
    categories=(Category("ekonomi", "Ekonomi"), Category("pemerintahan", "Pemerintahan")),
)
NOON_WITA = datetime(2025, 11, 17, 4, 0, tzinfo=UTC)  # Monday 12:00 in Makassar


def _sub(n: int, **kw: object) -> Subscriber:
    base = Subscriber(
        n,
        f"s{n}@example.id",
        "t",
        "Asia/Makassar",
        "06:00",
        "id",
        SubscriberStatus.ACTIVE,
        NOON_WITA,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _article(now: datetime = NOON_WITA, **kw: object) -> Article:
    return make_article(1, published=now - timedelta(minutes=5), **kw)


def _local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


# ------------------------------------------------------------------ quiet hours


def test_quiet_hours_parse_and_contain() -> None:
    assert QuietHours.parse("22:00-06:00") == QUIET
    assert QuietHours.parse("") is None
    for bad in ("22-06", "24:00-06:00", "06:00-06:00", "22:00 - 06:00x"):
        with pytest.raises(InputError):
            QuietHours.parse(bad)
    assert QUIET.contains(time(22)) and QUIET.contains(time(3)) and QUIET.contains(time(5, 59))
    assert not QUIET.contains(time(6)) and not QUIET.contains(time(21, 59))
    day = QuietHours(time(12), time(13))  # not across midnight
    assert day.contains(time(12, 30)) and not day.contains(time(13)) and not day.contains(time(0))


@pytest.mark.parametrize(
    ("zone", "local", "expected_local"),
    [
        ("Asia/Jakarta", datetime(2025, 11, 17, 23, 30), datetime(2025, 11, 18, 6, 0)),
        ("Asia/Makassar", datetime(2025, 11, 18, 2, 0), datetime(2025, 11, 18, 6, 0)),
        ("Asia/Jayapura", datetime(2025, 11, 17, 22, 0), datetime(2025, 11, 18, 6, 0)),
        ("Asia/Jayapura", datetime(2025, 11, 17, 21, 59), datetime(2025, 11, 17, 21, 59)),
        ("Asia/Jakarta", datetime(2025, 11, 18, 6, 0), datetime(2025, 11, 18, 6, 0)),
    ],
)
def test_release_moment_in_each_zone(zone: str, local: datetime, expected_local: datetime) -> None:
    now = local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    released = release_moment(QUIET, zone, now)
    assert released.tzinfo is not None
    assert _local(released, zone).replace(tzinfo=None) == expected_local


def test_one_utc_moment_is_quiet_in_one_zone_and_not_in_another() -> None:
    now = datetime(2025, 11, 17, 14, 30, tzinfo=UTC)  # 21:30 WIB, 22:30 WITA, 23:30 WIT
    assert release_moment(QUIET, "Asia/Jakarta", now) == now
    assert release_moment(QUIET, "Asia/Makassar", now) == datetime(2025, 11, 17, 22, tzinfo=UTC)
    assert release_moment(QUIET, "Asia/Jayapura", now) == datetime(2025, 11, 17, 21, tzinfo=UTC)
    assert release_moment(None, "Asia/Jayapura", now) == now


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(sorted(ZONES.values())),
    now=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
    start=st.integers(0, 24 * 60 - 1),
    length=st.integers(1, 24 * 60 - 1),
)
def test_release_is_the_first_moment_outside_quiet_hours(
    zone: str, now: datetime, start: int, length: int
) -> None:
    end = (start + length) % (24 * 60)
    quiet = QuietHours(time(start // 60, start % 60), time(end // 60, end % 60))
    released = release_moment(quiet, zone, now)
    local_now = _local(now, zone).time().replace(tzinfo=None)
    if not quiet.contains(local_now):
        assert released == now
        return
    assert now < released <= now + timedelta(minutes=length)
    assert not quiet.contains(_local(released, zone).time().replace(tzinfo=None))
    assert _local(released, zone).time().replace(tzinfo=None) == quiet.end
    # every whole minute between now and the release is still quiet
    probe = now
    while probe + timedelta(minutes=1) < released:
        probe += timedelta(minutes=1)
        assert quiet.contains(_local(probe, zone).time().replace(tzinfo=None))


# ------------------------------------------------------------------ who gets an alert


def test_only_matching_readers_who_take_breaking_alerts() -> None:
    readers = [
        _sub(1, frequency="breaking"),
        _sub(2, breaking_alerts=True, regions=("kalimantan-timur",)),  # province -> city
        _sub(3),  # daily, not opted in
        _sub(4, frequency="weekly", breaking_alerts=True, categories=("ekonomi",)),
        _sub(5, frequency="breaking", regions=("jakarta",)),
        _sub(6, frequency="breaking", status=SubscriberStatus.UNSUBSCRIBED),
        _sub(7, frequency="weekly", breaking_alerts=True, categories=("pemerintahan",)),
        _sub(8, frequency="breaking", status=SubscriberStatus.PENDING),
    ]
    plan = plan_alerts(_article(), readers, {}, BreakingRules(3, QUIET), TAXONOMY, NOON_WITA)
    assert [a.subscriber_id for a in plan.alerts] == [1, 2, 7]
    assert all(a.send_after == NOON_WITA and not a.held for a in plan.alerts)
    assert {a.local_date for a in plan.alerts} == {date(2025, 11, 17)}
    assert plan.skipped == () and plan.reason == ""


def test_advertorials_and_stale_articles_alert_nobody() -> None:
    readers = [_sub(1, frequency="breaking")]
    rules = BreakingRules(3, QUIET, timedelta(hours=6))
    ad = plan_alerts(_article(advertorial=True), readers, {}, rules, TAXONOMY, NOON_WITA)
    assert ad.alerts == () and ad.reason == "advertorial"
    old = make_article(1, published=NOON_WITA - timedelta(hours=6, seconds=1))
    assert plan_alerts(old, readers, {}, rules, TAXONOMY, NOON_WITA).reason == "too_old"
    fresh = make_article(1, published=NOON_WITA - timedelta(hours=6))
    assert len(plan_alerts(fresh, readers, {}, rules, TAXONOMY, NOON_WITA).alerts) == 1


def test_the_cap_counts_the_local_day_the_alert_is_sent() -> None:
    rules = BreakingRules(3, QUIET)
    wib, wit = (
        _sub(1, frequency="breaking", timezone="Asia/Jakarta"),
        _sub(2, frequency="breaking", timezone="Asia/Jayapura"),
    )
    late = datetime(2025, 11, 17, 14, 30, tzinfo=UTC)  # 21:30 WIB, 23:30 WIT
    article = make_article(1, published=late)
    counted = {(1, date(2025, 11, 17)): 3, (2, date(2025, 11, 17)): 3}
    plan = plan_alerts(article, [wib, wit], counted, rules, TAXONOMY, late)
    # WIB is still on Monday and at its cap; WIT's alert is held to Tuesday 06:00
    assert [(s.subscriber_id, s.reason) for s in plan.skipped] == [(1, "cap")]
    (held,) = plan.alerts
    assert held.subscriber_id == 2 and held.held and held.local_date == date(2025, 11, 18)
    assert held.send_after == datetime(2025, 11, 17, 21, tzinfo=UTC)
    tuesday_full = {(2, date(2025, 11, 18)): 3}
    assert plan_alerts(article, [wit], tuesday_full, rules, TAXONOMY, late).alerts == ()
    assert plan_alerts(article, [wib], {}, BreakingRules(0, QUIET), TAXONOMY, late).alerts == ()


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(sorted(ZONES.values())),
    cap=st.integers(0, 5),
    gaps=st.lists(st.integers(1, 600), min_size=1, max_size=40),
)
def test_no_reader_ever_gets_more_than_the_cap_on_one_local_day(
    zone: str, cap: int, gaps: list[int]
) -> None:
    reader = _sub(1, frequency="breaking", timezone=zone)
    rules = BreakingRules(cap, QUIET)
    counted: dict[tuple[int, date], int] = {}
    now = datetime(2025, 11, 17, tzinfo=UTC)
    for n, gap in enumerate(gaps):
        now += timedelta(minutes=gap)
        plan = plan_alerts(make_article(n, published=now), [reader], counted, rules, TAXONOMY, now)
        for alert in plan.alerts:
            local = _local(alert.send_after, zone)
            assert alert.local_date == local.date()
            assert not QUIET.contains(local.time().replace(tzinfo=None))
            counted[(1, alert.local_date)] = counted.get((1, alert.local_date), 0) + 1
        assert len(plan.alerts) + len(plan.skipped) == 1
    assert all(n <= cap for n in counted.values())


def test_rules_from_config() -> None:
    rules = rules_from(DigestConfig())
    assert rules == BreakingRules(3, QUIET, timedelta(hours=6))
    assert rules_from(DigestConfig(breaking_quiet="")).quiet is None
    with pytest.raises(ValidationError):
        DigestConfig(breaking_quiet="06:00-06:00")
    with pytest.raises(ValidationError):
        DigestConfig(breaking_max_per_day=-1)
