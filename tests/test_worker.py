"""``kabarfeed worker``, the shared rate limit, scheduler leadership and
multi-node feed builds — the parts that run on both SQLite and PostgreSQL.

The pure arithmetic (GCRA slots, lease decisions) runs on injected clocks; the
database parts run on the real test database; the worker runs as a real
process against a real SMTP server. Cross-process behaviour on PostgreSQL is
in ``test_scale_pg.py``.
"""

from __future__ import annotations

import asyncio
import filecmp
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from deliveryhelpers import LOCAL_DATE, add_subscribers, states
from digest_support import CUTOFF, article, save
from kabarfeed.cli import main
from kabarfeed.delivery.engine import Claim
from kabarfeed.delivery.sharedrate import (
    STATE_KEY,
    DatabaseSlots,
    LocalSlots,
    Rates,
    SharedRateLimiter,
    reserve,
    shared_limiter,
)
from kabarfeed.delivery.worker import (
    LeaseKeeper,
    StoppableOutbox,
    WorkerRefused,
    WorkerReport,
    merge,
    renew_every,
    single_worker,
    sqlite_path,
)
from kabarfeed.feeds import cluster
from kabarfeed.leader import (
    LeaderOnly,
    LeaderRecord,
    LeaseLeadership,
    next_lease,
    poll_interval,
    read_leader,
)
from kabarfeed.scheduler import GroupPlan, SendGroup
from kabarfeed.status import gather_status
from kabarfeed.store import Database
from kabarfeed.store import deliveries as store
from kabarfeed.store.dialect import insert_ignoring_conflicts, lock_key
from kabarfeed.store.schema import deliveries, state
from smtpserver import ScriptedSMTPServer
from tests.faketime import FakeTime

T0 = 1_763_337_600.0  # 2025-11-17 00:00 UTC as epoch seconds


# ------------------------------------------------------------------ GCRA arithmetic


def test_reserve_spaces_slots_by_the_tightest_bucket() -> None:
    rates = Rates(per_second=10)
    tats, slots = reserve({}, rates.intervals, T0, 5)
    assert slots == pytest.approx([T0, T0 + 0.1, T0 + 0.2, T0 + 0.3, T0 + 0.4])
    assert tats["second"] == pytest.approx(T0 + 0.5)
    # a later reservation continues after the first block, even "earlier" in time
    _, more = reserve(tats, rates.intervals, T0 + 0.05, 2)
    assert more == pytest.approx([T0 + 0.5, T0 + 0.6])


def test_reserve_per_minute_and_per_second_together() -> None:
    rates = Rates(per_second=10, per_minute=120)  # per minute is tighter: 0.5 s apart
    _, slots = reserve({}, rates.intervals, T0, 4)
    assert slots == pytest.approx([T0, T0 + 0.5, T0 + 1.0, T0 + 1.5])
    assert rates.spacing == pytest.approx(0.5)


def test_reserve_after_idle_starts_now_without_burst() -> None:
    rates = Rates(per_second=2)
    tats, _ = reserve({}, rates.intervals, T0, 3)
    later = T0 + 3600
    _, slots = reserve(tats, rates.intervals, later, 3)
    assert slots == pytest.approx([later, later + 0.5, later + 1.0])


def test_reserve_drops_buckets_no_longer_configured() -> None:
    tats, _ = reserve({"minute": T0 + 99, "second": T0}, Rates(per_second=1).intervals, T0, 1)
    assert set(tats) == {"second"}


@pytest.mark.parametrize(
    ("rates", "block"),
    [
        (Rates(per_second=1000), 100),
        (Rates(per_second=50), 5),
        (Rates(per_second=5), 1),
        (Rates(per_minute=600), 1),
        (Rates(), 100),
    ],
)
def test_block_is_about_a_tenth_of_a_second(rates: Rates, block: int) -> None:
    assert rates.block() == block


async def _consume(limiter: SharedRateLimiter, fake: FakeTime, count: int) -> None:
    for _ in range(count):
        await limiter.acquire()
        fake.sends.append(fake.now)


