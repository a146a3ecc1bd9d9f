"""The ``state`` table: small JSON records keyed by name (heartbeats, build
markers, the last config reload, send-group progress, leader lease)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from kabarfeed.store.dialect import insert_ignoring_conflicts
from kabarfeed.store.schema import state

WORKER_HEARTBEAT_PREFIX = "worker.heartbeat."
"""Key prefix of each delivery worker's liveness record (``worker.heartbeat.<name>``)."""


def read_state(conn: Connection, key: str) -> dict[str, Any] | None:
    """The JSON object stored under ``key``, or ``None``."""
    value = conn.execute(select(state.c.value).where(state.c.key == key)).scalar()
    if not value:
        return None
    try:
        loaded = json.loads(value)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


def lock_state(conn: Connection, key: str, now: datetime) -> dict[str, Any]:
    """The JSON object under ``key`` (``{}`` when none), with the row locked
    for the rest of the transaction: the row is made if missing and updated
    first, so PostgreSQL locks it and SQLite takes its write lock before the
    read. Two transactions can then never read the same value and both
    write on top of it."""
    insert_ignoring_conflicts(
        conn, state, [{"key": key, "value": "{}", "updated_at": now}], ("key",)
    )
    conn.execute(update(state).where(state.c.key == key).values(updated_at=now))
    return read_state(conn, key) or {}


def write_state(conn: Connection, key: str, value: dict[str, Any], now: datetime) -> None:
    """Store ``value`` as JSON under ``key`` (portable upsert)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    done = conn.execute(
        update(state).where(state.c.key == key).values(value=text, updated_at=now)
    ).rowcount
    if not done:
        conn.execute(insert(state).values(key=key, value=text, updated_at=now))


def read_prefixed(conn: Connection, prefix: str) -> dict[str, dict[str, Any]]:
    """Every JSON record whose key starts with ``prefix``, by key."""
    rows = conn.execute(select(state.c.key, state.c.value).where(state.c.key.startswith(prefix)))
    out: dict[str, dict[str, Any]] = {}
    for key, value in rows:
        try:
            loaded = json.loads(value)
        except ValueError:
            continue
        if isinstance(loaded, dict):
            out[key] = loaded
    return out
