"""Long console operations (a large CSV import, rebuilding every feed) run in
the background; their progress lives in a ``state`` row that any process
can read, so the page that started one can show a progress bar while it runs
and its summary when it is done. A job whose row stops moving (its process
ended) shows as interrupted."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from kabarfeed.store import Database
from kabarfeed.store.schema import state
from kabarfeed.store.state import read_state, write_state

PREFIX = "admin.job."
STALE = timedelta(minutes=5)
"""A running job whose row was not updated for this long is interrupted."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called by a job as it goes."""


@dataclass(frozen=True, slots=True)
class Job:
    """A background job as its page shows it."""

    id: str
    kind: str
    actor: str
    status: str
    done: int
    total: int
    started: str
    summary: str
    updated: datetime | None

    def state(self, now: datetime) -> str:
        """``running``, ``done``, ``failed`` or ``interrupted``."""
        if self.status == "running" and self.updated and now - self.updated > STALE:
            return "interrupted"
        return self.status

    @property
    def percent(self) -> int:
        """Progress 0-100 (0 while the total is unknown)."""
        return round(100 * self.done / self.total) if self.total else 0


def _key(job_id: str) -> str:
    return PREFIX + job_id


def start(db: Database, kind: str, actor: str, *, now: datetime) -> str:
    """Record a new running job; returns its id."""
    job_id = secrets.token_hex(8)
    row = {"kind": kind, "actor": actor, "status": "running", "done": 0, "total": 0}
    with db.begin() as conn:
        write_state(conn, _key(job_id), {**row, "started": now.isoformat(), "summary": ""}, now)
    return job_id


def _update(db: Database, job_id: str, changes: dict[str, Any], now: datetime) -> None:
    with db.begin() as conn:
        row = read_state(conn, _key(job_id)) or {}
        write_state(conn, _key(job_id), {**row, **changes}, now)


def progress(db: Database, job_id: str, clock: Callable[[], datetime]) -> Progress:
    """The callback a job reports through."""

    def report(done: int, total: int) -> None:
        _update(db, job_id, {"done": done, "total": total}, clock())

    return report


def finish(db: Database, job_id: str, *, ok: bool, summary: str, now: datetime) -> None:
    """Mark the job done (or failed) with a one-line summary."""
    _update(db, job_id, {"status": "done" if ok else "failed", "summary": summary}, now)


def get(db: Database, job_id: str) -> Job | None:
    """The job ``job_id``, or ``None``."""
    if not job_id.isalnum() or len(job_id) > 32:
        return None
    with db.connect() as conn:
        row = read_state(conn, _key(job_id))
        updated = conn.execute(
            select(state.c.updated_at).where(state.c.key == _key(job_id))
        ).scalar_one_or_none()
    if row is None:
        return None
    return Job(
        job_id,
        str(row.get("kind", "")),
        str(row.get("actor", "")),
        str(row.get("status", "")),
        int(row.get("done", 0)),
        int(row.get("total", 0)),
        str(row.get("started", "")),
        str(row.get("summary", "")),
        updated,
    )
