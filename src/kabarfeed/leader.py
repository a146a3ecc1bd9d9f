"""Cluster coordination: which ``run`` process holds the scheduler role, and
cluster-wide locks (feed builds).

Several ``kabarfeed run`` processes may share one database. Exactly one — the
*leader* — runs the scheduler's ingest, feed-build and digest-group jobs; every
process serves the web app and drains the outbox.

* **PostgreSQL**: the leader holds a session advisory lock
  (``pg_try_advisory_lock``) on a dedicated connection of its own. PostgreSQL
  releases it the moment that session ends — process killed, machine gone
  (after TCP keepalive), connection dropped — and a follower polling every
  few seconds takes it over. The leader checks its connection on every poll
  and steps down as soon as it fails.
* **SQLite** (one machine): a lease row in ``state``, renewed on every poll
  and taken over once it is :data:`LEASE_POLLS` polls old.

Either way the role is advisory for *efficiency*; correctness never depends on
it: editions are inserted with ``ON CONFLICT DO NOTHING`` on the unique
(subscriber, local date) key, so even two leaders for a moment build each
edition once. The leader also writes the ``scheduler.leader`` row (holder,
host, pid, since, last beat) that ``kabarfeed status`` shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Connection, create_engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from kabarfeed.config import SourceConfig
from kabarfeed.models import Clock
from kabarfeed.scheduler import GroupPlan, SendGroup, UseCases
from kabarfeed.store import Database
from kabarfeed.store.deliveries import worker_is_dead
from kabarfeed.store.dialect import (
    advisory_lock,
    advisory_unlock,
    insert_ignoring_conflicts,
    is_postgresql,
    lock_key,
    try_advisory_lock,
)
from kabarfeed.store.schema import state

log = logging.getLogger(__name__)

LEADER_KEY = "scheduler.leader"
"""``state`` row naming the current leader (and, on SQLite, its lease)."""
SCHEDULER_LOCK = "scheduler"
FEEDS_LOCK = "feeds.build"
POLL_MAX = timedelta(seconds=5)
LEASE_POLLS = 3
"""On SQLite a leader that missed this many polls is considered gone."""


class Role(StrEnum):
    """What a ``run`` process does."""

    LEADER = "leader"
    FOLLOWER = "follower"


def process_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def poll_interval(heartbeat: timedelta) -> timedelta:
    """How often followers try to take over: the heartbeat, at most :data:`POLL_MAX`."""
    return min(heartbeat, POLL_MAX)


# ------------------------------------------------------------------ pure decision


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """The ``scheduler.leader`` row."""

    holder: str
    since: datetime
    beat: datetime
    until: datetime

    def to_json(self) -> str:
        """Serialised for the ``state`` table."""
        host, _, pid = self.holder.rpartition(":")
        return json.dumps(
            {
                "holder": self.holder,
                "host": host,
                "pid": int(pid) if pid.isdigit() else None,
                "since": self.since.isoformat(),
                "beat": self.beat.isoformat(),
                "until": self.until.isoformat(),
            }
        )

    @classmethod
    def parse(cls, raw: str | None) -> LeaderRecord | None:
        """The stored row, or ``None`` when absent or malformed."""
        try:
            data = json.loads(raw or "")
            return cls(
                str(data["holder"]),
                datetime.fromisoformat(data["since"]),
                datetime.fromisoformat(data["beat"]),
                datetime.fromisoformat(data["until"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def next_lease(
    current: LeaderRecord | None,
    me: str,
    now: datetime,
    ttl: timedelta,
    *,
    holder_gone: bool = False,
) -> LeaderRecord | None:
    """The lease after ``me`` polls at ``now``: renewed or taken over, or
    ``None`` when someone else still holds a live lease (``holder_gone``: its
    process is known to have exited, so its lease need not run out)."""
    live = current is not None and current.until > now and not holder_gone
    if current is not None and current.holder != me and live:
        return None
    since = current.since if current is not None and current.holder == me else now
    return LeaderRecord(me, since, now, now + ttl)


# ------------------------------------------------------------------ strategies


class Leadership(Protocol):
    """One way of electing the scheduler."""

    def poll(self, now: datetime) -> bool:
        """Try to become leader (or confirm it); return whether this process leads."""

    def release(self, now: datetime) -> None:
        """Step down (on shutdown) so another process takes over at once."""


def _read(conn: Connection) -> LeaderRecord | None:
    raw = conn.execute(select(state.c.value).where(state.c.key == LEADER_KEY)).scalar()
    return LeaderRecord.parse(raw)


def _write(conn: Connection, record: LeaderRecord) -> None:
    row = {"key": LEADER_KEY, "value": record.to_json(), "updated_at": record.beat}
    insert_ignoring_conflicts(conn, state, [row], ("key",))
    conn.execute(
        update(state)
        .where(state.c.key == LEADER_KEY)
        .values(value=row["value"], updated_at=record.beat)
    )


class LeaseLeadership:
    """A lease row in ``state`` (SQLite: every process is on one machine)."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: timedelta,
        me: str | None = None,
        is_dead: Callable[[str], bool] = worker_is_dead,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.me = me or process_id()
        self._is_dead = is_dead

    def poll(self, now: datetime) -> bool:
        """See :class:`Leadership`."""
        with self.db.begin() as conn:
            placeholder = LeaderRecord("", now, now, now)
            insert_ignoring_conflicts(
                conn,
                state,
                [{"key": LEADER_KEY, "value": placeholder.to_json(), "updated_at": now}],
                ("key",),
            )
            conn.execute(  # take the write lock before reading
                update(state).where(state.c.key == LEADER_KEY).values(updated_at=now)
            )
            current = _read(conn)
            gone = current is not None and bool(current.holder) and self._is_dead(current.holder)
            lease = next_lease(current, self.me, now, self.ttl, holder_gone=gone)
            if lease is not None:
                _write(conn, lease)
            return lease is not None

    def release(self, now: datetime) -> None:
        """Expire our lease."""
        with self.db.begin() as conn:
            current = _read(conn)
            if current is not None and current.holder == self.me:
                _write(conn, LeaderRecord(self.me, current.since, now, now))


