"""Source rows: fetch state and health, recorded where an admin sees it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from kabarfeed.store.schema import sources


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's stored fetch state and health."""

    name: str
    kind: str
    location: str
    etag: str | None = None
    last_modified: str | None = None
    last_fetch_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    error_count: int = 0
    next_fetch_at: datetime | None = None


def _state(r: Row[Any]) -> SourceState:
    return SourceState(
        r.name,
        r.kind,
        r.location,
        r.etag,
        r.last_modified,
        r.last_fetch_at,
        r.last_success_at,
        r.last_error,
        r.last_error_at,
        r.error_count,
        r.next_fetch_at,
    )


def ensure_source(conn: Connection, name: str, kind: str, location: str, *, now: datetime) -> None:
    """Create the row for a configured source, or refresh its kind/location.

    A source whose location changed starts over: its validators are dropped.
    """
    row = conn.execute(select(sources).where(sources.c.name == name)).first()
    if row is None:
        conn.execute(
            insert(sources).values(
                name=name, kind=kind, location=location, error_count=0, created_at=now
            )
        )
    elif (row.kind, row.location) != (kind, location):
        conn.execute(
            update(sources)
            .where(sources.c.name == name)
            .values(kind=kind, location=location, etag=None, last_modified=None, next_fetch_at=None)
        )


def get_source(conn: Connection, name: str) -> SourceState | None:
    """The stored state of ``name``."""
    row = conn.execute(select(sources).where(sources.c.name == name)).first()
    return _state(row) if row else None


def list_sources(conn: Connection, names: Sequence[str] | None = None) -> list[SourceState]:
    """Every stored source (or those named), by name."""
    query = select(sources).order_by(sources.c.name)
    if names is not None:
        query = query.where(sources.c.name.in_(list(names)))
    return [_state(r) for r in conn.execute(query)]


def record_success(
    conn: Connection,
    name: str,
    *,
    now: datetime,
    next_fetch_at: datetime,
    etag: str | None = None,
    last_modified: str | None = None,
    warning: str | None = None,
) -> None:
    """A fetch worked: reset the error count, keep validators for conditional GET.

    ``warning`` (e.g. some files of a folder were unreadable) is kept as
    ``last_error`` so it stays visible, without counting as a failure.
    """
    conn.execute(
        update(sources)
        .where(sources.c.name == name)
        .values(
            etag=etag,
            last_modified=last_modified,
            last_fetch_at=now,
            last_success_at=now,
            error_count=0,
            next_fetch_at=next_fetch_at,
            last_error=warning,
            last_error_at=now if warning else None,
        )
    )


def record_failure(
    conn: Connection, name: str, error: str, *, now: datetime, next_fetch_at: datetime
) -> None:
    """A fetch failed: keep the message, count it, and schedule the retry."""
    conn.execute(
        update(sources)
        .where(sources.c.name == name)
        .values(
            last_fetch_at=now,
            last_error=error[:2000],
            last_error_at=now,
            error_count=sources.c.error_count + 1,
            next_fetch_at=next_fetch_at,
        )
    )
