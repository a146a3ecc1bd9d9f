"""What the console's dashboard shows: the ``kabarfeed status`` report plus
edition progress per send group, subscriber growth and articles per source
per day. One read-only use case; the page only formats it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from kabarfeed.config import Config
from kabarfeed.models import DeliveryState
from kabarfeed.status import StatusReport, gather_status
from kabarfeed.store import Database
from kabarfeed.store import pause as sending
from kabarfeed.store.schema import articles, deliveries, mail_events, subscribers

GROWTH_DAYS = 14
SOURCE_DAYS = 7
_WAITING = frozenset(
    {DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.DEFERRED, DeliveryState.UNKNOWN}
)


@dataclass(frozen=True, slots=True)
class EditionProgress:
    """One send group's edition of one local date: how far it got."""

    timezone: str
    send_at: str
    local_date: str
    queued: int
    sent: int
    failed: int
    skipped: int

    @property
    def total(self) -> int:
        """Every edition of the group that day."""
        return self.queued + self.sent + self.failed + self.skipped

    @property
    def percent_done(self) -> int:
        """Share no longer waiting (sent, failed or skipped), 0-100."""
        return 100 if not self.total else round(100 * (self.total - self.queued) / self.total)


@dataclass(frozen=True, slots=True)
class DayGrowth:
    """Subscribers who signed up, confirmed and left on one UTC day."""

    day: date
    signed_up: int
    confirmed: int
    unsubscribed: int


@dataclass(frozen=True, slots=True)
class SourceDays:
    """Articles first seen per day (oldest first) for one source."""

    source: str
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MailHealth:
    """Messages sent and what the mail world said about them, last ``days`` days."""

    days: int
    sent: int
    hard: int
    soft: int
    complaints: int

    def rate(self, count: int) -> str:
        """``count`` per message sent, as a percentage with one decimal."""
        return f"{100 * count / self.sent:.1f}%" if self.sent else "–"


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Everything on the dashboard page."""

    status: StatusReport
    editions: tuple[EditionProgress, ...]
    growth: tuple[DayGrowth, ...]
    subscribers_by_status: dict[str, int]
    source_days: tuple[SourceDays, ...]
    days: tuple[date, ...]
    mail: MailHealth
    pause: sending.Pause | None = None


def dashboard(config: Config, db: Database, now: datetime) -> Dashboard:
    """Gather the dashboard (several short reads; no writes)."""
    status = gather_status(config, db, now, config_path=config.path or Path("config.toml"))
    days = tuple(now.date() - timedelta(days=n) for n in range(SOURCE_DAYS - 1, -1, -1))
    return Dashboard(
        status=status,
        editions=edition_progress(db, now),
        growth=growth(db, now),
        subscribers_by_status=subscriber_counts(db),
        source_days=source_days(db, now, days),
        days=days,
        mail=mail_health(db, now),
        pause=paused(db),
    )


def edition_progress(db: Database, now: datetime) -> tuple[EditionProgress, ...]:
    """Per send group and local date (the last three days), deliveries by state."""
    d, s = deliveries.c, subscribers.c
    since = (now.date() - timedelta(days=2)).isoformat()
    query = (
        select(s.timezone, s.send_at, d.local_date, d.state, func.count())
        .join(subscribers, s.id == d.subscriber_id)
        .where(d.local_date >= since)
        .group_by(s.timezone, s.send_at, d.local_date, d.state)
    )
    with db.connect() as conn:
        rows = conn.execute(query).all()
    counts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for zone, send_at, day, state, n in rows:
        counts[(zone, send_at, day)][state] += int(n)
    out = []
    for (zone, send_at, day), by_state in counts.items():
        waiting = sum(n for st, n in by_state.items() if st in _WAITING)
        out.append(
            EditionProgress(
                zone,
                send_at,
                day,
                waiting,
                by_state[DeliveryState.SENT],
                by_state[DeliveryState.FAILED],
                by_state[DeliveryState.SKIPPED],
            )
        )
    return tuple(sorted(out, key=lambda e: (e.local_date, e.timezone, e.send_at), reverse=True))


def growth(db: Database, now: datetime, days: int = GROWTH_DAYS) -> tuple[DayGrowth, ...]:
    """Sign-ups, confirmations and unsubscribes per UTC day, oldest first."""
    s = subscribers.c
    start = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), now.tzinfo)
    tallies: dict[str, Counter[date]] = {}
    with db.connect() as conn:
        for name, column in (
            ("signed_up", s.created_at),
            ("confirmed", s.confirmed_at),
            ("unsubscribed", s.unsubscribed_at),
        ):
            moments = conn.execute(select(column).where(column >= start)).scalars()
            tallies[name] = Counter(m.date() for m in moments if m is not None)
    return tuple(
        DayGrowth(
            day,
            tallies["signed_up"][day],
            tallies["confirmed"][day],
            tallies["unsubscribed"][day],
        )
        for day in (start.date() + timedelta(days=n) for n in range(days))
    )


def subscriber_counts(db: Database) -> dict[str, int]:
    """Subscribers by status."""
    s = subscribers.c
    with db.connect() as conn:
        rows = conn.execute(select(s.status, func.count()).group_by(s.status)).all()
    return {str(status): int(n) for status, n in rows}


def source_days(db: Database, now: datetime, days: tuple[date, ...]) -> tuple[SourceDays, ...]:
    """Articles first seen per source on each of ``days``."""
    a = articles.c
    start = datetime.combine(days[0], datetime.min.time(), now.tzinfo)
    with db.connect() as conn:
        rows = conn.execute(select(a.source, a.first_seen_at).where(a.first_seen_at >= start)).all()
    per: dict[str, Counter[date]] = defaultdict(Counter)
    for source, seen in rows:
        per[source][seen.date()] += 1
    return tuple(
        SourceDays(source, tuple(per[source][day] for day in days)) for source in sorted(per)
    )


def mail_health(db: Database, now: datetime, days: int = SOURCE_DAYS) -> MailHealth:
    """Sent deliveries and hard/soft bounces and complaints received since ``days`` ago."""
    since = now - timedelta(days=days)
    e = mail_events.c
    with db.connect() as conn:
        sent = conn.execute(
            select(func.count()).where(
                deliveries.c.state == DeliveryState.SENT.value, deliveries.c.sent_at >= since
            )
        ).scalar_one()
        rows = conn.execute(
            select(e.kind, func.count()).where(e.received_at >= since).group_by(e.kind)
        ).all()
    kinds = {str(kind): int(n) for kind, n in rows}
    return MailHealth(
        days, int(sent), kinds.get("hard", 0), kinds.get("soft", 0), kinds.get("complaint", 0)
    )


def paused(db: Database) -> sending.Pause | None:
    """Whether (and by whom) sending is paused."""
    with db.connect() as conn:
        return sending.current(conn)