class AdvisoryLeadership:
    """A PostgreSQL session advisory lock on a dedicated connection."""

    def __init__(self, db: Database, *, ttl: timedelta, me: str | None = None) -> None:
        self.db = db
        self.ttl = ttl
        self.me = me or process_id()
        self.key = lock_key(SCHEDULER_LOCK)
        self._engine = create_engine(db.engine.url, poolclass=NullPool)
        self._conn: Connection | None = None
        self._since: datetime | None = None

    def poll(self, now: datetime) -> bool:
        """See :class:`Leadership`."""
        try:
            if self._conn is None:
                conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if not try_advisory_lock(conn, self.key):
                    conn.close()
                    return False
                self._conn, self._since = conn, now
            self._beat(self._conn, now)
            return True
        except SQLAlchemyError as e:
            if self._conn is not None:
                log.warning("scheduler lock connection lost: %s", e.__class__.__name__)
            self._drop()
            return False

    def _beat(self, conn: Connection, now: datetime) -> None:
        """Prove the session (and so the lock) is alive, and publish the role."""
        since = self._since or now
        _write(conn, LeaderRecord(self.me, since, now, now + self.ttl))
        conn.commit()  # autocommit: ends only SQLAlchemy's bookkeeping transaction

    def _drop(self) -> None:
        conn, self._conn, self._since = self._conn, None, None
        if conn is not None:
            with suppress(SQLAlchemyError):
                conn.invalidate()
                conn.close()

    def release(self, now: datetime) -> None:
        """Unlock and close the dedicated connection."""
        if self._conn is not None:
            with suppress(SQLAlchemyError):
                advisory_unlock(self._conn, self.key)
        self._drop()
        self._engine.dispose()


def make_leadership(db: Database, *, ttl: timedelta) -> Leadership:
    """Advisory lock on PostgreSQL, lease row elsewhere."""
    if is_postgresql(db.dialect):
        return AdvisoryLeadership(db, ttl=ttl)
    return LeaseLeadership(db, ttl=ttl)