def _max_in_window(times: Sequence[float], window: float) -> int:
    ordered = sorted(times)
    return max(sum(1 for t in ordered if s <= t < s + window - 1e-6) for s in ordered)


async def test_two_limiters_sharing_a_source_hold_the_total_rate() -> None:
    """Two "processes" with 4 connections each, one bucket: 10/s in total."""
    fake = FakeTime(T0)
    rates = Rates(per_second=10)
    source = LocalSlots(rates)
    limiters = [
        SharedRateLimiter(source, rates, clock=fake.clock, sleep=fake.sleep, offload=False)
        for _ in range(2)
    ]
    await fake.run(*(_consume(lim, fake, 10) for lim in limiters for _ in range(4)))
    assert len(fake.sends) == 80
    assert _max_in_window(fake.sends, 1.0) == 10
    assert max(fake.sends) - min(fake.sends) == pytest.approx(7.9)
    assert sum(lim.reserved for lim in limiters) == 80  # block of 1 at 10/s: none wasted


async def test_stale_slots_are_dropped_not_sent_late() -> None:
    fake = FakeTime(T0)
    rates = Rates(per_second=100)  # blocks of 10, grace 0.1 s
    limiter = SharedRateLimiter(
        LocalSlots(rates), rates, clock=fake.clock, sleep=fake.sleep, offload=False
    )
    await fake.run(_consume(limiter, fake, 3))
    fake.now += 60  # idle for a minute with 7 reserved slots left
    await fake.run(_consume(limiter, fake, 3))
    assert fake.sends[3:] == pytest.approx(
        [fake.sends[3], fake.sends[3] + 0.01, fake.sends[3] + 0.02]
    )
    assert fake.sends[3] >= T0 + 60
    assert limiter.reserved == 20


async def test_unlimited_shared_limiter_never_touches_the_database(db: Database) -> None:
    limiter = shared_limiter(db, 0, 0)
    await limiter.acquire()
    assert limiter.unlimited
    with db.connect() as conn:
        assert conn.execute(select(state.c.key).where(state.c.key == STATE_KEY)).first() is None


def test_database_slots_never_hand_out_a_slot_twice(db: Database) -> None:
    """Two sources (as two processes would hold) interleaving on one row."""
    rates = Rates(per_second=20, per_minute=600)  # 0.1 s apart
    a, b = DatabaseSlots(db, rates), DatabaseSlots(db, rates)
    slots: list[float] = []
    for i in range(6):
        slots += (a if i % 2 else b).take(3, T0 + i * 0.01)
    assert slots == sorted(slots)
    gaps = [y - x for x, y in itertools.pairwise(slots)]
    assert min(gaps) == pytest.approx(0.1)
    assert slots[-1] - slots[0] == pytest.approx(1.7)


# ------------------------------------------------------------------ the worker's parts


def _claimed(db: Database, worker: str, count: int, now: datetime) -> list[Claim]:
    save(db, [article(1)])
    ids = add_subscribers(db, count, CUTOFF)
    items = [store.NewDelivery(i, LOCAL_DATE, CUTOFF, CUTOFF, ("art0001",)) for i in ids]
    with db.begin() as conn:
        store.insert_editions(conn, items, now)
        return store.claim(conn, count, now, worker=worker, lease=timedelta(minutes=1))


def _leases(db: Database) -> dict[str | None, set[datetime | None]]:
    out: dict[str | None, set[datetime | None]] = {}
    with db.connect() as conn:
        for who, until in conn.execute(select(deliveries.c.claimed_by, deliveries.c.lease_until)):
            out.setdefault(who, set()).add(until)
    return out


def test_claim_takes_exactly_the_batch_size(db: Database, fixed_now: datetime) -> None:
    """Regression: on PostgreSQL ``IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``
    was re-run per outer row and claimed every queued row; now it is one batch."""
    ids = add_subscribers(db, 50, CUTOFF)
    with db.begin() as conn:
        store.insert_editions(
            conn, [store.NewDelivery(i, LOCAL_DATE, CUTOFF, CUTOFF, ()) for i in ids], fixed_now
        )
        got = store.claim(conn, 7, fixed_now, worker="w", lease=timedelta(minutes=1))
    assert len(got) == 7 and [c.id for c in got] == sorted(c.id for c in got)
    assert states(db) == {"sending": 7, "queued": 43}


