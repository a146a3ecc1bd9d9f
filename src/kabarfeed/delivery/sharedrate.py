"""The global send rate, shared through the database by every sending process
on every machine (``kabarfeed worker``, the ``run`` processes' outbox drain).

The bookkeeping is the same GCRA ("virtual scheduling") as the in-process
:mod:`~kabarfeed.delivery.ratelimit`, with ``burst = 1``: every bucket keeps
its *theoretical arrival time* (TAT), and the next emission slot is
``max(now, every TAT)``; taking it advances each TAT by the bucket's interval.
Here the TATs live in one ``state`` row (``delivery.rate``, JSON epoch
seconds) that a reservation updates under a row lock (``UPDATE`` first, so
PostgreSQL locks the row and SQLite takes its write lock before the read), so
two processes can never be handed the same slot. Slots of all processes
together are therefore spaced at least ``1 / rate_per_second`` and
``60 / rate_per_minute`` seconds apart: the configured rate is the total.

To keep the database out of the per-message path, a process reserves a small
block of consecutive slots at a time (about a tenth of a second's worth, at
least one) and hands them to its connections in order. A slot that has passed
by more than one block's duration is dropped (the process was idle), never
used late; a slot used within that grace can make a sliding window hold at
most one block more than the rate, never more in the long run. Slots a
process reserved and did not use (it stopped or died) are simply lost: they
lower throughput for an instant and can never raise it.

Times are wall-clock epoch seconds, so the machines' clocks must be in sync
(NTP) — the same assumption the delivery leases already make.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection

from kabarfeed.delivery.ratelimit import Monotonic, RateLimiter, Sleep
from kabarfeed.store import Database
from kabarfeed.store.state import lock_state, write_state

STATE_KEY = "delivery.rate"
BLOCK_SECONDS = 0.1
"""A process reserves about this many seconds' worth of slots per database round trip."""
MAX_BLOCK = 100


# ------------------------------------------------------------------ pure arithmetic


@dataclass(frozen=True, slots=True)
class Rates:
    """The configured limits as bucket intervals in seconds (``0`` rate = no bucket)."""

    per_second: float = 0
    per_minute: float = 0

    @property
    def intervals(self) -> dict[str, float]:
        """``{"second": 1/rate, "minute": 60/rate}`` for each configured limit."""
        out: dict[str, float] = {}
        if self.per_second > 0:
            out["second"] = 1.0 / self.per_second
        if self.per_minute > 0:
            out["minute"] = 60.0 / self.per_minute
        return out

    @property
    def unlimited(self) -> bool:
        """No limit configured."""
        return not self.intervals

    @property
    def spacing(self) -> float:
        """The tightest limit as seconds between two messages."""
        return max(self.intervals.values(), default=0.0)

    def block(self) -> int:
        """Slots reserved per round trip: ~:data:`BLOCK_SECONDS` worth, 1..:data:`MAX_BLOCK`."""
        if self.unlimited:
            return MAX_BLOCK
        return max(1, min(MAX_BLOCK, math.floor(BLOCK_SECONDS / self.spacing)))


def reserve(
    tats: Mapping[str, float], intervals: Mapping[str, float], now: float, count: int
) -> tuple[dict[str, float], list[float]]:
    """Take ``count`` consecutive slots at or after ``now``.

    Returns the new TATs and the slot times (ascending). Buckets missing from
    ``tats`` start empty; TATs of buckets no longer configured are dropped.
    """
    current = {name: tats.get(name, -math.inf) for name in intervals}
    slots: list[float] = []
    for _ in range(count):
        at = max([now, *current.values()])
        slots.append(at)
        current = {name: at + intervals[name] for name in intervals}
    return current, slots


# ------------------------------------------------------------------ where slots come from


class SlotSource(Protocol):
    """Hands out globally unique emission slots (epoch seconds)."""

    def take(self, count: int, now: float) -> list[float]:
        """Reserve ``count`` consecutive slots at or after ``now``."""


@dataclass
class LocalSlots:
    """Slots from an in-memory bucket (tests, and one process on its own)."""

    rates: Rates
    tats: dict[str, float] | None = None

    def take(self, count: int, now: float) -> list[float]:
        """See :class:`SlotSource`."""
        self.tats, slots = reserve(self.tats or {}, self.rates.intervals, now, count)
        return slots


class DatabaseSlots:
    """Slots from the shared ``state`` row (every process of every machine)."""

    def __init__(self, db: Database, rates: Rates, *, key: str = STATE_KEY) -> None:
        self.db = db
        self.rates = rates
        self.key = key

    def take(self, count: int, now: float) -> list[float]:
        """See :class:`SlotSource`; one short transaction."""
        with self.db.begin() as conn:
            return reserve_in_db(conn, self.key, self.rates, now, count)


def reserve_in_db(conn: Connection, key: str, rates: Rates, now: float, count: int) -> list[float]:
    """:func:`reserve` against the TATs stored under ``key``, under a row lock."""
    stamp = datetime.fromtimestamp(now, UTC)
    stored = lock_state(conn, key, stamp)
    tats = {k: float(v) for k, v in stored.items() if isinstance(v, int | float)}
    tats, slots = reserve(tats, rates.intervals, now, count)
    write_state(conn, key, tats, stamp)
    return slots


# ------------------------------------------------------------------ the limiter


class SharedRateLimiter(RateLimiter):
    """A :class:`~kabarfeed.delivery.ratelimit.RateLimiter` whose slots come from a
    :class:`SlotSource` (by default the database), so the limit is global."""

    def __init__(
        self,
        source: SlotSource,
        rates: Rates,
        *,
        clock: Monotonic = time.time,
        sleep: Sleep = asyncio.sleep,
        offload: bool = True,
    ) -> None:
        super().__init__(rates.per_second, rates.per_minute, clock=clock, sleep=sleep)
        self.source = source
        self.rates = rates
        self.reserved = 0
        self._block = rates.block()
        self._grace = max(self._block * rates.spacing, 0.05)
        self._slots: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._offload = offload

    @property
    def unlimited(self) -> bool:
        """Whether no limit is configured."""
        return self.rates.unlimited

    def reserve(self) -> float:
        """Take this process's next slot (blocking database call if the block is
        used up); return the delay until it."""
        now = self._clock()
        if not self._drop_stale(now):
            self._store(self.source.take(self._block, now))
        return self._slots.popleft() - now

    async def acquire(self) -> None:
        """Wait for this process's next globally reserved slot."""
        if self.unlimited:
            return
        async with self._lock:
            now = self._clock()
            if not self._drop_stale(now):
                self._store(await self._take(now))
            at = self._slots.popleft()
        delay = at - self._clock()
        if delay > 0:
            await self._sleep(delay)

    def _drop_stale(self, now: float) -> bool:
        """Forget slots that passed more than the grace ago; whether any is left."""
        while self._slots and self._slots[0] < now - self._grace:
            self._slots.popleft()
        return bool(self._slots)

    def _store(self, slots: list[float]) -> None:
        self._slots.extend(slots)
        self.reserved += len(slots)

    async def _take(self, now: float) -> list[float]:
        if self._offload:
            return await asyncio.to_thread(self.source.take, self._block, now)
        return self.source.take(self._block, now)


def shared_limiter(db: Database, per_second: float, per_minute: float) -> RateLimiter:
    """The global limiter for ``db``: unlimited (no database work) when no rate is set."""
    rates = Rates(per_second, per_minute)
    if rates.unlimited:
        return RateLimiter()
    return SharedRateLimiter(DatabaseSlots(db, rates), rates)
