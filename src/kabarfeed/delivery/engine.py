"""The delivery engine: claim queued editions, render, send, checkpoint.

Listmonk-style: the engine only knows three small interfaces — a
:class:`Store` (the outbox), a :class:`Renderer` (claims to message bytes) and
a :class:`Transport` (one message to one recipient) — plus a plain
:class:`EngineSettings`. Every state change is committed before the step that
depends on it:

1. ``Store.recover`` re-queues rows left in ``sending`` by a dead run;
2. ``Store.claim`` marks a batch ``sending`` (committed) before any of it is sent;
3. each transport result is committed *before* the sender that got it takes
   its next message. Results are grouped: one transaction holds every result
   that arrives within ``checkpoint_window`` (default 5 ms) of the first one,
   and it commits at once when every sender in flight is waiting for it.
   A result is written only to a row this run still holds (``Store.record``
   returns the rows it no longer held): such a result is counted ``lost`` and
   logged, never counted as sent;
4. while the run holds rows, a :class:`~kabarfeed.delivery.lease.LeaseKeeper`
   thread renews their lease every third of ``EngineSettings.lease``, so no
   other sender's recovery takes rows from a live run however slow the relay.
   A renewal also tells which rows are still held: a row another sender took
   (this process was frozen, or its database unreachable, for longer than the
   lease) is dropped without being sent, and before a message is sent on a
   lease not confirmed for two thirds of its length, the lease is renewed
   first — so a sender waking up from a long pause does not send its whole
   remaining batch again.

So a crash can only duplicate a message whose ``250`` reply arrived and whose
checkpoint had not committed yet: at most one message per sender
(``concurrency``, the pool size) per process. (A message whose final dot got
no reply is *unknown*, see :mod:`kabarfeed.delivery.outbox`.)
Connection faults put the message back in the in-memory queue (its row stays
``sending`` under this run's lease); after ``pause_after_failures`` consecutive
faults the run pauses, releases everything unsent to ``queued`` and reports.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Protocol

from kabarfeed.delivery.lease import LeaseKeeper
from kabarfeed.delivery.outbox import (
    Decision,
    Rand,
    ResultKind,
    RetryPolicy,
    SendResult,
    decide,
)
from kabarfeed.models import Clock, DeliveryState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery row this run has marked ``sending``."""

    id: int
    subscriber_id: int
    local_date: str
    attempts: int
    since: datetime
    cutoff: datetime
    article_ids: tuple[str, ...] = ()
    total_matching: int = 0
    unknowns: int = 0
    """Earlier attempts of this row whose outcome is unknown (no reply to the final dot)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One ready-to-send message for a claimed row."""

    claim: Claim
    recipient: str
    message_id: str
    data: bytes
    envelope_from: str | None = None
    """This message's envelope sender (e.g. a VERP address); ``None``: the run's."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A claimed row that will not be sent, and why."""

    claim: Claim
    reason: str


@dataclass(frozen=True, slots=True)
class RenderedBatch:
    """What the renderer made of a batch of claims."""

    envelopes: tuple[Envelope, ...] = ()
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """A committed-to-be decision for one row."""

    delivery_id: int
    subscriber_id: int
    decision: Decision
    message_id: str | None = None


class Store(Protocol):
    """The outbox as the engine sees it. Every method commits before returning."""

    def recover(self, now: datetime) -> int:
        """Re-queue rows left ``sending`` by runs that are gone; return how many."""

    def claim(self, limit: int, now: datetime) -> list[Claim]:
        """Mark up to ``limit`` queued or due-deferred rows ``sending`` and return them."""

    def record(self, outcomes: Sequence[Outcome], now: datetime) -> Sequence[int]:
        """Store the decisions (and count hard bounces) in one transaction, each
        only on a row this run still holds; return the ids of rows it no longer held."""

    def release(self, ids: Sequence[int], now: datetime) -> None:
        """Put claimed rows that were not attempted back to ``queued``."""

    def renew(self, now: datetime) -> Sequence[int]:
        """Extend the lease of every row this run holds; return their ids."""


class Renderer(Protocol):
    """Turns claimed rows into message bytes (or skips)."""

    def render(self, claims: Sequence[Claim]) -> RenderedBatch:
        """Render one batch; rows whose subscriber left or edition is empty are skipped."""