def test_lease_keeper_renews_only_its_own_rows(db: Database, fixed_now: datetime) -> None:
    _claimed(db, "h:1:a", 3, fixed_now)
    with db.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == select(deliveries.c.id).limit(1).scalar_subquery())
            .values(claimed_by="h:2:b")
        )
    later = fixed_now + timedelta(minutes=5)
    outbox = store.SqlOutbox(db, worker="h:1:a", lease=timedelta(minutes=1), bounce_threshold=3)
    keeper = LeaseKeeper(lambda: len(outbox.renew(later)), timedelta(minutes=1))
    assert keeper.renew_once() == 2
    leases = _leases(db)
    assert leases["h:1:a"] == {later + timedelta(minutes=1)}
    assert leases["h:2:b"] == {fixed_now + timedelta(minutes=1)}
    assert renew_every(timedelta(minutes=1)) == 20


def test_recover_requeues_expired_and_dead_claims_only(db: Database, fixed_now: datetime) -> None:
    """Other hosts' rows come back after lease expiry; a dead local pid at once;
    a live claim with a running lease is never taken."""
    claims = _claimed(db, "elsewhere:1:x", 4, fixed_now)
    owners = ["elsewhere:1:x", "elsewhere:2:y", "here:3:z", "here:4:live"]
    leases = [-1, 30, 30, 30]  # seconds from "now" at recovery time
    now = fixed_now + timedelta(minutes=2)
    with db.begin() as conn:
        for c, who, secs in zip(claims, owners, leases, strict=True):
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == c.id)
                .values(claimed_by=who, lease_until=now + timedelta(seconds=secs))
            )
        n = store.recover(conn, now, is_dead=lambda w: w == "here:3:z")
    assert n == 2
    with db.connect() as conn:
        rows = {r.claimed_by: r.state for r in conn.execute(select(deliveries))}
    assert rows == {None: "queued", "elsewhere:2:y": "sending", "here:4:live": "sending"}


def test_stoppable_outbox_claims_nothing_after_stop(db: Database, fixed_now: datetime) -> None:
    ids = add_subscribers(db, 2, CUTOFF)
    with db.begin() as conn:
        store.insert_editions(
            conn, [store.NewDelivery(i, LOCAL_DATE, CUTOFF, CUTOFF, ()) for i in ids], fixed_now
        )
    stop = asyncio.Event()
    outbox = StoppableOutbox(
        store.SqlOutbox(db, worker="w", lease=timedelta(minutes=1), bounce_threshold=3), stop
    )
    assert len(outbox.claim(1, fixed_now)) == 1
    stop.set()
    assert outbox.claim(10, fixed_now) == []
    assert states(db) == {"sending": 1, "queued": 1}


def test_worker_outbox_recovers_dead_claims_between_batches(
    db: Database, fixed_now: datetime
) -> None:
    """Not only at the start of a run: every ``recover_every`` before a claim."""
    _claimed(db, "elsewhere:9:gone", 3, fixed_now)  # lease until now + 1 min
    outbox = StoppableOutbox(
        store.SqlOutbox(db, worker="here:1:w", lease=timedelta(minutes=1), bounce_threshold=3),
        asyncio.Event(),
        recover_every=timedelta(minutes=2),
    )
    assert outbox.claim(10, fixed_now) == []  # recovered nothing: the lease still runs
    assert outbox.claim(10, fixed_now + timedelta(seconds=61)) == []  # expired; not due to look
    later = fixed_now + timedelta(seconds=121)
    assert len(outbox.claim(10, later)) == 3
    assert outbox.recovered == 3
    assert _leases(db) == {"here:1:w": {later + timedelta(minutes=1)}}


