"""Outbox queries: one ``deliveries`` row per edition (subscriber, local date).

Claims, checkpoints and recovery are single statements committed by the
caller's transaction; they behave the same on SQLite and PostgreSQL (claims
use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers can share the
queue; SQLite serialises writers).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)

from kabarfeed.delivery.engine import Claim, Outcome
from kabarfeed.models import DeliveryState
from kabarfeed.store.db import Database
from kabarfeed.store.dialect import evaluated_once, insert_ignoring_conflicts
from kabarfeed.store.schema import deliveries, subscribers

_CHUNK = 400
d = deliveries.c


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """An edition about to be recorded (``queued``, or ``skipped`` when empty)."""

    subscriber_id: int
    local_date: str
    since: datetime
    cutoff: datetime
    article_ids: tuple[str, ...]
    state: DeliveryState = DeliveryState.QUEUED
    reason: str = ""
    total_matching: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A delivery as listed for admins."""

    id: int
    subscriber_id: int
    email: str
    local_date: str
    state: DeliveryState
    attempts: int
    article_count: int
    next_attempt_at: datetime | None
    last_code: int | None
    last_reply: str | None
    message_id: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    unknown_outcomes: int = 0
    """Attempts that got no reply after the final dot (the server may have the message)."""


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


# -- enqueue -------------------------------------------------------------------