class Transport(Protocol):
    """Hands one message to one recipient."""

    name: str

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Try once; never raises for delivery problems, returns the classified result
        (:attr:`ResultKind.UNKNOWN` when the outcome after the final dot is unknown)."""

    async def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Plain knobs of a run (built from ``[smtp]`` by the caller)."""

    envelope_from: str
    retry: RetryPolicy
    concurrency: int = 1
    batch_size: int = 200
    pause_after_failures: int = 10
    checkpoint_window: float = 0.005
    """Seconds a result may wait for others to share its commit."""
    lease: timedelta | None = None
    """The store's claim lease, renewed every third of it during a run (``None``: never)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Counters of a run so far (for progress bars and log lines)."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    connection_faults: int = 0
    recovered: int = 0
    unknown: int = 0
    """Rows whose outcome is unknown (no reply after the final dot)."""
    lost: int = 0
    """Results whose row another sender had taken meanwhile (not written, not sent)."""
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        """Rows that reached a state for this run."""
        return self.sent + self.deferred + self.failed + self.skipped + self.unknown + self.lost

    @property
    def rate(self) -> float:
        """Messages sent per second so far."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RunReport:
    """The end of a run: counters, and why it paused if it did."""

    progress: Progress
    paused: bool = False
    pause_reason: str = ""
    released: int = 0

    @property
    def ok(self) -> bool:
        """Nothing failed permanently or was lost, and the server was reachable."""
        return not self.paused and self.progress.failed == 0 and self.progress.lost == 0


ProgressCallback = Callable[[Progress], None]


