"""When is a subscriber's edition due? Pure functions of a zone and a clock reading."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kabarfeed.models import Subscriber


def _hhmm(send_at: str) -> time:
    hour, _, minute = send_at.partition(":")
    return time(int(hour), int(minute))


def local_date_for(tz: str, now: datetime) -> date:
    """The calendar date in zone ``tz`` at the aware moment ``now``."""
    return now.astimezone(ZoneInfo(tz)).date()


def send_moment(tz: str, send_at: str, local_date: date) -> datetime:
    """The aware UTC moment of ``send_at`` ("HH:MM") on ``local_date`` in zone ``tz``.

    A WIT (UTC+9) subscriber's 06:00 on 17 November is 21:00 UTC on 16 November.
    A local time skipped by a DST jump resolves forward, as zoneinfo does.
    """
    local = datetime.combine(local_date, _hhmm(send_at), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def is_due(subscriber: Subscriber, local_date: date, now: datetime) -> bool:
    """Whether the edition for ``local_date`` may be built at ``now`` (its send time passed)."""
    return now >= send_moment(subscriber.timezone, subscriber.send_at, local_date)


def is_too_late(
    subscriber: Subscriber, local_date: date, now: datetime, max_lateness: timedelta
) -> bool:
    """Whether ``now`` is more than ``max_lateness`` past the edition's send time
    (after downtime such an edition is skipped rather than sent at lunch)."""
    moment = send_moment(subscriber.timezone, subscriber.send_at, local_date)
    return now - moment > max_lateness


def current_edition_date(subscriber: Subscriber, now: datetime) -> date:
    """The newest local date whose send time has passed at ``now``."""
    today = local_date_for(subscriber.timezone, now)
    return today if is_due(subscriber, today, now) else today - timedelta(days=1)


# ------------------------------------------------------------------ frequencies

DAILY = "daily"
WEEKLY = "weekly"
BREAKING = "breaking"
"""Breaking alerts only: no daily or weekly edition."""
FREQUENCIES = (DAILY, WEEKLY, BREAKING)
WEEK = timedelta(days=7)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""Weekday names, Monday (0) first, as ``date.weekday()`` counts."""


def is_edition_day(subscriber: Subscriber, local_date: date) -> bool:
    """Whether ``local_date`` gets an edition: every day for daily readers,
    their chosen weekday for weekly ones, never for breaking-only ones."""
    if subscriber.frequency == BREAKING:
        return False
    if subscriber.frequency == WEEKLY:
        return local_date.weekday() == subscriber.weekly_day
    return True


def gets_breaking(subscriber: Subscriber) -> bool:
    """Whether the subscriber receives breaking alerts: breaking-only readers
    always, daily and weekly ones when they opted in."""
    return subscriber.frequency == BREAKING or subscriber.breaking_alerts


def first_window(subscriber: Subscriber, default: timedelta) -> timedelta:
    """How far back a subscriber's first edition reaches: a week for weekly
    readers, ``default`` (``[digest] first_window``) for daily ones."""
    return WEEK if subscriber.frequency == WEEKLY else default


def window_max_age(
    subscriber: Subscriber, since: datetime, cutoff: datetime, default: timedelta
) -> timedelta:
    """How old (published before the cut-off) an article of the edition
    ``(since, cutoff]`` may be. ``default`` is ``[digest] max_age``; a weekly
    edition covers its whole window (at least a week); so does the first
    edition after a change of frequency, so that nothing first seen since
    the previous edition is lost on the way."""
    span = cutoff - since
    if subscriber.frequency == WEEKLY:
        return max(default, WEEK, span)
    changed = subscriber.frequency_since
    if changed is not None and changed > since:
        return max(default, span)
    return default


def next_edition_date(subscriber: Subscriber, now: datetime) -> date:
    """The local date of the subscriber's next edition not yet due at ``now``."""
    day = local_date_for(subscriber.timezone, now)
    for _ in range(8):
        if is_edition_day(subscriber, day) and not is_due(subscriber, day, now):
            return day
        day += timedelta(days=1)
    return day  # pragma: no cover - a week always holds an edition day