def newest_cutoffs(conn: Connection, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
    """Each subscriber's newest edition cut-off (the next edition starts there)."""
    out: dict[int, datetime] = {}
    for chunk in _chunks(subscriber_ids):
        query = (
            select(d.subscriber_id, func.max(d.cutoff_at).label("cutoff"))
            .where(d.subscriber_id.in_(chunk))
            .group_by(d.subscriber_id)
        )
        out.update({r.subscriber_id: r.cutoff for r in conn.execute(query)})
    return out


def existing_editions(
    conn: Connection, subscriber_ids: Sequence[int], local_dates: Iterable[str]
) -> set[tuple[int, str]]:
    """``(subscriber_id, local_date)`` pairs that already have a row."""
    dates = sorted(set(local_dates))
    out: set[tuple[int, str]] = set()
    for chunk in _chunks(subscriber_ids):
        query = select(d.subscriber_id, d.local_date).where(
            d.subscriber_id.in_(chunk), d.local_date.in_(dates)
        )
        out.update((sid, day) for sid, day in conn.execute(query))
    return out


def _new_values(item: NewDelivery, now: datetime) -> dict[str, Any]:
    return {
        "subscriber_id": item.subscriber_id,
        "local_date": item.local_date,
        "since_at": item.since,
        "cutoff_at": item.cutoff,
        "article_ids": json.dumps(list(item.article_ids)),
        "article_count": len(item.article_ids),
        "total_matching": len(item.article_ids)
        if item.total_matching is None
        else item.total_matching,
        "state": item.state.value,
        "attempts": 0,
        "last_reply": item.reason or None,
        "created_at": now,
        "updated_at": now,
    }


def insert_editions(conn: Connection, items: Sequence[NewDelivery], now: datetime) -> int:
    """Insert rows, silently keeping any that already exist; return how many were new.

    The unique (subscriber_id, local_date) constraint is the final guard against
    two runs building the same edition; the conflict is tolerated portably.
    """
    if not items:
        return 0
    values = [_new_values(i, now) for i in items]
    keys = [(v["subscriber_id"], v["local_date"]) for v in values]
    before = existing_editions(conn, [k[0] for k in keys], [k[1] for k in keys])
    insert_ignoring_conflicts(conn, deliveries, values, ("subscriber_id", "local_date"))
    return len([k for k in set(keys) if k not in before])


# -- the engine's outbox -------------------------------------------------------


def claim(
    conn: Connection, limit: int, now: datetime, *, worker: str, lease: timedelta
) -> list[Claim]:
    """Mark up to ``limit`` queued or due-deferred rows ``sending`` for ``worker``."""
    due = or_(
        d.state == DeliveryState.QUEUED.value,
        and_(
            d.state.in_([DeliveryState.DEFERRED.value, DeliveryState.UNKNOWN.value]),
            d.next_attempt_at <= now,
        ),
    )
    picked = select(d.id).where(due).order_by(d.id).limit(limit).with_for_update(skip_locked=True)
    ids = evaluated_once(picked, conn.dialect.name)
    stmt = (
        update(deliveries)
        .where(d.id.in_(ids), due)
        .values(
            state=DeliveryState.SENDING.value,
            claimed_by=worker,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(
            d.id,
            d.subscriber_id,
            d.local_date,
            d.attempts,
            d.since_at,
            d.cutoff_at,
            d.article_ids,
            d.total_matching,
            d.unknown_outcomes,
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
        r.since_at,
        r.cutoff_at,
        tuple(json.loads(r.article_ids or "[]")),
        r.total_matching,
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
    """Store each outcome on its row, only if ``worker`` still holds it (``sending``
    under its name); return the ids of the rows it no longer held, whose
    outcomes were not written (another sender took them after the lease ran out).

    One statement per row, because only a row's own ``rowcount`` tells whether
    it was still held (an executemany's total cannot say which one was not).
    """
    if not outcomes:
        return []
    stmt = (
        update(deliveries)
        .where(
            d.id == bindparam("b_id"),
            d.state == DeliveryState.SENDING.value,
            d.claimed_by == worker,
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
    # Rows are locked in id order here and in :func:`renew`: the lease keeper
    # and a group commit of the same sender run at once on PostgreSQL, and two
    # transactions taking the same rows in different orders deadlock.
    for o in sorted(outcomes, key=lambda o: o.delivery_id):
        if conn.execute(stmt, _outcome_params(o, now)).rowcount != 1:
            lost.append(o.delivery_id)
        elif o.decision.bounce:
            record_refusal(conn, o, bounce_threshold, now)
    return lost


def _outcome_params(o: Outcome, now: datetime) -> dict[str, Any]:
    dec = o.decision
    return {
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


def record_refusal(conn: Connection, o: Outcome, threshold: int, now: datetime) -> None:
    """A recipient refused at RCPT joins the bounce policy of DSNs and webhooks
    (:mod:`kabarfeed.bounces`): stored as an event, an addressing failure (5.1.x)
    bounces at once, other refusals count as soft bounces, ``threshold`` of them
    within 30 days making the subscriber ``bounced``."""
    from kabarfeed.bounces.policy import PolicySettings
    from kabarfeed.bounces.record import record_smtp_refusal

    record_smtp_refusal(
        conn,
        delivery_id=o.delivery_id,
        subscriber_id=o.subscriber_id,
        code=o.decision.code,
        reply=o.decision.reply,
        attempt=o.decision.attempts,
        settings=PolicySettings(soft_threshold=threshold),
        now=now,
    )


def release(conn: Connection, ids: Sequence[int], now: datetime, *, worker: str) -> None:
    """Give claimed, unattempted rows back to the queue."""
    for chunk in _chunks(list(ids)):
        conn.execute(
            update(deliveries)
            .where(d.id.in_(chunk), d.state == DeliveryState.SENDING.value, d.claimed_by == worker)
            .values(
                state=DeliveryState.QUEUED.value, claimed_by=None, lease_until=None, updated_at=now
            )
        )


def recover(conn: Connection, now: datetime, *, is_dead: Callable[[str], bool]) -> int:
    """Re-queue ``sending`` rows whose lease ran out or whose worker is dead.

    Whether such a message reached the server is unknown; it is sent again,
    which duplicates it only if its ``250`` arrived just before the crash.

    Each update re-checks the claimant it read (and, for a live claimant, that
    the lease is still expired): a row that another worker claimed or renewed
    in between is left alone, so concurrent workers never steal live claims.
    """
    rows = conn.execute(
        select(d.id, d.claimed_by, d.lease_until).where(d.state == DeliveryState.SENDING.value)
    ).all()
    stale: dict[str | None, list[int]] = {}
    dead: dict[str | None, bool] = {}
    for r in rows:
        who = r.claimed_by
        if who not in dead:
            dead[who] = who is None or is_dead(who)
        if dead[who] or r.lease_until is None or r.lease_until <= now:
            stale.setdefault(who, []).append(r.id)
    return sum(_requeue_stale(conn, who, ids, now, dead[who]) for who, ids in stale.items())


def _requeue_stale(
    conn: Connection, who: str | None, ids: Sequence[int], now: datetime, dead: bool
) -> int:
    same = d.claimed_by.is_(None) if who is None else d.claimed_by == who
    where = [d.state == DeliveryState.SENDING.value, same]
    if not dead:
        where.append(or_(d.lease_until.is_(None), d.lease_until <= now))
    count = 0
    for chunk in _chunks(list(ids)):
        result = conn.execute(
            update(deliveries)
            .where(d.id.in_(chunk), *where)
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
    """Extend the lease of every row ``worker`` holds to ``until``; return their ids.

    The rows are locked in id order first, as :func:`record` writes them.
    """
    held = (
        select(d.id)
        .where(d.state == DeliveryState.SENDING.value, d.claimed_by == worker)
        .order_by(d.id)
        .with_for_update()
    )
    ids = list(conn.execute(held).scalars())
    if not ids:
        return []
    result = conn.execute(
        update(deliveries)
        .where(d.id.in_(ids), d.state == DeliveryState.SENDING.value, d.claimed_by == worker)
        .values(lease_until=until)
        .returning(d.id)
    )
    return sorted(result.scalars())


def worker_name(run: str) -> str:
    """``host:pid:run`` — identifies this process's claims."""
    return f"{socket.gethostname()}:{os.getpid()}:{run}"


def worker_is_dead(worker: str) -> bool:
    """Whether ``worker`` ran on this host and its process no longer exists.

    Claims of other hosts (or unknown formats) are left to lease expiry.
    """
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# -- admin ---------------------------------------------------------------------


def list_deliveries(
    conn: Connection,
    *,
    local_date: str | None = None,
    state: DeliveryState | None = None,
    limit: int | None = None,
) -> list[DeliveryRow]:
    """Deliveries (newest date first, then by id), optionally filtered."""
    query = (
        select(deliveries, subscribers.c.email)
        .join(subscribers, subscribers.c.id == d.subscriber_id)
        .order_by(d.local_date.desc(), d.id)
    )
    if local_date:
        query = query.where(d.local_date == local_date)
    if state:
        query = query.where(d.state == state.value)
    if limit:
        query = query.limit(limit)
    return [_row(r) for r in conn.execute(query)]


def _row(r: Row[Any]) -> DeliveryRow:
    return DeliveryRow(
        r.id,
        r.subscriber_id,
        r.email,
        r.local_date,
        DeliveryState(r.state),
        r.attempts,
        r.article_count,
        r.next_attempt_at,
        r.last_code,
        r.last_reply,
        r.message_id,
        r.created_at,
        r.updated_at,
        r.sent_at,
        r.unknown_outcomes or 0,
    )


def count_by_state(conn: Connection, *, local_date: str | None = None) -> dict[str, int]:
    """How many rows are in each state (for summaries)."""
    query = select(d.state, func.count().label("n")).group_by(d.state)
    if local_date:
        query = query.where(d.local_date == local_date)
    return {r.state: r.n for r in conn.execute(query)}


RETRYABLE = (DeliveryState.FAILED, DeliveryState.DEFERRED, DeliveryState.UNKNOWN)


def requeue(
    conn: Connection,
    now: datetime,
    *,
    state: DeliveryState = DeliveryState.FAILED,
    local_date: str | None = None,
) -> int:
    """Put ``failed`` (or ``deferred``, or ``unknown``) rows back to ``queued`` with
    fresh attempts. An ``unknown`` row's message may already be in the recipient's
    mailbox; re-sending it keeps its Message-ID."""
    if state not in RETRYABLE:
        raise ValueError(f"only {', '.join(s.value for s in RETRYABLE)} rows can be retried")
    where = [d.state == state.value]
    if local_date:
        where.append(d.local_date == local_date)
    result = conn.execute(
        update(deliveries)
        .where(*where)
        .values(
            state=DeliveryState.QUEUED.value,
            attempts=0,
            unknown_outcomes=0,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    return int(result.rowcount)


class SqlOutbox:
    """The engine's :class:`~kabarfeed.delivery.engine.Store` over the database."""

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
