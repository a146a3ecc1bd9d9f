"""``kabarfeed worker``: a delivery-only process that drains the outbox forever.

Any number of workers, on any machines, share one PostgreSQL outbox:

* each claims batches with ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
  LOCKED)`` (:func:`kabarfeed.store.deliveries.claim`), so two workers never
  get the same row, and stamps them with its name and a lease;
* it sends through the same :class:`~kabarfeed.delivery.runner.OutboxRunner`
  as ``digest send`` and the service: a lease keeper thread renews the lease
  of every row it holds every third of the lease, so a live worker's lease
  never runs out mid-batch however slowly the relay or the rate limit lets it
  send, and a result is written back only while the row is still its own;
* a worker that dies stops renewing: its rows go back to ``queued`` at the next
  claim round of any worker once the lease has run out — at once on the same
  host, where the dead pid is noticed (:func:`~kabarfeed.store.deliveries.recover`);
* the send rate is global: every worker takes its slots from the shared
  database bucket (:mod:`~kabarfeed.delivery.sharedrate`).

A crash can duplicate only the messages whose ``250`` arrived before their
checkpoint committed — at most one per open SMTP connection (``[smtp]
pool_size``) per killed process, and a duplicate carries the same
Message-ID. SIGTERM/SIGINT stop gracefully: no new batch is claimed and no new
SMTP transaction starts, transactions in flight finish and are recorded, the
claimed-but-unsent rows go back to ``queued`` at once, and the process exits
(a second signal, or ``shutdown_timeout`` later, exits at once: the rows in
hand are then recovered as after a crash).

On SQLite only one worker may run: a second one is refused by an exclusive OS
file lock next to the database file (``<db>.worker.lock``). A file lock rather
than a lease row because the kernel releases it the instant the holder dies —
no stale lease to wait out after a crash — and an SQLite database lives on one
machine's file system anyway.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import multiprocessing
import os
import queue as queue_module
import signal
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import make_url

from kabarfeed.config import Config
from kabarfeed.delivery.engine import Progress
from kabarfeed.delivery.lease import LeaseKeeper, renew_every
from kabarfeed.delivery.ratelimit import RateLimiter
from kabarfeed.delivery.runner import OutboxRunner, StoppableOutbox
from kabarfeed.errors import KabarfeedError, StoreError
from kabarfeed.models import Clock
from kabarfeed.store import Database, open_database
from kabarfeed.store.deliveries import worker_name
from kabarfeed.store.state import WORKER_HEARTBEAT_PREFIX, write_state

log = logging.getLogger(__name__)

__all__ = [
    "DeliveryWorker",
    "LeaseKeeper",
    "StoppableOutbox",
    "WorkerOptions",
    "WorkerRefused",
    "WorkerReport",
    "merge",
    "renew_every",
    "run_many",
    "run_one",
    "run_workers",
    "single_worker",
    "sqlite_path",
]

DEFAULT_POLL = timedelta(seconds=5)


class WorkerRefused(KabarfeedError):
    """Another worker already drains this (SQLite) database."""


# ------------------------------------------------------------------ plain values


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker loops: ``once`` drains what is due and exits; otherwise it
    polls every ``poll`` when idle (and after a pause) until stopped."""

    once: bool = False
    poll: timedelta = DEFAULT_POLL
    stop_timeout: timedelta = timedelta(seconds=25)


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """Totals of a worker's life."""

    rounds: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    recovered: int = 0
    paused: int = 0
    last_pause: str = ""
    unknown: int = 0
    lost: int = 0

    def add(self, p: Progress, pause: str) -> WorkerReport:
        """These totals plus one engine run's."""
        return WorkerReport(
            self.rounds + 1,
            self.sent + p.sent,
            self.deferred + p.deferred,
            self.failed + p.failed,
            self.skipped + p.skipped,
            self.recovered + p.recovered,
            self.paused + (1 if pause else 0),
            pause or self.last_pause,
            self.unknown + p.unknown,
            self.lost + p.lost,
        )

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"sent {self.sent}, deferred {self.deferred}, failed {self.failed}, "
            f"skipped {self.skipped}, unknown outcome {self.unknown}, "
            f"lost to another sender {self.lost}, re-queued from dead workers {self.recovered}"
        )


