"""Queries of the ``mail_events`` and ``suppressions`` tables. Writes run in the
caller's transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from kabarfeed.bounces.model import Attribution, EventKind, EventSource, Target
from kabarfeed.store.schema import deliveries, mail_events, state, subscribers, suppressions
from kabarfeed.subscribers import email_key

e = mail_events.c


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored event, as ``bounces list`` / ``show`` print it."""

    id: int
    received_at: datetime
    source: EventSource
    kind: EventKind
    provider: str | None
    recipient: str | None
    status_code: str | None
    diagnostic: str | None
    raw_ref: str | None
    attribution: Attribution
    delivery_id: int | None
    subscriber_id: int | None
    local_date: str | None
    action: str | None
    subscriber_email: str | None = None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "source": self.source.value,
            "kind": self.kind.value,
            "provider": self.provider,
            "recipient": self.recipient,
            "status": self.status_code,
            "diagnostic": self.diagnostic,
            "raw_ref": self.raw_ref,
            "attribution": self.attribution.value,
            "delivery_id": self.delivery_id,
            "subscriber_id": self.subscriber_id,
            "subscriber_email": self.subscriber_email,
            "local_date": self.local_date,
            "action": self.action,
        }


def _event(r: Row[Any]) -> EventRow:
    return EventRow(
        r.id,
        r.received_at,
        EventSource(r.source),
        EventKind(r.kind),
        r.provider,
        r.recipient,
        r.status_code,
        r.diagnostic,
        r.raw_ref,
        Attribution(r.attribution),
        r.delivery_id,
        r.subscriber_id,
        r.local_date,
        r.action,
        r.email,
    )


def _events_query() -> Any:
    return select(mail_events, subscribers.c.email).outerjoin(
        subscribers, subscribers.c.id == e.subscriber_id
    )


def list_events(
    conn: Connection,
    *,
    since: datetime | None = None,
    subscriber_id: int | None = None,
    kind: EventKind | None = None,
    limit: int | None = 200,
) -> list[EventRow]:
    """Events, newest first."""
    query = _events_query()
    if since is not None:
        query = query.where(e.received_at >= since)
    if subscriber_id is not None:
        query = query.where(e.subscriber_id == subscriber_id)
    if kind is not None:
        query = query.where(e.kind == kind.value)
    query = query.order_by(e.received_at.desc(), e.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_event(r) for r in conn.execute(query)]


def get_event(conn: Connection, event_id: int) -> EventRow | None:
    """One event by id, or ``None``."""
    row = conn.execute(_events_query().where(e.id == event_id)).first()
    return _event(row) if row is not None else None


def event_id_for(conn: Connection, dedup_key: str) -> int | None:
    """The id of the event already stored under ``dedup_key``."""
    value = conn.execute(select(e.id).where(e.dedup_key == dedup_key)).scalar()
    return int(value) if value is not None else None


def insert_event(
    conn: Connection,
    *,
    dedup_key: str,
    now: datetime,
    source: EventSource,
    kind: EventKind,
    target: Target,
    provider: str | None,
    recipient: str | None,
    status_code: str | None,
    diagnostic: str | None,
    raw_ref: str | None,
    action: str | None,
) -> int:
    """Insert one event row; :class:`IntegrityError` when ``dedup_key`` exists."""
    key = conn.execute(
        insert(mail_events).values(
            dedup_key=dedup_key,
            received_at=now,
            source=source.value,
            kind=kind.value,
            provider=provider,
            recipient=(recipient or None) and recipient[:320],
            status_code=(status_code or None) and status_code[:20],
            diagnostic=(diagnostic or None) and diagnostic[:1000],
            raw_ref=raw_ref or None,
            attribution=target.attribution.value,
            delivery_id=target.delivery_id,
            subscriber_id=target.subscriber_id,
            local_date=target.local_date,
            action=action,
        )
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def soft_in_window(conn: Connection, subscriber_id: int, since: datetime) -> int:
    """This subscriber's trusted soft bounces received at or after ``since``."""
    trusted = [a.value for a in Attribution if a.trusted]
    query = select(func.count()).where(
        and_(
            e.subscriber_id == subscriber_id,
            e.kind == EventKind.SOFT.value,
            e.received_at >= since,
            e.attribution.in_(trusted),
        )
    )
    return int(conn.execute(query).scalar_one())


def delivery_target(conn: Connection, delivery_id: int) -> tuple[int, str] | None:
    """``(subscriber_id, local_date)`` of a delivery, or ``None``."""
    d = deliveries.c
    row = conn.execute(select(d.subscriber_id, d.local_date).where(d.id == delivery_id)).first()
    return (int(row.subscriber_id), str(row.local_date)) if row is not None else None


def delivery_by_message_id(conn: Connection, message_id: str) -> tuple[int, int, str] | None:
    """``(delivery_id, subscriber_id, local_date)`` of the delivery that carried
    ``message_id``, or ``None``."""
    d = deliveries.c
    row = conn.execute(
        select(d.id, d.subscriber_id, d.local_date)
        .where(d.message_id == message_id.strip())
        .order_by(d.id.desc())
        .limit(1)
    ).first()
    return (int(row.id), int(row.subscriber_id), str(row.local_date)) if row else None


def subscriber_by_token(conn: Connection, token: str) -> int | None:
    """The id of the subscriber whose link token is ``token``."""
    value = conn.execute(select(subscribers.c.id).where(subscribers.c.token == token)).scalar()
    return int(value) if value is not None else None


def suppress(
    conn: Connection, email: str, reason: str, *, event_id: int | None, now: datetime
) -> bool:
    """Put ``email`` on the suppression list (no-op when it is there); whether it was added."""
    if is_suppressed(conn, email):
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                insert(suppressions).values(
                    email_key=email_key(email),
                    email=email,
                    reason=reason,
                    created_at=now,
                    event_id=event_id,
                )
            )
    except IntegrityError:
        return False
    return True


