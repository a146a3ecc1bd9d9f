"""Promised welcome editions, kept in the ``state`` table.

A subscriber who has just been confirmed is *promised* a welcome edition
(``welcome.<subscriber id>``). The promise is settled (its row deleted) in the
same transaction that records the welcome edition in the outbox, or when it
no longer applies (the subscriber left, already has an edition, or welcome
editions are switched off), so a welcome is recorded at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from kabarfeed.models import DeliveryState
from kabarfeed.store.schema import deliveries, state
from kabarfeed.store.state import read_prefixed, read_state, write_state

WELCOME_PREFIX = "welcome."
"""``state`` key prefix of a promised welcome edition (``welcome.<subscriber id>``)."""


def _key(subscriber_id: int) -> str:
    return f"{WELCOME_PREFIX}{subscriber_id}"


def promise(conn: Connection, subscriber_id: int, now: datetime) -> None:
    """Promise ``subscriber_id`` a welcome edition (idempotent; keeps the first time)."""
    if read_state(conn, _key(subscriber_id)) is None:
        write_state(conn, _key(subscriber_id), {"promised_at": now.isoformat()}, now)


def pending(conn: Connection) -> dict[int, datetime]:
    """Every open promise: subscriber id → when it was made."""
    out: dict[int, datetime] = {}
    for key, value in read_prefixed(conn, WELCOME_PREFIX).items():
        suffix = key.removeprefix(WELCOME_PREFIX)
        if suffix.isdigit():
            try:
                out[int(suffix)] = datetime.fromisoformat(str(value.get("promised_at")))
            except ValueError:
                continue
    return out


def settle(conn: Connection, subscriber_ids: Sequence[int]) -> None:
    """Close the promises of ``subscriber_ids`` (kept or dropped)."""
    keys = [_key(i) for i in subscriber_ids]
    for start in range(0, len(keys), 500):
        conn.execute(delete(state).where(state.c.key.in_(keys[start : start + 500])))


def pending_among(conn: Connection, subscriber_ids: Sequence[int]) -> set[int]:
    """Those of ``subscriber_ids`` with an open promise."""
    out: set[int] = set()
    for start in range(0, len(subscriber_ids), 500):
        keys = [_key(i) for i in subscriber_ids[start : start + 500]]
        found = conn.execute(select(state.c.key).where(state.c.key.in_(keys))).scalars()
        out.update(int(k.removeprefix(WELCOME_PREFIX)) for k in found)
    return out


def had_digest(conn: Connection, subscriber_ids: Sequence[int]) -> set[int]:
    """Those of ``subscriber_ids`` with an edition that was not skipped (queued,
    sent, or on its way): their first digest is behind them."""
    d = deliveries.c
    out: set[int] = set()
    for start in range(0, len(subscriber_ids), 500):
        chunk = list(subscriber_ids[start : start + 500])
        query = (
            select(d.subscriber_id)
            .where(d.subscriber_id.in_(chunk), d.state != DeliveryState.SKIPPED.value)
            .distinct()
        )
        out.update(conn.execute(query).scalars())
    return out


def first_cutoffs(conn: Connection, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
    """Each subscriber's first edition that was not skipped, by its cut-off
    (the edition that greets them; stable across retries of that row)."""
    d = deliveries.c
    out: dict[int, datetime] = {}
    for start in range(0, len(subscriber_ids), 500):
        chunk = list(subscriber_ids[start : start + 500])
        query = (
            select(d.subscriber_id, func.min(d.cutoff_at))
            .where(d.subscriber_id.in_(chunk), d.state != DeliveryState.SKIPPED.value)
            .group_by(d.subscriber_id)
        )
        out.update((row[0], row[1]) for row in conn.execute(query))
    return out