def merge(reports: Sequence[WorkerReport]) -> WorkerReport:
    """Sum the reports of several worker processes."""
    total = WorkerReport()
    for r in reports:
        total = WorkerReport(
            total.rounds + r.rounds,
            total.sent + r.sent,
            total.deferred + r.deferred,
            total.failed + r.failed,
            total.skipped + r.skipped,
            total.recovered + r.recovered,
            total.paused + r.paused,
            r.last_pause or total.last_pause,
            total.unknown + r.unknown,
            total.lost + r.lost,
        )
    return total


# ------------------------------------------------------------------ the loop


@dataclass
class DeliveryWorker:
    """One worker process's loop over the outbox."""

    config: Config
    db: Database
    clock: Clock
    options: WorkerOptions = WorkerOptions()
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = field(default_factory=lambda: worker_name(uuid.uuid4().hex[:8]))
    limiter: RateLimiter | None = None

    def __post_init__(self) -> None:
        self._runner = OutboxRunner(
            self.config, self.db, self.clock, self.name, self.stop, limiter=self.limiter
        )

    async def run(self) -> WorkerReport:
        """Drain until stopped (or, with ``once``, until nothing is due)."""
        total = WorkerReport()
        log.info("delivery worker %s started", self.name)
        started = self.clock()
        beating = asyncio.create_task(self._beat_until_stopped(started))
        try:
            while not self.stop.is_set():
                total = total.add(*await self._round())
                if self.options.once:
                    break
                await self._idle(self.options.poll.total_seconds())
        finally:
            beating.cancel()
            with suppress(asyncio.CancelledError):
                await beating
            await asyncio.to_thread(self._beat, started, total, stopped=True)
        log.info("delivery worker %s stopped: %s", self.name, total.summary())
        return total

    async def _beat_until_stopped(self, started: datetime) -> None:
        every = self.config.scheduler.heartbeat.total_seconds()
        while True:
            await asyncio.to_thread(self._beat, started, WorkerReport(), stopped=False)
            await asyncio.sleep(every)

    def _beat(self, started: datetime, total: WorkerReport, *, stopped: bool) -> None:
        """Record this worker's liveness for ``kabarfeed status``."""
        now = self.clock()
        row = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": started.isoformat(),
            "beat": now.isoformat(),
            "interval": self.config.scheduler.heartbeat.total_seconds(),
            "stopped": stopped,
            "role": "worker",
            "name": self.name,
            "sent": total.sent,
        }
        try:
            with self.db.begin() as conn:
                write_state(conn, WORKER_HEARTBEAT_PREFIX + self.name, row, now)
        except StoreError as e:  # liveness is best effort; delivery goes on
            log.warning("worker %s: heartbeat not recorded: %s", self.name, e)

    async def _round(self) -> tuple[Progress, str]:
        report = await self._runner.run()
        p = report.progress
        if p.claimed or p.recovered:
            log.info(
                "worker %s: sent %d, deferred %d, failed %d, skipped %d, unknown %d, lost %d, "
                "re-queued %d (%.0f msg/s)",
                self.name,
                p.sent,
                p.deferred,
                p.failed,
                p.skipped,
                p.unknown,
                p.lost,
                p.recovered,
                p.rate,
            )
        if report.paused:
            log.error("worker %s paused: %s", self.name, report.pause_reason)
        return p, report.pause_reason if report.paused else ""

    async def _idle(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)


