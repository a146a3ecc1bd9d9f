"""The breaking-alert outbox (``breaking_alerts``): queueing planned alerts and
the engine's :class:`~kabarfeed.delivery.engine.Store` over it.

It works like the edition outbox (:mod:`kabarfeed.store.deliveries`): a claim
marks rows ``sending`` under a lease before any is sent, every result is
written only to a row this sender still holds, and rows of dead senders or
expired leases are re-queued. One row per (subscriber, article) makes an
alert exactly-once however often the article is pushed or re-ingested; a
queued row's ``next_attempt_at`` holds it until the reader's quiet hours end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, or_, select, update

from kabarfeed.delivery.engine import Claim, Outcome
from kabarfeed.digest.breaking import Alert
from kabarfeed.models import DeliveryState
from kabarfeed.store.db import Database
from kabarfeed.store.deliveries import worker_is_dead
from kabarfeed.store.dialect import evaluated_once, insert_ignoring_conflicts
from kabarfeed.store.schema import breaking_alerts, subscribers

b = breaking_alerts.c
_ENHANCED = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_COUNTED = (
    DeliveryState.QUEUED.value,
    DeliveryState.SENDING.value,
    DeliveryState.SENT.value,
    DeliveryState.DEFERRED.value,
    DeliveryState.UNKNOWN.value,
)
"""States that use up a slot of the daily cap (failed and skipped alerts do not)."""


# -- queueing --------------------------------------------------------------------


def counted(
    conn: Connection, subscriber_ids: Sequence[int], days: Sequence[date]
) -> dict[tuple[int, date], int]:
    """Alerts per (subscriber, local date) that count against the daily cap."""
    if not subscriber_ids or not days:
        return {}
    query = (
        select(b.subscriber_id, b.local_date, func.count())
        .where(
            b.subscriber_id.in_(list(subscriber_ids)),
            b.local_date.in_(sorted({d.isoformat() for d in days})),
            b.state.in_(_COUNTED),
        )
        .group_by(b.subscriber_id, b.local_date)
    )
    return {(int(s), date.fromisoformat(d)): int(n) for s, d, n in conn.execute(query)}


def queued_articles(conn: Connection, article_ids: Sequence[str]) -> set[str]:
    """Which of ``article_ids`` already have alert rows (planned once, never again)."""
    if not article_ids:
        return set()
    query = select(b.article_id).where(b.article_id.in_(list(article_ids))).distinct()
    return set(conn.execute(query).scalars())


def insert_alerts(conn: Connection, alerts: Sequence[Alert], now: datetime) -> int:
    """Queue ``alerts`` (a row already there for the same subscriber and
    article is left alone); return how many are new."""
    rows = [
        {
            "subscriber_id": a.subscriber_id,
            "article_id": a.article_id,
            "local_date": a.local_date.isoformat(),
            "state": DeliveryState.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": a.send_after,
            "created_at": now,
            "updated_at": now,
            "unknown_outcomes": 0,
        }
        for a in alerts
    ]
    before = conn.execute(select(func.count()).select_from(breaking_alerts)).scalar_one()
    insert_ignoring_conflicts(conn, breaking_alerts, rows, ("subscriber_id", "article_id"))
    after = conn.execute(select(func.count()).select_from(breaking_alerts)).scalar_one()
    return int(after) - int(before)


def alerted(
    conn: Connection, subscriber_ids: Sequence[int], article_ids: Sequence[str]
) -> dict[int, set[str]]:
    """Which of ``article_ids`` each subscriber got, or is about to get, as a
    breaking alert (sent, queued, held, in flight or retrying; not failed or skipped)."""
    out: dict[int, set[str]] = {}
    if not subscriber_ids or not article_ids:
        return out
    wanted = sorted(set(article_ids))
    for start in range(0, len(wanted), 400):
        query = select(b.subscriber_id, b.article_id).where(
            b.subscriber_id.in_(list(subscriber_ids)),
            b.article_id.in_(wanted[start : start + 400]),
            b.state.in_(_COUNTED),
        )
        for sid, aid in conn.execute(query):
            out.setdefault(int(sid), set()).add(str(aid))
    return out


def count_by_state(conn: Connection) -> dict[str, int]:
    """Alert rows per state (``kabarfeed status``)."""
    query = select(b.state, func.count()).group_by(b.state)
    return {str(s): int(n) for s, n in conn.execute(query)}


def status(conn: Connection, now: datetime) -> dict[str, Any]:
    """``kabarfeed status``: active readers taking alerts (breaking-only and
    opted-in daily/weekly ones), alert rows per state, how many queued alerts
    quiet hours hold, and when the first of them is released."""
    s = subscribers.c
    readers = select(func.count()).where(s.status == "active")
    only = conn.execute(readers.where(s.frequency == "breaking")).scalar_one()
    opted = conn.execute(
        readers.where(s.frequency != "breaking", s.breaking_alerts.is_(True))
    ).scalar_one()
    held = conn.execute(
        select(func.count()).where(b.state == DeliveryState.QUEUED.value, b.next_attempt_at > now)
    ).scalar_one()
    return {
        "breaking_only": int(only),
        "opted_in": int(opted),
        "alerts": count_by_state(conn),
        "held": int(held),
        "next_release": next_held(conn, now),
    }


def next_held(conn: Connection, now: datetime) -> datetime | None:
    """When the earliest alert held by quiet hours is released (``None``: none held)."""
    query = select(func.min(b.next_attempt_at)).where(
        b.state == DeliveryState.QUEUED.value, b.next_attempt_at > now
    )
    value: datetime | None = conn.execute(query).scalar_one_or_none()
    return value


# -- the engine's outbox -----------------------------------------------------------


def _due(now: datetime) -> Any:
    return or_(
        and_(
            b.state == DeliveryState.QUEUED.value,
            or_(b.next_attempt_at.is_(None), b.next_attempt_at <= now),
        ),
        and_(
            b.state.in_([DeliveryState.DEFERRED.value, DeliveryState.UNKNOWN.value]),
            b.next_attempt_at <= now,
        ),
    )


def claim(
    conn: Connection, limit: int, now: datetime, *, worker: str, lease: timedelta
) -> list[Claim]:
    """Mark up to ``limit`` due alert rows ``sending`` for ``worker``."""
    due = _due(now)
    picked = select(b.id).where(due).order_by(b.id).limit(limit).with_for_update(skip_locked=True)
    ids = evaluated_once(picked, conn.dialect.name)
    stmt = (
        update(breaking_alerts)
        .where(b.id.in_(ids), due)
        .values(
            state=DeliveryState.SENDING.value,
            claimed_by=worker,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(
            b.id,
            b.subscriber_id,
            b.local_date,
            b.attempts,
            b.created_at,
            b.article_id,
            b.unknown_outcomes,
        )
    )
    rows = conn.execute(stmt).all()
    return sorted((_claim(r) for r in rows), key=lambda c: c.id)


def _claim(r: Row[Any]) -> Claim:
    return Claim(
        r.id,
        r.subscriber_id,
        r.local_date,
        r.attempts,
        r.created_at,
        r.created_at,
        (r.article_id,),
        1,
        r.unknown_outcomes or 0,
    )


def record(
    conn: Connection,
    outcomes: Sequence[Outcome],
    now: datetime,
    *,
    worker: str,
    bounce_threshold: int,
) -> list[int]:
    """Store each outcome on its row if ``worker`` still holds it; return the
    ids of rows it no longer held (their results are not written). A recipient
    refused at RCPT joins the bounce policy as for editions."""
    stmt = (
        update(breaking_alerts)
        .where(
            b.id == bindparam("b_id"),
            b.state == DeliveryState.SENDING.value,
            b.claimed_by == worker,
        )
        .values(
            state=bindparam("b_state"),
            attempts=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_next"),
            last_code=bindparam("b_code"),
            last_reply=bindparam("b_reply"),
            message_id=bindparam("b_mid"),
            sent_at=bindparam("b_sent"),
            unknown_outcomes=bindparam("b_unknowns"),
            updated_at=now,
            claimed_by=None,
            lease_until=None,
        )
    )
    lost: list[int] = []
    for o in sorted(outcomes, key=lambda o: o.delivery_id):  # id order, as renew locks
        dec = o.decision
        params = {
            "b_id": o.delivery_id,
            "b_state": dec.state.value,
            "b_attempts": dec.attempts,
            "b_next": dec.next_attempt_at,
            "b_code": dec.code,
            "b_reply": (dec.reply or "")[:1000] or None,
            "b_mid": o.message_id,
            "b_sent": now if dec.sent else None,
            "b_unknowns": dec.unknowns,
        }
        if conn.execute(stmt, params).rowcount != 1:
            lost.append(o.delivery_id)
        elif dec.bounce:
            record_refusal(conn, o, bounce_threshold, now)
    return lost


def record_refusal(conn: Connection, o: Outcome, threshold: int, now: datetime) -> None:
    """An alert's recipient refused at RCPT, under the same policy as an
    edition's (:func:`kabarfeed.store.deliveries.record_refusal`): an addressing
    failure (5.1.x) bounces at once, other refusals count as soft bounces. The
    event names the subscriber (an alert is not an edition row)."""
    from kabarfeed.bounces.model import Attribution, EventKind, EventSource, Finding, Report, Target
    from kabarfeed.bounces.parse import classify_code
    from kabarfeed.bounces.policy import PolicySettings
    from kabarfeed.bounces.record import Keys, record_report

    dec = o.decision
    text = " ".join((dec.reply or "").split())[:1000] or None
    enhanced = _ENHANCED.search(text or "")
    status = enhanced[0] if enhanced else (str(dec.code) if dec.code else None)
    kind = classify_code(status, text) if status else EventKind.HARD
    report = Report(
        EventSource.SMTP,
        f"smtp-alert:{o.delivery_id}:{dec.attempts}",
        (Finding(kind, None, status, text, "refused at RCPT"),),
        raw_ref=f"breaking alert {o.delivery_id}, attempt {dec.attempts}",
    )
    target = Target(Attribution.SMTP, None, o.subscriber_id, None)
    settings = PolicySettings(soft_threshold=threshold)
    record_report(conn, report, Keys("", b""), settings, now=now, target=target)


def release(conn: Connection, ids: Sequence[int], now: datetime, *, worker: str) -> None:
    """Give claimed, unattempted rows back to the queue (due at once)."""
    if not ids:
        return
    conn.execute(
        update(breaking_alerts)
        .where(
            b.id.in_(list(ids)),
            b.state == DeliveryState.SENDING.value,
            b.claimed_by == worker,
        )
        .values(state=DeliveryState.QUEUED.value, claimed_by=None, lease_until=None, updated_at=now)
    )


def recover(conn: Connection, now: datetime, *, is_dead: Callable[[str], bool]) -> int:
    """Re-queue ``sending`` rows whose lease ran out or whose sender is dead;
    each update re-checks the claimant it read, so live claims are never taken."""
    rows = conn.execute(
        select(b.id, b.claimed_by, b.lease_until).where(b.state == DeliveryState.SENDING.value)
    ).all()
    count = 0
    for r in rows:
        who = r.claimed_by
        dead = who is None or is_dead(who)
        if not (dead or r.lease_until is None or r.lease_until <= now):
            continue
        where = [
            b.id == r.id,
            b.state == DeliveryState.SENDING.value,
            b.claimed_by.is_(None) if who is None else b.claimed_by == who,
        ]
        if not dead:
            where.append(or_(b.lease_until.is_(None), b.lease_until <= now))
        result = conn.execute(
            update(breaking_alerts)
            .where(*where)
            .values(
                state=DeliveryState.QUEUED.value,
                claimed_by=None,
                lease_until=None,
                updated_at=now,
                last_reply="re-queued: the run sending it was interrupted",
            )
        )
        count += int(result.rowcount)
    return count


def renew(conn: Connection, worker: str, until: datetime) -> list[int]:
    """Extend the lease of every alert row ``worker`` holds; return their ids.

    The rows are locked in id order first, as :func:`record` writes them (a
    group commit and the lease keeper of one sender run at once).
    """
    held = (
        select(b.id)
        .where(b.state == DeliveryState.SENDING.value, b.claimed_by == worker)
        .order_by(b.id)
        .with_for_update()
    )
    ids = list(conn.execute(held).scalars())
    if not ids:
        return []
    result = conn.execute(
        update(breaking_alerts)
        .where(b.id.in_(ids), b.state == DeliveryState.SENDING.value, b.claimed_by == worker)
        .values(lease_until=until)
        .returning(b.id)
    )
    return sorted(result.scalars())


class SqlAlertOutbox:
    """The engine's :class:`~kabarfeed.delivery.engine.Store` over ``breaking_alerts``."""

    def __init__(
        self,
        db: Database,
        *,
        worker: str,
        lease: timedelta,
        bounce_threshold: int,
        is_dead: Callable[[str], bool] = worker_is_dead,
    ) -> None:
        self.db = db
        self.worker = worker
        self.lease = lease
        self.bounce_threshold = bounce_threshold
        self._is_dead = is_dead

    def recover(self, now: datetime) -> int:
        """See :func:`recover`."""
        with self.db.begin() as conn:
            return recover(conn, now, is_dead=self._is_dead)

    def claim(self, limit: int, now: datetime) -> list[Claim]:
        """See :func:`claim`."""
        with self.db.begin() as conn:
            return claim(conn, limit, now, worker=self.worker, lease=self.lease)

    def record(self, outcomes: Sequence[Outcome], now: datetime) -> list[int]:
        """See :func:`record`."""
        with self.db.begin() as conn:
            return record(
                conn, outcomes, now, worker=self.worker, bounce_threshold=self.bounce_threshold
            )

    def release(self, ids: Sequence[int], now: datetime) -> None:
        """See :func:`release`."""
        with self.db.begin() as conn:
            release(conn, ids, now, worker=self.worker)

    def renew(self, now: datetime) -> list[int]:
        """See :func:`renew` (to ``now`` + the lease)."""
        with self.db.begin() as conn:
            return renew(conn, self.worker, now + self.lease)
