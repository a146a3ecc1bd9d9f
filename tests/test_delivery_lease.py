"""Two senders against one outbox: a live sender keeps its rows however slow the
relay, and a result whose row was taken by another sender is never counted as
sent.

The first test is the issue's report scaled down: a relay that answers each
final dot after a while, a lease shorter than the batch takes, and a second
``digest send`` started after the lease would have run out. Before the lease
keeper served every entry point, the second sender re-queued and re-sent the
first one's rows while the first still reported every message as sent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from deliveryhelpers import RawRenderer, add_subscribers, outbox, queue, settings, states
from digest_support import article, save
from kabarfeed import integrations
from kabarfeed.clock import system_clock
from kabarfeed.config import Config
from kabarfeed.delivery import run
from kabarfeed.delivery.engine import DeliveryEngine, Progress
from kabarfeed.delivery.enqueue import DueOptions, enqueue_due
from kabarfeed.delivery.outbox import SendResult
from kabarfeed.delivery.worker import DeliveryWorker, WorkerOptions
from kabarfeed.store import Database
from kabarfeed.store.schema import deliveries
from smtpserver import Faults, ScriptedSMTPServer

EDITIONS = 20
LEASE = 2.0
DOT_DELAY = 0.25  # a throttling relay: EDITIONS * DOT_DELAY is well over the lease
OPTIONS = DueOptions(date(2025, 11, 17), force=True)


def _wait_until(test: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not test():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def _digest_send(config: Config, db: Database) -> Progress:
    return run.send_due(config, db, system_clock, OPTIONS).report.progress


def _service_drain(config: Config, db: Database) -> Progress:
    outbox = _Counting()
    logging.getLogger("kabarfeed.integrations").addHandler(outbox)
    try:
        sent = asyncio.run(
            integrations.drain_outbox(config, db, system_clock, asyncio.Event(), run_id="svc")
        )
    finally:
        logging.getLogger("kabarfeed.integrations").removeHandler(outbox)
    return Progress(sent=sent, lost=outbox.lost)


def _worker_once(config: Config, db: Database) -> Progress:
    worker = DeliveryWorker(config, db, system_clock, WorkerOptions(once=True))
    report = asyncio.run(worker.run())
    return Progress(sent=report.sent, lost=report.lost)


class _Counting(logging.Handler):
    """Adds up the ``lost`` counts of the service drain's summary log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("outbox: sent"):
            self.lost += int(record.args[-1]) if isinstance(record.args, tuple) else 0


@pytest.mark.parametrize(
    "first_sender",
    [_digest_send, _service_drain, _worker_once],
    ids=["digest-send", "service-drain", "worker"],
)
def test_second_sender_does_not_take_a_slow_live_senders_rows(
    db: Database,
    make_config: Callable[..., Config],
    tmp_path: Path,
    first_sender: Callable[[Config, Database], Progress],
) -> None:
    """Whichever entry point sends first, it keeps its rows (each used to wire
    its own engine, and only the worker renewed its lease)."""
    save(db, [article(n) for n in (1, 2, 3)])
    add_subscribers(db, EDITIONS, datetime(2025, 11, 1, tzinfo=system_clock().tzinfo))
    with ScriptedSMTPServer(Faults(dot_delay=DOT_DELAY)) as server:
        config = make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
            f'pool_size = 1\nlease = "{LEASE}s"\n'
        )
        enqueue_due(config, db, OPTIONS, now=system_clock())  # the editions, built once
        first: list[Progress] = []
        sender = threading.Thread(target=lambda: first.append(first_sender(config, db)))
        sender.start()
        # the first sender claimed every row; once more than a lease has passed
        # since (half of them answered at DOT_DELAY each), a second one starts
        _wait_until(lambda: len(server.received) >= EDITIONS // 2, "half of the messages")
        second = run.send_due(config, db, system_clock, OPTIONS)
        sender.join(120)
    [one] = first
    got = server.recipients()
    assert sorted(got) == sorted(f"reader{i}@example.org" for i in range(EDITIONS))
    assert set(got.values()) == {1}, {a: n for a, n in got.items() if n > 1}  # no duplicate
    assert second.report.progress.claimed == 0 and second.report.progress.recovered == 0
    sent = one.sent + second.report.progress.sent
    assert sent == EDITIONS == states(db).get("sent")  # the ledger is what the server got
    assert one.lost == 0


class _StealingTransport:
    """Accepts every message; while sending ``victim`` another sender takes its row
    (as a recovery after an expired lease would)."""

    name = "stealing"

    def __init__(self, db: Database, victim: str) -> None:
        self.db = db
        self.victim = victim
        self.sent: list[str] = []

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        if recipient == self.victim:
            with self.db.begin() as conn:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.state == "sending")
                    .where(deliveries.c.subscriber_id == _subscriber(recipient))
                    .values(claimed_by="elsewhere:1:other")
                )
        self.sent.append(recipient)
        return SendResult.accepted()

    async def close(self) -> None:
        return None