# ------------------------------------------------------------------ processes


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_signals(
    stop: asyncio.Event, timeout: timedelta, signals: Sequence[int] = STOP_SIGNALS
) -> None:
    """SIGTERM/SIGINT set ``stop``; a second signal, or ``timeout`` after the
    first, exits at once (rows in hand are then recovered like after a crash)."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(sig).name)
            os._exit(1)
        log.info("%s: finishing the messages in flight", signal.Signals(sig).name)
        stop.set()
        loop.call_later(timeout.total_seconds(), _give_up)

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)


def _give_up() -> None:
    log.warning("shutdown timeout: exiting with messages in hand (they will be re-queued)")
    logging.shutdown()
    os._exit(1)


def run_one(
    config: Config,
    db: Database,
    clock: Clock,
    options: WorkerOptions,
    signals: Sequence[int] = STOP_SIGNALS,
) -> WorkerReport:
    """Run one worker in this process until stopped by a signal (or ``once``)."""

    async def main() -> WorkerReport:
        worker = DeliveryWorker(config, db, clock, options)
        install_stop_signals(worker.stop, options.stop_timeout, signals)
        return await worker.run()

    return asyncio.run(main())


def _child(config: Config, url: str, options: WorkerOptions, out: Any) -> None:
    """A worker process of ``--processes N`` (its own pool, limiter and loop)."""
    from kabarfeed.clock import system_clock

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into one SIGTERM
    db = open_database(url, upgrade=False)
    try:
        report = run_one(config, db, system_clock, options, (signal.SIGTERM,))
        out.put(report)
    finally:
        db.dispose()


def run_many(config: Config, url: str, processes: int, options: WorkerOptions) -> WorkerReport:
    """Run ``processes`` worker processes; SIGTERM/SIGINT are passed on to them.
    Without ``once``, a worker process that dies is started again."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    stopping = threading.Event()

    def start() -> Any:
        proc = ctx.Process(target=_child, args=(config, url, options, out), daemon=False)
        proc.start()
        return proc

    children = [start() for _ in range(processes)]

    def forward(_sig: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    reports = _supervise(children, start, stopping, options, out)
    return merge(reports)


def _supervise(
    children: list[Any], start: Any, stopping: threading.Event, options: WorkerOptions, out: Any
) -> list[WorkerReport]:
    reports: list[WorkerReport] = []
    while any(c.is_alive() for c in children) or (not options.once and not stopping.is_set()):
        for i, child in enumerate(children):
            child.join(timeout=0.5 / len(children))
            if child.is_alive() or stopping.is_set() or options.once:
                continue
            log.error("worker process %s exited (%s); starting another", child.pid, child.exitcode)
            children[i] = start()
        reports.extend(_drain(out))
    return reports + _drain(out)


def _drain(out: Any) -> list[WorkerReport]:
    found: list[WorkerReport] = []
    with suppress(queue_module.Empty):
        while True:
            found.append(out.get_nowait())
    return found


# ------------------------------------------------------------------ SQLite: one worker


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL (``None`` for other databases or memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


@contextmanager
def single_worker(url: str) -> Iterator[None]:
    """On SQLite, hold ``<db>.worker.lock`` (refusing when another worker has it);
    elsewhere do nothing."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    lock = path.with_name(path.name + ".worker.lock")
    handle = _open_lock(lock)
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise WorkerRefused(
                f"another kabarfeed worker (pid {holder}) is already delivering from {path}",
                hint="SQLite allows one worker; run several workers on PostgreSQL "
                "([storage] url = postgresql+psycopg://...)",
            ) from e
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_lock(path: Path) -> TextIO:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a+", encoding="utf-8")
    except OSError as e:
        raise StoreError(f"cannot use worker lock file {path}: {e.strerror or e}") from e


def run_workers(
    config: Config, db: Database, clock: Clock, *, processes: int, options: WorkerOptions
) -> WorkerReport:
    """``kabarfeed worker``: one worker here, or ``processes`` child processes."""
    with single_worker(db.url):
        if processes <= 1:
            return run_one(config, db, clock, options)
        db.dispose()
        return run_many(config, db.url, processes, options)
