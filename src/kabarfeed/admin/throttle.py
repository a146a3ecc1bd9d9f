"""Failed-login windows shared by every process through the ``state`` table.

Only failures count: an account that logs in from three devices is not
locked out, while guessing is stopped after ``limit`` wrong answers within
``window`` (per client address, and per account address whether or not it
has an account). A success clears the account's failures. Keys are digests
made by the caller; rows idle for a whole window are deleted as it goes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete

from kabarfeed.store import Database
from kabarfeed.store.schema import state
from kabarfeed.store.state import lock_state, read_state, write_state

PREFIX = "admin.login."


def wait_seconds(hits: Sequence[float], now: float, limit: int, window: float) -> int:
    """Seconds until another attempt is allowed (0: allowed now). Pure."""
    recent = [t for t in hits if t > now - window]
    if len(recent) < limit:
        return 0
    return max(1, math.ceil(sorted(recent)[-limit] + window - now))


class FailureWindow:
    """At most ``limit`` failures per key within ``window``."""

    def __init__(self, db: Database, name: str, limit: int, window: timedelta) -> None:
        self.db = db
        self.prefix = f"{PREFIX}{name}."
        self.limit = limit
        self.window = window

    def _hits(self, value: dict[str, object] | None) -> list[float]:
        raw = value.get("hits", []) if value else []
        return (
            [float(t) for t in raw if isinstance(t, int | float)] if isinstance(raw, list) else []
        )

    def wait(self, key: str, now: datetime) -> int:
        """0 when ``key`` may try now, else the seconds to wait."""
        with self.db.connect() as conn:
            hits = self._hits(read_state(conn, self.prefix + key))
        return wait_seconds(hits, now.timestamp(), self.limit, self.window.total_seconds())

    def fail(self, key: str, now: datetime) -> None:
        """Record one failure for ``key`` (under the row's lock)."""
        with self.db.begin() as conn:
            conn.execute(
                delete(state).where(
                    state.c.key.startswith(self.prefix), state.c.updated_at < now - self.window
                )
            )
            row = self.prefix + key
            cutoff = now.timestamp() - self.window.total_seconds()
            hits = [t for t in self._hits(lock_state(conn, row, now)) if t > cutoff]
            write_state(conn, row, {"hits": [*hits, now.timestamp()]}, now)

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (after a success)."""
        with self.db.begin() as conn:
            conn.execute(delete(state).where(state.c.key == self.prefix + key))
