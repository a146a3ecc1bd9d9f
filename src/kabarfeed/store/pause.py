"""Pausing the sending of digests: one ``state`` row that every sender reads
before it claims from the outbox (see :class:`kabarfeed.delivery.runner.
StoppableOutbox`), so a pause set in the console holds for every process —
the service's drain, ``digest send`` and ``kabarfeed worker``. Queued
deliveries wait, in-flight sends finish; resuming deletes the row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select

from kabarfeed.store import Database
from kabarfeed.store.schema import state
from kabarfeed.store.state import read_state, write_state

PAUSE_KEY = "delivery.paused"


@dataclass(frozen=True, slots=True)
class Pause:
    """Who paused sending, when and why."""

    by: str
    at: str
    reason: str


def current(conn: Connection) -> Pause | None:
    """The pause in force, or ``None`` when sending runs."""
    row = read_state(conn, PAUSE_KEY)
    if row is None:
        return None
    return Pause(str(row.get("by", "")), str(row.get("at", "")), str(row.get("reason", "")))


def is_paused(db: Database) -> bool:
    """Whether senders must claim nothing now (one indexed read)."""
    with db.connect() as conn:
        return conn.execute(select(state.c.key).where(state.c.key == PAUSE_KEY)).first() is not None


def pause(conn: Connection, *, by: str, reason: str, now: datetime) -> None:
    """Stop every sender from claiming (idempotent; the newest reason wins)."""
    write_state(conn, PAUSE_KEY, {"by": by, "at": now.isoformat(), "reason": reason}, now)


def resume(conn: Connection) -> bool:
    """Let senders claim again; whether sending was paused."""
    return bool(conn.execute(delete(state).where(state.c.key == PAUSE_KEY)).rowcount)
