"""Sign-up limits that every ``kabarfeed run`` process shares.

A sliding window per key (an HMAC digest of the client address or of the
e-mail address: neither is stored in clear), kept in one ``state`` row per
key and updated under that row's lock, so N processes behind a load balancer
allow the configured number of sign-ups per hour, not N times it. Rows of
keys idle for a whole window are deleted as the limiter goes.

Sign-ups are rare enough that one short transaction each is nothing; the
pure window arithmetic is :func:`window_hit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete

from kabarfeed.store import Database
from kabarfeed.store.schema import state
from kabarfeed.store.state import lock_state, write_state

KEY_PREFIX = "web.limit."


@dataclass(frozen=True, slots=True)
class WindowHit:
    """The outcome of one hit: the hits to keep, and the seconds until the
    key may hit again (0: this hit was allowed and is among ``hits``)."""

    hits: tuple[float, ...]
    retry_after: int


def window_hit(hits: Sequence[float], now: float, limit: int, window: float) -> WindowHit:
    """Allow a hit at ``now`` (epoch seconds) when fewer than ``limit`` of
    ``hits`` lie within the ``window`` seconds before it. Pure."""
    recent = tuple(t for t in hits if t > now - window)
    if len(recent) >= limit:
        wait = min(recent) + window - now
        return WindowHit(recent, max(1, math.ceil(wait)))
    return WindowHit((*recent, now), 0)


class SharedWindowLimiter:
    """At most ``limit`` hits per key within ``window``, counted in the database."""

    def __init__(self, db: Database, name: str, limit: int, window: timedelta) -> None:
        self.db = db
        self.prefix = f"{KEY_PREFIX}{name}."
        self.limit = limit
        self.window = window

    def hit(self, key: str, now: datetime) -> int:
        """Record a hit for ``key`` (a digest); 0 when allowed, else the seconds
        to wait (and nothing recorded). One short transaction: call it from
        a worker thread, not the event loop."""
        with self.db.begin() as conn:
            self._prune(conn, now)
            return self._hit(conn, self.prefix + key, now)

    def _hit(self, conn: Connection, row: str, now: datetime) -> int:
        stored = lock_state(conn, row, now)
        hits = [float(t) for t in stored.get("hits", []) if isinstance(t, int | float)]
        outcome = window_hit(hits, now.timestamp(), self.limit, self.window.total_seconds())
        write_state(conn, row, {"hits": list(outcome.hits)}, now)
        return outcome.retry_after

    def _prune(self, conn: Connection, now: datetime) -> None:
        """Delete the rows of keys without a hit for a whole window."""
        conn.execute(
            delete(state).where(
                state.c.key.startswith(self.prefix), state.c.updated_at < now - self.window
            )
        )
