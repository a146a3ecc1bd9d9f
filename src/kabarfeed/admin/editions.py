"""Editions and deliveries in the console: per local date the deliveries by
state, the failed ones with their SMTP reply, and re-queueing them (the
``kabarfeed deliveries retry`` use case, audited)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from kabarfeed.admin import audit
from kabarfeed.admin.audit import Actor
from kabarfeed.models import DeliveryState
from kabarfeed.store import Database
from kabarfeed.store import deliveries as store
from kabarfeed.store import pause as sending
from kabarfeed.store.schema import deliveries

DAYS = 10
FAILED_SHOWN = 200


@dataclass(frozen=True, slots=True)
class DayCounts:
    """Deliveries of one local date by state."""

    local_date: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Every delivery of the date."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class EditionsView:
    """The editions page: recent dates, and one date's failures."""

    days: tuple[DayCounts, ...]
    local_date: str | None
    problems: tuple[store.DeliveryRow, ...]
    pause: sending.Pause | None = None


def editions_view(db: Database, local_date: str | None) -> EditionsView:
    """The newest dates' counts and the failed/unknown deliveries of
    ``local_date`` (else of every date), newest first."""
    d = deliveries.c
    with db.connect() as conn:
        dates = list(
            conn.execute(
                select(d.local_date).distinct().order_by(d.local_date.desc()).limit(DAYS)
            ).scalars()
        )
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        if dates:
            rows = conn.execute(
                select(d.local_date, d.state, func.count())
                .where(d.local_date.in_(dates))
                .group_by(d.local_date, d.state)
            ).all()
            for day, state, n in rows:
                counts[day][str(state)] = int(n)
        paused = sending.current(conn)
        problems: list[store.DeliveryRow] = []
        for state in (DeliveryState.FAILED, DeliveryState.UNKNOWN):
            problems += store.list_deliveries(
                conn, local_date=local_date, state=state, limit=FAILED_SHOWN
            )
    days = tuple(DayCounts(day, counts.get(day, {})) for day in dates)
    return EditionsView(days, local_date, tuple(problems), paused)


def retry(
    db: Database,
    actor: Actor,
    *,
    state: DeliveryState,
    local_date: str | None,
    now: datetime,
) -> int:
    """Put ``state`` deliveries (failed, deferred or unknown) of ``local_date``
    (or of every date) back in the queue; returns how many, audited."""
    with db.begin() as conn:
        count = store.requeue(conn, now, state=state, local_date=local_date)
        audit.record(
            conn,
            actor,
            "deliveries.retry",
            local_date or "all dates",
            before={"state": state.value},
            after={"state": "queued", "count": count},
            now=now,
        )
    return count


def pause_sending(db: Database, actor: Actor, *, reason: str, now: datetime) -> None:
    """Stop every sender from claiming queued deliveries (in-flight sends finish)."""
    with db.begin() as conn:
        before = sending.current(conn)
        sending.pause(conn, by=actor.name, reason=reason, now=now)
        audit.record(
            conn,
            actor,
            "delivery.pause",
            "sending",
            before={"paused": before is not None},
            after={"paused": True, "reason": reason},
            now=now,
        )


def resume_sending(db: Database, actor: Actor, *, now: datetime) -> bool:
    """Let senders claim again; whether sending was paused."""
    with db.begin() as conn:
        was = sending.resume(conn)
        if was:
            audit.record(
                conn,
                actor,
                "delivery.resume",
                "sending",
                before={"paused": True},
                after={"paused": False},
                now=now,
            )
    return was
