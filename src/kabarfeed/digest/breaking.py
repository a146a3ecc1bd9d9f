"""Who gets a breaking alert for an article, and when. Pure: (article,
subscribers, alerts already planned, rules, clock reading).

An alert goes to every active subscriber who takes breaking alerts (the
``breaking`` frequency, or a daily/weekly reader who opted in) and whose
regions and categories match the article, as a digest would select it. Each
subscriber gets at most ``max_per_day`` alerts per local calendar day (the day
the alert is sent, in their own zone). An alert that falls inside the quiet
hours of the subscriber's zone (``"22:00-06:00"``, possibly across midnight)
is held until they end, and counts against that later day. Advertorials and
articles published longer than ``max_age`` ago never alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kabarfeed.config import DigestConfig
from kabarfeed.digest.schedule import gets_breaking
from kabarfeed.digest.selection import matches
from kabarfeed.errors import InputError
from kabarfeed.models import Article, Subscriber, SubscriberStatus, Taxonomy

_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily local-time range ``[start, end)``; ``start > end`` crosses midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """``"22:00-06:00"`` -> hours; ``""`` -> ``None`` (no quiet hours);
        :class:`InputError` otherwise (an empty range like ``"06:00-06:00"`` too)."""
        if not text.strip():
            return None
        found = _RANGE.match(text.strip())
        if found is None:
            raise InputError(f'quiet hours "{text}" are not like "22:00-06:00"')
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if (h1, m1) == (h2, m2):
            raise InputError(f'quiet hours "{text}" start and end at the same time')
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, moment: time) -> bool:
        """Whether the local wall-clock time ``moment`` is quiet."""
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def release_moment(quiet: QuietHours | None, tz: str, now: datetime) -> datetime:
    """When an alert due at ``now`` may go out to a reader in zone ``tz``:
    ``now`` itself, or the end of the quiet hours it falls in (aware UTC)."""
    local = now.astimezone(ZoneInfo(tz))
    if quiet is None or not quiet.contains(local.time().replace(tzinfo=None)):
        return now
    day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        day += timedelta(days=1)  # before midnight: the quiet hours end tomorrow
    end = datetime.combine(day, quiet.end, tzinfo=ZoneInfo(tz))
    return end.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BreakingRules:
    """``[digest] breaking_*``: the daily cap, quiet hours and maximum age."""

    max_per_day: int = 3
    quiet: QuietHours | None = None
    max_age: timedelta = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class Alert:
    """One planned alert: to ``subscriber_id``, not before ``send_after`` (UTC),
    counted on ``local_date`` of the subscriber's zone."""

    subscriber_id: int
    article_id: str
    send_after: datetime
    local_date: date
    held: bool
    """Whether quiet hours postpone it."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A matching subscriber left without this alert, and why (``cap``)."""

    subscriber_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class AlertPlan:
    """The alerts of one article and the matching readers left out."""

    alerts: tuple[Alert, ...]
    skipped: tuple[Skipped, ...]
    reason: str = ""
    """Why the article alerts nobody at all (``advertorial``, ``too_old``), else ``""``."""


def wants_alert(subscriber: Subscriber, article: Article, taxonomy: Taxonomy) -> bool:
    """Whether ``subscriber`` takes breaking alerts and ``article`` matches them."""
    return (
        subscriber.status is SubscriberStatus.ACTIVE
        and gets_breaking(subscriber)
        and matches(subscriber, article, taxonomy)
    )


def plan_alerts(
    article: Article,
    subscribers: Sequence[Subscriber],
    counted: Mapping[tuple[int, date], int],
    rules: BreakingRules,
    taxonomy: Taxonomy,
    now: datetime,
) -> AlertPlan:
    """The alerts for ``article`` arriving at ``now``.

    ``counted`` holds how many alerts each subscriber already has on a local
    date (sent or planned); a subscriber at ``rules.max_per_day`` that day is
    skipped with reason ``cap``.
    """
    if article.advertorial:
        return AlertPlan((), (), "advertorial")
    if now - article.published > rules.max_age:
        return AlertPlan((), (), "too_old")
    alerts: list[Alert] = []
    skipped: list[Skipped] = []
    for sub in subscribers:
        if not wants_alert(sub, article, taxonomy):
            continue
        moment = release_moment(rules.quiet, sub.timezone, now)
        day = moment.astimezone(ZoneInfo(sub.timezone)).date()
        if counted.get((sub.id, day), 0) >= rules.max_per_day:
            skipped.append(Skipped(sub.id, "cap"))
            continue
        alerts.append(Alert(sub.id, article.id, moment, day, moment != now))
    return AlertPlan(tuple(alerts), tuple(skipped))


def rules_from(config: DigestConfig) -> BreakingRules:
    """The rules of ``[digest] breaking_max_per_day``, ``breaking_quiet`` and
    ``breaking_max_age``."""
    return BreakingRules(
        config.breaking_max_per_day,
        QuietHours.parse(config.breaking_quiet),
        config.breaking_max_age,
    )
