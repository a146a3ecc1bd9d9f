"""The one outbox runner behind every sending entry point: ``digest send``
(:mod:`kabarfeed.delivery.run`), the service's outbox drain
(:func:`kabarfeed.integrations.drain_outbox`) and ``kabarfeed worker``
(:mod:`kabarfeed.delivery.worker`).

Each of them used to wire its own engine; only the worker renewed its lease,
so a ``digest send`` or a service drain whose batch outlived ``[smtp] lease``
(a throttling relay) had its rows re-queued and sent again by the next sender.
Now all three build the same thing here:

* one :class:`~kabarfeed.store.deliveries.SqlOutbox` under one sender name
  (``host:pid:run``), whose every result write-back is conditional on still
  holding the row; a result that lost its row is counted ``lost``, not sent;
* the engine's :class:`~kabarfeed.delivery.lease.LeaseKeeper`, renewing the
  lease of every row held every third of ``[smtp] lease`` while a run is in
  flight;
* :class:`StoppableOutbox`: no claim once ``stop`` is set, and rows of dead
  senders recovered every half lease between claims (not only at start);
* the shared ``[smtp]`` rate limiter and a fresh transport per run.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kabarfeed.config import Config
from kabarfeed.delivery import factory
from kabarfeed.delivery.breaking import AlertRenderer
from kabarfeed.delivery.engine import (
    Claim,
    DeliveryEngine,
    Outcome,
    Progress,
    ProgressCallback,
    RunReport,
)
from kabarfeed.delivery.enqueue import OutboxRenderer
from kabarfeed.delivery.ratelimit import RateLimiter
from kabarfeed.models import Clock
from kabarfeed.store import Database
from kabarfeed.store.alerts import SqlAlertOutbox
from kabarfeed.store.deliveries import SqlOutbox, worker_name
from kabarfeed.store.pause import is_paused

log = logging.getLogger(__name__)


class StoppableOutbox:
    """The SQL outbox, but claiming nothing once ``stop`` is set (a second guard
    next to the engine's own ``stop``), and recovering dead senders' rows
    every ``recover_every`` between claims — not only when a run starts, which
    under a long backlog could be hours away."""

    def __init__(
        self,
        outbox: SqlOutbox | SqlAlertOutbox,
        stop: asyncio.Event,
        *,
        recover_every: timedelta | None = None,
    ) -> None:
        self.outbox = outbox
        self.stop = stop
        self.recover_every = recover_every
        self.recovered = 0
        self._last_recover: datetime | None = None

    def recover(self, now: datetime) -> int:
        """See :class:`~kabarfeed.delivery.engine.Store`."""
        self._last_recover = now
        return self.outbox.recover(now)

    def claim(self, limit: int, now: datetime) -> list[Claim]:
        """Nothing after ``stop`` or while sending is paused (the console's
        pause, :mod:`kabarfeed.store.pause`); otherwise see
        :class:`~kabarfeed.delivery.engine.Store`."""
        if self.stop.is_set() or is_paused(self.outbox.db):
            return []
        every, last = self.recover_every, self._last_recover
        if every is not None and (last is None or now - last >= every):
            found = self.recover(now)
            if found:
                self.recovered += found
                log.info("re-queued %d deliveries of stopped senders", found)
        return self.outbox.claim(limit, now)

    def record(self, outcomes: Sequence[Outcome], now: datetime) -> list[int]:
        """See :class:`~kabarfeed.delivery.engine.Store`."""
        return self.outbox.record(outcomes, now)

    def release(self, ids: Sequence[int], now: datetime) -> None:
        """See :class:`~kabarfeed.delivery.engine.Store`."""
        self.outbox.release(ids, now)

    def renew(self, now: datetime) -> list[int]:
        """See :class:`~kabarfeed.delivery.engine.Store`."""
        return self.outbox.renew(now)


@dataclass
class OutboxRunner:
    """Sends from the outbox under one sender name; see the module docstring.

    ``processes`` is the number of sibling sender processes sharing the rate
    (``digest send --processes N``), which sizes the claim batches.
    """

    config: Config
    db: Database
    clock: Clock
    name: str = field(default_factory=lambda: worker_name(uuid.uuid4().hex[:8]))
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    processes: int = 1
    on_progress: ProgressCallback | None = None
    limiter: RateLimiter | None = None

    def __post_init__(self) -> None:
        smtp = self.config.smtp
        self.outbox = StoppableOutbox(
            SqlOutbox(
                self.db,
                worker=self.name,
                lease=smtp.lease,
                bounce_threshold=smtp.bounce_threshold,
            ),
            self.stop,
            recover_every=smtp.lease / 2,
        )
        self.alert_outbox = StoppableOutbox(
            SqlAlertOutbox(
                self.db,
                worker=self.name,
                lease=smtp.lease,
                bounce_threshold=smtp.bounce_threshold,
            ),
            self.stop,
            recover_every=smtp.lease / 2,
        )
        self._limiter = self.limiter or factory.make_limiter(self.config, self.db)

    def engine(self) -> DeliveryEngine:
        """A fresh engine (and transport) over this runner's outbox and lease."""
        return DeliveryEngine(
            self.outbox,
            OutboxRenderer(self.config, self.db, clock=self.clock),
            factory.make_transport(self.config, self._limiter),
            factory.engine_settings(self.config, processes=self.processes),
            clock=self.clock,
            on_progress=self.on_progress,
        )

    def alert_engine(self) -> DeliveryEngine:
        """A fresh engine over the breaking-alert outbox (same lease, sender
        name, rate limiter, DKIM and transport settings as editions)."""
        return DeliveryEngine(
            self.alert_outbox,
            AlertRenderer(self.config, self.db, clock=self.clock),
            factory.make_transport(self.config, self._limiter),
            factory.engine_settings(self.config, processes=self.processes),
            clock=self.clock,
        )

    async def run(self, limit: int | None = None) -> RunReport:
        """Due breaking alerts first (few, and they cannot wait behind a digest
        backlog), then editions: each an engine run that recovers, then
        claims/sends until nothing is due, ``limit`` rows were claimed, the
        transport pauses or ``stop`` is set. The report adds both up."""
        alerts = await self.alert_engine().run(limit, stop=self.stop)
        if alerts.paused or self.stop.is_set():
            return alerts
        left = None if limit is None else max(0, limit - alerts.progress.claimed)
        if left == 0:
            return alerts
        editions = await self.engine().run(left, stop=self.stop)
        return _combined(alerts, editions)


def _combined(first: RunReport, second: RunReport) -> RunReport:
    a, b = first.progress, second.progress
    counts = {
        f: getattr(a, f) + getattr(b, f) for f in Progress.__dataclass_fields__ if f != "elapsed"
    }
    return RunReport(
        Progress(**counts, elapsed=a.elapsed + b.elapsed),
        second.paused,
        second.pause_reason,
        first.released + second.released,
    )
