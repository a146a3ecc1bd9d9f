"""One global send rate shared by every SMTP connection of a process.

A token bucket in its "virtual scheduling" form (GCRA): each acquisition
reserves the next free emission slot synchronously — so concurrent coroutines
can never both take the same token — and then sleeps until that slot. With
``burst = 1`` slots are exactly ``1 / rate`` apart, so any one-second window
holds at most ``rate_per_second`` messages and any minute at most
``rate_per_minute``: the configured rate, not rate × connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst`` (GCRA bookkeeping)."""

    rate: float
    burst: int = 1
    _tat: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return 1.0 / self.rate

    def earliest(self, now: float) -> float:
        """The earliest moment the next token may be taken."""
        return max(now, self._tat - (self.burst - 1) * self.interval)

    def take(self, at: float) -> None:
        """Consume the token for an emission at ``at``."""
        self._tat = max(self._tat, at) + self.interval


class RateLimiter:
    """Per-second and per-minute limits (0 = unlimited), enforced together."""

    def __init__(
        self,
        per_second: float = 0,
        per_minute: float = 0,
        *,
        clock: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._buckets = [
            b
            for b in (
                TokenBucket(per_second) if per_second > 0 else None,
                TokenBucket(per_minute / 60.0) if per_minute > 0 else None,
            )
            if b is not None
        ]
        self._clock = clock
        self._sleep = sleep

    @property
    def unlimited(self) -> bool:
        """Whether no limit is configured."""
        return not self._buckets

    def reserve(self) -> float:
        """Reserve the next slot in every bucket; return the delay until it."""
        now = self._clock()
        at = max((b.earliest(now) for b in self._buckets), default=now)
        for bucket in self._buckets:
            bucket.take(at)
        return at - now

    async def acquire(self) -> None:
        """Wait until this caller may send one message."""
        if not self._buckets:
            return
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)