def test_reports_add_and_merge() -> None:
    from kabarfeed.delivery.engine import Progress

    one = WorkerReport().add(Progress(claimed=3, sent=2, failed=1), "")
    two = WorkerReport().add(Progress(sent=5, recovered=2), "smtp down")
    total = merge([one, two])
    assert (total.sent, total.failed, total.recovered, total.paused) == (7, 1, 2, 1)
    assert total.last_pause == "smtp down"
    assert "sent 7" in total.summary()


# ------------------------------------------------------------------ SQLite: one worker


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:////var/k/kabarfeed.db") == Path("/var/k/kabarfeed.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://u@h/db") is None


def test_second_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kabarfeed.db'}"
    with single_worker(url):
        with pytest.raises(WorkerRefused) as refused, single_worker(url):
            pass
        assert f"pid {os.getpid()}" in refused.value.message
        assert "PostgreSQL" in str(refused.value.hint)
    with single_worker(url):  # released: the next one may run
        pass


def test_worker_cli_refuses_while_another_runs(db: Database, make_config, tmp_path: Path) -> None:
    make_config()
    if db.dialect != "sqlite":
        with single_worker(db.url):  # no-op on PostgreSQL: any number may run
            result = CliRunner().invoke(
                main, ["--config", str(tmp_path / "config.toml"), "worker", "--once"]
            )
        assert result.exit_code == 0, result.output
        return
    with single_worker(db.url):
        result = CliRunner().invoke(
            main, ["--config", str(tmp_path / "config.toml"), "worker", "--once"]
        )
    assert result.exit_code == 1
    assert "another kabarfeed worker" in result.output
    assert "SQLite allows one worker" in result.output


# ------------------------------------------------------------------ the worker process


def _queue(db: Database, count: int, now: datetime) -> list[str]:
    save(db, [article(1), article(2)])
    ids = add_subscribers(db, count, CUTOFF)
    items = [store.NewDelivery(i, LOCAL_DATE, CUTOFF, CUTOFF, ("art0001", "art0002")) for i in ids]
    with db.begin() as conn:
        store.insert_editions(conn, items, now)
    return [f"reader{i}@example.org" for i in range(count)]


def _worker(config: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "kabarfeed", "--config", str(config), "worker", *extra]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def test_worker_once_sends_everything_at_the_shared_rate(
    db: Database, make_config, tmp_path: Path, fixed_now: datetime
) -> None:
    emails = _queue(db, 30, fixed_now)
    with ScriptedSMTPServer() as server:
        make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
            "pool_size = 3\nrate_per_second = 200\n"
        )
        result = CliRunner().invoke(
            main, ["--config", str(tmp_path / "config.toml"), "worker", "--once"]
        )
    assert result.exit_code == 0, result.output
    assert "worker: sent 30" in result.output
    assert sorted(r for m in server.received for r in m.rcpt_tos) == sorted(emails)
    assert states(db) == {"sent": 30}
    with db.connect() as conn:  # the slots came from the shared bucket
        raw = conn.execute(select(state.c.value).where(state.c.key == STATE_KEY)).scalar()
    assert raw is not None and '"second"' in raw
    status = CliRunner().invoke(
        main, ["--config", str(tmp_path / "config.toml"), "status", "--json"]
    )
    report = json.loads(status.stdout)
    [worker] = report["workers"]
    assert worker["role"] == "worker" and worker["stopped"] is True
    assert worker["pid"] > 0 and worker["host"]
    assert report["workers_alive"] == 0


def test_sigterm_finishes_the_batch_in_hand_and_exits_cleanly(
    db: Database, make_config, tmp_path: Path, fixed_now: datetime
) -> None:
    """A worker paced at 40/s is stopped after 10 messages: it finishes the
    transactions in flight, releases the rest of its batch, exits 0; every row
    is sent (exactly what the server got) or queued again — none left ``sending``."""
    _queue(db, 120, fixed_now)
    with ScriptedSMTPServer() as server:
        make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
            "pool_size = 2\nbatch_size = 10\nrate_per_second = 40\n"
        )
        proc = _worker(tmp_path / "config.toml", tmp_path / "worker.log", "--poll", "0.2")
        try:
            deadline = time.monotonic() + 60
            while len(server.received) < 10 and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "worker.log").read_text()
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        received = len(server.received)
    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log
    assert "SIGTERM: finishing the messages in flight" in log
    counts = states(db)
    assert "sending" not in counts
    assert counts["sent"] == received < 120
    assert counts["queued"] == 120 - received
    assert received - 10 <= 10  # not the rest of the batch: released, not sent