def is_suppressed(conn: Connection, email: str) -> bool:
    """Whether ``email`` is on the suppression list."""
    key = email_key(email.strip())
    found = conn.execute(select(suppressions.c.email).where(suppressions.c.email_key == key))
    return found.first() is not None


def suppressed_among(conn: Connection, emails: list[str]) -> set[str]:
    """The email keys of ``emails`` that are suppressed."""
    keys = sorted({email_key(m) for m in emails})
    out: set[str] = set()
    for start in range(0, len(keys), 400):
        chunk = keys[start : start + 400]
        query = select(suppressions.c.email_key).where(suppressions.c.email_key.in_(chunk))
        out.update(str(k) for k in conn.execute(query).scalars())
    return out


def lift_suppression(conn: Connection, email: str) -> bool:
    """Take ``email`` off the list (only after a fresh double opt-in); whether it was on."""
    result = conn.execute(
        delete(suppressions).where(suppressions.c.email_key == email_key(email.strip()))
    )
    return bool(result.rowcount)


def list_suppressed(conn: Connection) -> list[dict[str, Any]]:
    """The suppression list, newest first, JSON-ready."""
    query = select(suppressions).order_by(suppressions.c.created_at.desc())
    return [
        {
            "email": r.email,
            "reason": r.reason,
            "created_at": r.created_at.isoformat(),
            "event_id": r.event_id,
        }
        for r in conn.execute(query)
    ]


def count_suppressed(conn: Connection) -> int:
    """How many addresses are suppressed."""
    return int(conn.execute(select(func.count()).select_from(suppressions)).scalar_one())


def set_action(conn: Connection, event_id: int, action: str) -> None:
    """Record what was done about an event."""
    conn.execute(update(mail_events).where(e.id == event_id).values(action=action[:500]))


def count_bounce(conn: Connection, subscriber_id: int, now: datetime) -> None:
    """Add one to the subscriber's lifetime bounce counter (shown to admins)."""
    s = subscribers.c
    conn.execute(
        update(subscribers)
        .where(s.id == subscriber_id)
        .values(bounce_count=s.bounce_count + 1, updated_at=now)
    )


_NONCE = "webhook.nonce."


def _nonce_key(name: str) -> str:
    return _NONCE + hashlib.sha256(name.encode()).hexdigest()[:40]


def seen_nonce(conn: Connection, name: str) -> bool:
    """Whether the one-time value ``name`` was used before (read only)."""
    found = conn.execute(select(state.c.key).where(state.c.key == _nonce_key(name)))
    return found.first() is not None


def first_use(conn: Connection, name: str, now: datetime, *, keep: timedelta) -> bool:
    """Remember a one-time value (a webhook token) for ``keep``; whether this is
    its first use. Older remembered values are pruned on the way."""
    conn.execute(
        delete(state).where(state.c.key.startswith(_NONCE), state.c.updated_at < now - keep)
    )
    key = _nonce_key(name)
    try:
        with conn.begin_nested():
            conn.execute(insert(state).values(key=key, value="{}", updated_at=now))
    except IntegrityError:
        return False
    return True