class _Checkpointer:
    """Commits outcomes in groups, and each recorder waits for its commit.

    A group commits when every sender in flight has a result waiting (nothing
    more can join it), or ``window`` seconds after its first result.
    """

    def __init__(
        self, store: Store, clock: Clock, window: float, in_flight: Callable[[], int]
    ) -> None:
        self._store = store
        self._clock = clock
        self._window = window
        self._in_flight = in_flight
        self._pending: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._timer: asyncio.TimerHandle | None = None

    async def record(self, outcome: Outcome) -> bool:
        """Commit ``outcome`` with its group; whether its row was still held."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((outcome, future))
        if len(self._pending) >= self._in_flight():
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._flush)
        return await future

    def record_now(self, outcomes: Sequence[Outcome]) -> set[int]:
        """Commit ``outcomes`` at once; the ids of rows no longer held."""
        if not outcomes:
            return set()
        return set(self._store.record(outcomes, self._clock()))

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            lost = set(self._store.record([o for o, _ in batch], self._clock()))
        except Exception as e:  # the store failed: every waiter must learn it
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for outcome, future in batch:
            if not future.done():
                future.set_result(outcome.delivery_id not in lost)


_COUNTERS = tuple(f.name for f in fields(Progress) if f.name != "elapsed")
"""The tallies a run keeps (every :class:`Progress` field but ``elapsed``)."""

_COUNTER_OF = {
    DeliveryState.SENT: "sent",
    DeliveryState.DEFERRED: "deferred",
    DeliveryState.FAILED: "failed",
    DeliveryState.UNKNOWN: "unknown",
}
_PROGRESS_EVERY = 0.1
"""Seconds between two progress callbacks (the last state is always reported)."""


@dataclass
class _RunState:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    consecutive_faults: int = 0
    in_flight: int = 0
    paused: bool = False
    pause_reason: str = ""
    in_hand: set[int] = field(default_factory=set)
    error: Exception | None = None
    claimed_at: dict[int, float] = field(default_factory=dict)
    """Monotonic time each row in hand was claimed."""
    confirmed_at: float | None = None
    """Monotonic time the lease of every row in hand was last confirmed."""
    taken: set[int] = field(default_factory=set)
    """Rows in hand that another sender took: never sent by this run."""


class DeliveryEngine:
    """Sends every claimable delivery once; see the module docstring for the guarantees."""

    def __init__(
        self,
        store: Store,
        renderer: Renderer,
        transport: Transport,
        settings: EngineSettings,
        *,
        clock: Clock,
        monotonic: Callable[[], float] | None = None,
        rand: Rand = random.random,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.store = store
        self.renderer = renderer
        self.transport = transport
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic or time.monotonic
        self._rand = rand
        self._on_progress = on_progress
        self._stop: asyncio.Event | None = None
        self._state = _RunState()
        self._checkpoints = _Checkpointer(
            store, clock, settings.checkpoint_window, lambda: self._state.in_flight
        )
        self._started = 0.0
        self._reported = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(
        self, limit: int | None = None, *, stop: asyncio.Event | None = None
    ) -> RunReport:
        """Recover, then claim/render/send batches until nothing is due, ``limit``
        rows were claimed, the transport is unreachable (pause), or ``stop`` is set.

        On ``stop`` no new batch is claimed and no new SMTP transaction starts;
        transactions already in flight finish and are recorded, and every claimed
        row not yet sent goes back to ``queued`` (graceful shutdown).
        """
        self._stop = stop
        self._state = _RunState()
        self._loop = asyncio.get_running_loop()
        self._started = self._monotonic()
        self._bump(recovered=self.store.recover(self._clock()))
        queue: asyncio.Queue[Envelope | None] = asyncio.Queue()
        workers = [
            asyncio.create_task(self._worker(queue))
            for _ in range(max(1, self.settings.concurrency))
        ]
        with self._lease_keeper():
            try:
                await self._produce(queue, limit)
            finally:
                for _ in workers:
                    queue.put_nowait(None)
                await asyncio.gather(*workers, return_exceptions=True)
                await self.transport.close()
            released = self._release_unsent(queue)
        state = self._state
        self._report(force=True)
        if state.error is not None:
            raise state.error
        return RunReport(self._snapshot(), state.paused, state.pause_reason, released)

    def _lease_keeper(self) -> AbstractContextManager[object]:
        lease = self.settings.lease
        if lease is None:
            return nullcontext()
        return LeaseKeeper(self._renew_from_thread, lease)

    def _renew_from_thread(self) -> int:
        """The keeper's renewal: extend, then tell the loop which rows are still held."""
        started = self._monotonic()
        held = frozenset(self.store.renew(self._clock()))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._confirm, started, held)
        return len(held)

    def _confirm(self, started: float, held: frozenset[int]) -> None:
        """A renewal that began at ``started`` found ``held``: rows claimed before it
        and missing from it were taken by another sender (or are already done)."""
        state = self._state
        for row in state.in_hand - held:
            if state.claimed_at.get(row, started) < started:
                state.taken.add(row)
        if state.confirmed_at is None or started > state.confirmed_at:
            state.confirmed_at = started

    async def _check_lease(self) -> None:
        """Renew now when the lease was not confirmed for two thirds of its length
        (this process was frozen, or renewals failed): a row may have been taken."""
        lease, confirmed = self.settings.lease, self._state.confirmed_at
        if lease is None or confirmed is None:
            return
        if self._monotonic() - confirmed < lease.total_seconds() * 2 / 3:
            return
        started = self._monotonic()
        held = frozenset(await asyncio.to_thread(self.store.renew, self._clock()))
        self._confirm(started, held)

    async def _produce(self, queue: asyncio.Queue[Envelope | None], limit: int | None) -> None:
        claimed = 0
        while not self._halted() and (limit is None or claimed < limit):
            size = (
                self.settings.batch_size
                if limit is None
                else min(self.settings.batch_size, limit - claimed)
            )
            claims = self.store.claim(size, self._clock())
            if not claims:
                break
            claimed += len(claims)
            at = self._monotonic()
            self._state.in_hand.update(c.id for c in claims)
            self._state.claimed_at.update((c.id, at) for c in claims)
            if self._state.confirmed_at is None:
                self._state.confirmed_at = at
            self._bump(claimed=len(claims))
            self._enqueue(self.renderer.render(claims), queue)
            await self._drain_to(queue, low_water=max(1, self.settings.batch_size // 2))
        await self._drain_to(queue, low_water=0)
        await queue.join()

    def _enqueue(self, batch: RenderedBatch, queue: asyncio.Queue[Envelope | None]) -> None:
        if batch.skipped:
            outcomes = [
                Outcome(
                    s.claim.id,
                    s.claim.subscriber_id,
                    Decision(DeliveryState.SKIPPED, s.claim.attempts, reply=s.reason),
                )
                for s in batch.skipped
            ]
            lost = self._checkpoints.record_now(outcomes)
            self._state.in_hand.difference_update(s.claim.id for s in batch.skipped)
            self._bump(skipped=len(outcomes) - len(lost), lost=len(lost))
            if lost:
                log.warning("%d skipped deliveries were taken by another sender", len(lost))
        for envelope in batch.envelopes:
            queue.put_nowait(envelope)

    async def _drain_to(self, queue: asyncio.Queue[Envelope | None], low_water: int) -> None:
        while queue.qsize() > low_water and not self._halted():
            await asyncio.sleep(0.005)

    async def _worker(self, queue: asyncio.Queue[Envelope | None]) -> None:
        while True:
            envelope = await queue.get()
            if envelope is None:
                queue.task_done()
                return
            self._state.in_flight += 1
            try:
                if not self._halted():
                    await self._deliver(envelope, queue)
            except Exception as e:  # a store failure: stop cleanly, re-raise after
                self._state.error = self._state.error or e
                self._pause(f"stopped by an error: {e}")
            finally:
                self._state.in_flight -= 1
                queue.task_done()

    async def _deliver(self, envelope: Envelope, queue: asyncio.Queue[Envelope | None]) -> None:
        claim = envelope.claim
        await self._check_lease()
        if claim.id in self._state.taken:
            self._state.in_hand.discard(claim.id)
            self._bump(lost=1)
            log.error(
                "delivery %d was taken by another sender (this run's lease ran out): "
                "not sent by this run",
                claim.id,
            )
            return
        sender = envelope.envelope_from or self.settings.envelope_from
        result = await self.transport.send(sender, envelope.recipient, envelope.data)
        if result.kind is ResultKind.CONNECTION:
            self._connection_fault(result)
            if not self._halted():
                queue.put_nowait(envelope)
            return
        if result.kind is ResultKind.UNKNOWN:  # recorded below, and a fault of the server
            self._connection_fault(result)
        else:
            self._state.consecutive_faults = 0
        decision = decide(
            result,
            claim.attempts,
            self._clock(),
            self.settings.retry,
            self._rand,
            unknowns_before=claim.unknowns,
        )
        held = await self._checkpoints.record(
            Outcome(claim.id, claim.subscriber_id, decision, envelope.message_id)
        )
        self._state.in_hand.discard(claim.id)
        if not held:
            self._lost(claim, decision)
            return
        if decision.state is DeliveryState.UNKNOWN:
            log.warning("delivery %d: %s", claim.id, decision.reply)
        self._count(decision)

    def _lost(self, claim: Claim, decision: Decision) -> None:
        """A result for a row another sender took meanwhile: not written, not sent."""
        self._bump(lost=1)
        log.error(
            "delivery %d was taken by another sender while this run was sending it "
            "(its lease ran out); this run's result (%s %s) was not recorded",
            claim.id,
            decision.state.value,
            decision.code or "",
        )

    def _connection_fault(self, result: SendResult) -> None:
        state = self._state
        state.consecutive_faults += 1
        self._bump(connection_faults=1)
        if state.consecutive_faults >= self.settings.pause_after_failures:
            self._pause(
                f"{state.consecutive_faults} consecutive connection failures; last: {result.reply}"
            )

    def _halted(self) -> bool:
        """Paused by faults, or asked to stop: take no new work."""
        return self._state.paused or (self._stop is not None and self._stop.is_set())

    def _pause(self, reason: str) -> None:
        if not self._state.paused:
            self._state.paused = True
            self._state.pause_reason = reason
            log.error("delivery paused: %s", reason)

    def _count(self, decision: Decision) -> None:
        self._bump(**{_COUNTER_OF.get(decision.state, "skipped"): 1})

    def _release_unsent(self, queue: asyncio.Queue[Envelope | None]) -> int:
        ids = sorted(self._state.in_hand)
        if ids:
            self.store.release(ids, self._clock())
            log.info("released %d unsent deliveries back to the queue", len(ids))
        self._state.in_hand.clear()
        while not queue.empty():
            queue.get_nowait()
        return len(ids)

    def _bump(self, **counts: int) -> None:
        tally = self._state.counts
        for name, n in counts.items():
            tally[name] += n
        self._report()

    def _report(self, force: bool = False) -> None:
        """Call ``on_progress``, at most every ``_PROGRESS_EVERY`` seconds unless forced."""
        if self._on_progress is None:
            return
        now = self._monotonic()
        if force or now - self._reported >= _PROGRESS_EVERY:
            self._reported = now
            self._on_progress(self._snapshot())

    def _snapshot(self) -> Progress:
        return Progress(**self._state.counts, elapsed=self._monotonic() - self._started)