# ------------------------------------------------------------------ leadership


def test_next_lease_decisions() -> None:
    now = datetime(2025, 11, 17, tzinfo=UTC)
    ttl = timedelta(seconds=15)
    first = next_lease(None, "a:1", now, ttl)
    assert first == LeaderRecord("a:1", now, now, now + ttl)
    assert next_lease(first, "b:2", now + timedelta(seconds=5), ttl) is None
    renewed = next_lease(first, "a:1", now + timedelta(seconds=5), ttl)
    assert renewed is not None and renewed.since == now
    assert renewed.until == now + timedelta(seconds=20)
    taken = next_lease(first, "b:2", now + ttl, ttl)
    assert taken is not None and taken.holder == "b:2" and taken.since == now + ttl
    gone = next_lease(first, "b:2", now + timedelta(seconds=1), ttl, holder_gone=True)
    assert gone is not None and gone.holder == "b:2"
    assert LeaderRecord.parse(first.to_json()) == first
    assert LeaderRecord.parse("nonsense") is None
    assert poll_interval(timedelta(seconds=15)) == timedelta(seconds=5)
    assert poll_interval(timedelta(seconds=1)) == timedelta(seconds=1)


def test_lease_leadership_one_leader_then_takeover(db: Database, fixed_now: datetime) -> None:
    ttl = timedelta(seconds=15)
    a = LeaseLeadership(db, ttl=ttl, me="host:1", is_dead=lambda _: False)
    b = LeaseLeadership(db, ttl=ttl, me="host:2", is_dead=lambda _: False)
    assert a.poll(fixed_now) and not b.poll(fixed_now)
    assert a.poll(fixed_now + timedelta(seconds=10))  # renewed
    assert not b.poll(fixed_now + timedelta(seconds=20))  # a's renewed lease still runs
    assert b.poll(fixed_now + timedelta(seconds=26))  # a missed its polls: taken over
    assert not a.poll(fixed_now + timedelta(seconds=27))
    b.release(fixed_now + timedelta(seconds=28))
    assert a.poll(fixed_now + timedelta(seconds=28))  # a release hands over at once
    with db.connect() as conn:
        leader = read_leader(conn)
    assert leader is not None and leader["holder"] == "host:1" and leader["pid"] == 1


def test_lease_of_a_dead_local_process_is_taken_at_once(db: Database, fixed_now: datetime) -> None:
    a = LeaseLeadership(db, ttl=timedelta(minutes=5), me="host:1")
    b = LeaseLeadership(db, ttl=timedelta(minutes=5), me="host:2", is_dead=lambda w: w == "host:1")
    assert a.poll(fixed_now)
    assert b.poll(fixed_now + timedelta(seconds=1))


def test_status_shows_the_scheduler_leader(db: Database, make_config, fixed_now: datetime) -> None:
    config = make_config()
    LeaseLeadership(db, ttl=timedelta(seconds=15), me="node-a:4242").poll(fixed_now)
    report = gather_status(config, db, fixed_now, config_path=config.path or Path())
    assert report.leader is not None and report.leader["host"] == "node-a"
    assert report.to_json()["leader"]["pid"] == 4242


class _Cases:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def sources(self) -> Sequence[Any]:
        return []

    def source_next_fetch(self, name: str) -> datetime | None:
        return None

    def ingest(self, source: Any) -> bool:
        self.calls.append("ingest")
        return True

    def build_feeds(self) -> None:
        self.calls.append("build")

    def groups(self) -> Sequence[SendGroup]:
        return [SendGroup("Asia/Makassar", "06:00")]

    def run_group(self, group: SendGroup, now: datetime) -> GroupPlan:
        self.calls.append("group")
        return GroupPlan(group, (), None, 7)

    async def drain(self, stop: asyncio.Event) -> int:
        self.calls.append("drain")
        return 1

    def heartbeat(self) -> None:
        self.calls.append("beat")


