"""Virtual time for testing async pacing (rate limiters) without sleeping."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Coroutine
from typing import Any


class FakeTime:
    """Virtual time: sleepers wake in order of their wake-up time, and the clock
    jumps to it only when every task is blocked (no real time passes).
    ``sends`` is a scratch list tests append the clock readings they observe to."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sends: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.now + delay, self._seq, future))
        await future

    async def run(self, *coros: Coroutine[Any, Any, None]) -> None:
        """Run ``coros`` to completion, advancing the clock whenever all block."""
        tasks = [asyncio.create_task(c) for c in coros]
        while not all(t.done() for t in tasks):
            for _ in range(20):
                await asyncio.sleep(0)
            if self._sleepers:
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)
        await asyncio.gather(*tasks)
