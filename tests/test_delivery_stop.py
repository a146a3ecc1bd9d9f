"""Graceful stop: in-flight sends finish and are recorded, the rest is released."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from kabarfeed.delivery.engine import DeliveryEngine
from kabarfeed.delivery.outbox import ResultKind, SendResult
from kabarfeed.models import DeliveryState
from kabarfeed.store import Database
from tests.deliveryhelpers import (
    RawRenderer,
    add_subscribers,
    by_state,
    outbox,
    queue,
    rows,
    settings,
)

NOW = datetime(2025, 11, 16, 22, 0, tzinfo=UTC)


class SlowTransport:
    """Accepts every message after a delay; sets ``stop`` after ``stop_after`` sends."""

    name = "slow"

    def __init__(self, stop: asyncio.Event, stop_after: int) -> None:
        self.stop = stop
        self.stop_after = stop_after
        self.accepted: list[str] = []

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        await asyncio.sleep(0.02)
        self.accepted.append(recipient)
        if len(self.accepted) == self.stop_after:
            self.stop.set()
        return SendResult(ResultKind.ACCEPTED, 250, "ok")

    async def close(self) -> None:
        return None


def test_stop_finishes_in_flight_and_releases_the_rest(db: Database) -> None:
    ids = add_subscribers(db, 60, NOW)
    queue(db, ids, NOW)

    async def go() -> tuple[int, SlowTransport]:
        stop = asyncio.Event()
        transport = SlowTransport(stop, stop_after=5)
        engine = DeliveryEngine(
            outbox(db),
            RawRenderer(db),
            transport,
            settings(concurrency=4, batch_size=50),
            clock=lambda: NOW,
        )
        report = await engine.run(stop=stop)
        return report.released, transport

    released, transport = asyncio.run(go())
    sent = by_state(db, DeliveryState.SENT)
    queued = by_state(db, DeliveryState.QUEUED)
    assert 5 <= len(transport.accepted) < 60, "stopped early, after in-flight sends"
    assert len(sent) == len(transport.accepted), "every accepted message is recorded"
    assert len(queued) == 60 - len(sent), "the rest is back in the queue"
    assert released == 50 - len(sent), "the claimed batch's unsent rows were released"
    assert not by_state(db, DeliveryState.SENDING)
    assert len(rows(db)) == 60