async def test_only_the_leader_ingests_builds_and_queues(fixed_now: datetime) -> None:
    cases, leading = _Cases(), [False]
    gated = LeaderOnly(cases, lambda: leading[0])
    group = SendGroup("Asia/Makassar", "06:00")
    assert gated.ingest(object()) is False  # type: ignore[arg-type]
    gated.build_feeds()
    assert gated.run_group(group, fixed_now) == GroupPlan(group)
    assert await gated.drain(asyncio.Event()) == 1
    gated.heartbeat()
    assert cases.calls == ["drain", "beat"]  # followers still deliver and beat
    leading[0] = True
    assert gated.ingest(object()) is True  # type: ignore[arg-type]
    gated.build_feeds()
    assert gated.run_group(group, fixed_now).forgotten == 7
    assert cases.calls[2:] == ["ingest", "build", "group"]


# ------------------------------------------------------------------ dialect helpers


def test_lock_keys_are_stable_signed_63_bit() -> None:
    key = lock_key("scheduler")
    assert key == lock_key("scheduler") != lock_key("feeds.build")
    assert 0 <= key < 2**63


def test_insert_ignoring_conflicts_keeps_the_first_row(db: Database, fixed_now: datetime) -> None:
    rows = [{"key": "k", "value": "first", "updated_at": fixed_now}]
    with db.begin() as conn:
        insert_ignoring_conflicts(conn, state, rows, ("key",))
        insert_ignoring_conflicts(conn, state, [{**rows[0], "value": "second"}], ("key",))
        insert_ignoring_conflicts(conn, state, [], ("key",))
        assert conn.execute(select(state.c.value).where(state.c.key == "k")).scalar() == "first"


# ------------------------------------------------------------------ feeds on two nodes


def _tree(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def _same_bytes(a: Path, b: Path) -> None:
    files = _tree(a)
    assert files == _tree(b) and files
    _match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert (mismatch, errors) == ([], [])


def test_two_nodes_build_identical_bytes_and_catch_up(
    db: Database, make_config, tmp_path: Path
) -> None:
    """Node B's folder is behind after node A built: B's next build brings it
    level (a full render, writing only what changed) with identical bytes."""
    config = make_config()
    node_a = config.model_copy(
        update={"feeds": config.feeds.model_copy(update={"output": tmp_path / "a"})}
    )
    node_b = config.model_copy(
        update={"feeds": config.feeds.model_copy(update={"output": tmp_path / "b"})}
    )
    save(db, [article(n) for n in (1, 2, 3)])
    cluster.build(node_a, db, lambda: CUTOFF)
    cluster.build(node_b, db, lambda: CUTOFF + timedelta(hours=3))  # another clock
    _same_bytes(tmp_path / "a", tmp_path / "b")
    save(db, [article(4, title="Berita susulan dari Balikpapan", at=CUTOFF + timedelta(hours=1))])
    cluster.build(node_a, db, lambda: CUTOFF + timedelta(hours=2))
    report = cluster.build(node_b, db, lambda: CUTOFF + timedelta(hours=2))
    assert report.full and report.written > 0
    _same_bytes(tmp_path / "a", tmp_path / "b")
    assert b"Berita susulan" in (tmp_path / "b" / "feeds" / "all.atom").read_bytes()
    again = cluster.build(node_b, db, lambda: CUTOFF + timedelta(hours=3))
    assert not again.full and again.written == 0  # level again: incremental, no writes


def test_folder_stamp_decision() -> None:
    assert not cluster.needs_full(None, None)  # nothing built anywhere yet
    assert cluster.needs_full(None, "m1")
    assert cluster.needs_full("m1", "m2")
    assert not cluster.needs_full("m2", "m2")