def read_leader(conn: Connection) -> dict[str, Any] | None:
    """The ``scheduler.leader`` row as a dict (for ``status``), or ``None``."""
    raw = conn.execute(select(state.c.value).where(state.c.key == LEADER_KEY)).scalar()
    if LeaderRecord.parse(raw) is None:
        return None
    data: dict[str, Any] = json.loads(raw or "{}")
    return data if data.get("holder") else None


# ------------------------------------------------------------------ the running role


class Elector:
    """Polls a :class:`Leadership` from the event loop and reports role changes."""

    def __init__(
        self,
        leadership: Leadership,
        clock: Clock,
        *,
        every: timedelta,
        on_elected: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.leadership = leadership
        self.clock = clock
        self.every = every
        self.on_elected = on_elected
        self.role = Role.FOLLOWER

    @property
    def leading(self) -> bool:
        """Whether this process currently holds the scheduler role."""
        return self.role is Role.LEADER

    async def poll(self) -> Role:
        """One poll; logs and reports a change of role."""
        leads = await asyncio.to_thread(self.leadership.poll, self.clock())
        new = Role.LEADER if leads else Role.FOLLOWER
        if new is not self.role:
            self.role = new
            if leads:
                log.info("this process is now the scheduler (leader)")
                if self.on_elected is not None:
                    await self.on_elected()
            else:
                log.warning("this process lost the scheduler role; serving web and delivery only")
        return self.role

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``every`` until ``stop``; then step down."""
        try:
            while not stop.is_set():
                try:
                    await self.poll()
                except Exception:  # a poll must never end the loop
                    log.exception("leader election poll failed")
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.every.total_seconds())
        finally:
            await asyncio.to_thread(self.leadership.release, self.clock())
            self.role = Role.FOLLOWER


class LeaderOnly:
    """The scheduler's :class:`~kabarfeed.scheduler.UseCases`, with ingest, feed
    builds and digest groups done only while ``leading()``; everything else
    (outbox drain, heartbeat, reads) is passed through."""

    def __init__(self, cases: UseCases, leading: Callable[[], bool]) -> None:
        self.cases = cases
        self.leading = leading

    def sources(self) -> Sequence[SourceConfig]:
        """See :class:`~kabarfeed.scheduler.UseCases`."""
        return self.cases.sources()

    def source_next_fetch(self, name: str) -> datetime | None:
        """See :class:`~kabarfeed.scheduler.UseCases`."""
        return self.cases.source_next_fetch(name)

    def ingest(self, source: SourceConfig) -> bool:
        """Ingest (leader only)."""
        return self.cases.ingest(source) if self.leading() else False

    def build_feeds(self) -> None:
        """Build feeds (leader only)."""
        if self.leading():
            self.cases.build_feeds()

    def groups(self) -> Sequence[SendGroup]:
        """See :class:`~kabarfeed.scheduler.UseCases`."""
        return self.cases.groups()

    def run_group(self, group: SendGroup, now: datetime) -> GroupPlan:
        """Queue the group's editions (leader only; followers plan nothing)."""
        if self.leading():
            return self.cases.run_group(group, now)
        return GroupPlan(group)

    async def drain(self, stop: asyncio.Event) -> int:
        """Every process drains the outbox."""
        return await self.cases.drain(stop)

    def heartbeat(self) -> None:
        """See :class:`~kabarfeed.scheduler.UseCases`."""
        self.cases.heartbeat()


# ------------------------------------------------------------------ cluster-wide locks


@contextmanager
def cluster_lock(db: Database, name: str) -> Iterator[None]:
    """Hold the cluster-wide lock ``name`` (waiting for it) for the block.

    PostgreSQL: a session advisory lock on a dedicated connection, so builds on
    different machines run one after the other. SQLite: nothing to do (one
    machine; callers keep their own file locks).
    """
    if not is_postgresql(db.dialect):
        yield
        return
    key = lock_key(name)
    with db.engine.connect() as raw:
        conn = raw.execution_options(isolation_level="AUTOCOMMIT")
        advisory_lock(conn, key)
        try:
            yield
        finally:
            advisory_unlock(conn, key)