def _subscriber(address: str) -> int:
    return int(address.removeprefix("reader").partition("@")[0]) + 1


def test_a_result_for_a_row_taken_meanwhile_is_lost_not_sent(
    db: Database, fixed_now: datetime
) -> None:
    ids = add_subscribers(db, 5, fixed_now)
    assert ids == [_subscriber(f"reader{i}@example.org") for i in range(5)]
    queue(db, ids, fixed_now)
    transport = _StealingTransport(db, "reader2@example.org")
    engine = DeliveryEngine(
        outbox(db), RawRenderer(db), transport, settings(concurrency=1), clock=lambda: fixed_now
    )
    report = asyncio.run(engine.run())
    assert len(transport.sent) == 5
    assert report.progress.sent == 4 and report.progress.lost == 1 and not report.ok
    assert states(db) == {"sent": 4, "sending": 1}  # the other sender's row is left alone


def test_a_sender_frozen_past_its_lease_does_not_resend_its_batch(
    db: Database, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """SIGSTOP ``digest send`` mid-batch for longer than its lease; a second sender
    takes and sends its rows; after SIGCONT the first drops the rows it lost
    instead of sending them again. Only its transactions in flight at the
    freeze can be duplicates (at most one per connection), and it reports them
    as lost, not sent."""
    editions, pool = 100, 2
    save(db, [article(n) for n in (1, 2, 3)])
    add_subscribers(db, editions, datetime(2025, 11, 1, tzinfo=system_clock().tzinfo))
    with ScriptedSMTPServer(Faults(dot_delay=0.05)) as server:
        config = make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
            f'pool_size = {pool}\nlease = "{LEASE}s"\n'
        )
        cmd = [sys.executable, "-m", "kabarfeed", "--config", str(tmp_path / "config.toml")]
        first = subprocess.Popen(
            [*cmd, "digest", "send", "--date", "2025-11-17", "--force"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until(lambda: len(server.received) >= 10, "the first sender to send")
            first.send_signal(signal.SIGSTOP)
            frozen_at = len(server.received)
            time.sleep(LEASE * 1.5)  # its lease runs out while it is frozen
            second = run.send_due(config, db, system_clock, OPTIONS)
        finally:
            first.send_signal(signal.SIGCONT)
        output, _ = first.communicate(timeout=120)
    text = output.decode()
    got = server.recipients()
    assert sorted(got) == sorted(f"reader{i}@example.org" for i in range(editions))
    duplicates = sum(n - 1 for n in got.values())
    print(f"frozen after {frozen_at} accepted; duplicates {duplicates} (pool {pool})")
    assert second.report.progress.recovered > 0 and frozen_at < editions
    assert duplicates <= pool, (duplicates, text)  # not the rest of its batch
    assert first.returncode == 1 and "lost to another sender" in text, text
    assert states(db) == {"sent": editions}
