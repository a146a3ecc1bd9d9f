"""Scale-out on PostgreSQL: many workers, one scheduler, every digest once.

Real processes against the test's PostgreSQL database and an SMTP sink in a
separate process (``smtpsink.py``) that records (recipient, Message-ID) of
every accepted message:

* 20,000 editions, 4 ``kabarfeed worker`` processes, one SIGKILLed midway:
  everybody gets the digest; duplicates only within the documented window
  (at most ``pool_size`` for the killed process, each the very same message);
  nothing is left ``sending`` once the others have reclaimed the dead rows;
* two ``kabarfeed run`` processes: one is the scheduler; SIGKILL it and the
  other takes over within the deadline, queues the next group and every
  edition of the day goes out once;
* two enqueuers racing on the same editions: one row per edition;
* the shared rate limit across three processes; the advisory-lock election
  when the leader's session dies; concurrent feed builds on two "nodes".

Every wait polls with a deadline; no fixed sleep is an assertion. Skipped with
a visible reason when ``KABARFEED_TEST_DATABASE_URL`` is unset (the SQLite
pass); ``scripts/test.sh`` runs them in its PostgreSQL pass.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from deliveryhelpers import LOCAL_DATE, add_subscribers, states
from digest_support import CUTOFF, article, save
from kabarfeed.config import Config
from kabarfeed.delivery.enqueue import enqueue_editions
from kabarfeed.leader import LEADER_KEY, AdvisoryLeadership
from kabarfeed.models import SubscriberStatus
from kabarfeed.store import Database, open_database
from kabarfeed.store import deliveries as store
from kabarfeed.store import subscribers as subscriber_store
from kabarfeed.store.schema import deliveries, state
from kabarfeed.subscribers import SubscriberDraft
from smtpsink import SinkProcess

PG_URL = os.environ.get("KABARFEED_TEST_DATABASE_URL", "")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not PG_URL, reason="PostgreSQL scale-out tests need KABARFEED_TEST_DATABASE_URL"
    ),
]

EDITIONS = 20_000
WORKERS = 4
POOL = 4
LEASE_SECONDS = 6


Launch = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def launch() -> Iterator[Launch]:
    """``launch(config, log, *args)`` runs ``kabarfeed``; whatever is still
    running when the test ends (a failed wait) is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def run(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "kabarfeed", "--config", str(config), *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait(
    what: str,
    done: Callable[[], bool],
    seconds: float,
    alive: list[subprocess.Popen[bytes]],
    logs: list[Path],
) -> None:
    """Poll ``done`` until true; fail with the logs if it times out or a process dies."""
    deadline = time.monotonic() + seconds
    while not done():
        dead = [p for p in alive if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            reason = f"process exited ({dead[0].returncode})" if dead else "timed out"
            pytest.fail(f"waiting for {what}: {reason}\n{tails}")
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [p.wait(timeout=60) for p in procs]


def _message_ids(rows: list[tuple[str, str]], duplicated: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rcpt, mid in rows:
        if rcpt in duplicated:
            out.setdefault(rcpt, set()).add(mid)
    return out


# ------------------------------------------------------------------ 4 workers, 1 killed


def test_four_workers_one_killed_every_edition_once(
    db: Database, make_config, tmp_path: Path, launch: Launch, fixed_now: datetime
) -> None:
    save(db, [article(1), article(2)])
    ids = add_subscribers(db, EDITIONS, CUTOFF)
    items = [store.NewDelivery(i, LOCAL_DATE, CUTOFF, CUTOFF, ("art0001", "art0002")) for i in ids]
    with db.begin() as conn:
        assert store.insert_editions(conn, items, fixed_now) == EDITIONS
    with SinkProcess(tmp_path) as sink:
        make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
            f"pool_size = {POOL}\nbatch_size = 200\nmax_per_connection = 1000\n"
            f'lease = "{LEASE_SECONDS}s"\n\n[logging]\nlevel = "INFO"\n'
        )
        config = tmp_path / "config.toml"
        logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
        procs = [launch(config, log, "worker", "--poll", "0.3") for log in logs]
        started = time.monotonic()
        _wait("a third sent", lambda: states(db).get("sent", 0) >= EDITIONS // 3, 120, procs, logs)
        victim = procs[1]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = states(db)
        survivors = [p for i, p in enumerate(procs) if i != 1]
        _wait("every row sent", lambda: states(db) == {"sent": EDITIONS}, 150, survivors, logs)
        elapsed = time.monotonic() - started
        codes = _stop(survivors)
        sink.stop()
        rows = sink.rows()
    assert codes == [0] * (WORKERS - 1), [log.read_text()[-2000:] for log in logs]
    got = Counter(r for r, _ in rows)
    assert set(got) == {f"reader{i}@example.org" for i in range(EDITIONS)}  # nobody lost
    duplicates = {r: n for r, n in got.items() if n > 1}
    print(f"{EDITIONS} in {elapsed:.1f} s; at the kill {killed_at}; duplicates {duplicates}")
    assert sum(n - 1 for n in duplicates.values()) <= POOL, duplicates
    for rcpt, mids in _message_ids(rows, set(duplicates)).items():
        assert len(mids) == 1, (rcpt, mids)  # a duplicate is the same message
    with db.connect() as conn:
        assert (
            conn.execute(select(func.count()).where(deliveries.c.claimed_by.is_not(None))).scalar()
            == 0
        )
    survivors_log = "".join(log.read_text() for i, log in enumerate(logs) if i != 1)
    requeued = sum(int(n) for n in re.findall(r"re-queued (\d+)", survivors_log))
    assert requeued > 0  # the dead worker's rows were reclaimed by the others


# ------------------------------------------------------------------ leader takeover


def _zone_and_times(now: datetime) -> tuple[str, str, str]:
    """A zone not within minutes of local midnight, and two past send times."""
    for zone in ("Asia/Makassar", "Asia/Jakarta", "Asia/Jayapura"):
        local = now.astimezone(ZoneInfo(zone))
        if local.hour or local.minute >= 5:
            first = (local - timedelta(minutes=3)).strftime("%H:%M")
            second = (local - timedelta(minutes=2)).strftime("%H:%M")
            return zone, first, second
    raise AssertionError("unreachable: three zones an hour apart")


def _add_group(db: Database, prefix: str, count: int, zone: str, send_at: str) -> list[str]:
    emails = [f"{prefix}{i}@example.org" for i in range(count)]
    now = datetime.now(UTC)
    with db.begin() as conn:
        for address in emails:
            draft = SubscriberDraft(
                address,
                regions=("balikpapan",),
                timezone=zone,
                send_at=send_at,
                language="id",
                status=SubscriberStatus.ACTIVE,
            )
            subscriber_store.add(conn, draft, now=now)
    return emails


def _leader_pid(db: Database) -> int | None:
    with db.connect() as conn:
        raw = conn.execute(select(state.c.value).where(state.c.key == LEADER_KEY)).scalar()
    return json.loads(raw).get("pid") if raw else None


def test_scheduler_fails_over_and_the_days_editions_go_out_once(
    db: Database, make_config, tmp_path: Path, launch: Launch
) -> None:
    now = datetime.now(UTC)
    zone, first_at, second_at = _zone_and_times(now)
    save(db, [article(1, at=now - timedelta(minutes=30))])
    first = _add_group(db, "pagi", 40, zone, first_at)
    with SinkProcess(tmp_path) as sink:
        make_config(
            f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
            'pool_size = 2\nlease = "6s"\n\n'
            '[scheduler]\nheartbeat = "1s"\ndigest_check = "1s"\ndrain_interval = "1s"\n'
            'watch = false\nshutdown_timeout = "5s"\n\n[logging]\nlevel = "INFO"\n'
        )
        config = tmp_path / "config.toml"
        logs = [tmp_path / "run-a.log", tmp_path / "run-b.log"]
        a = launch(config, logs[0], "run", "--port", "0")
        _wait("A leads", lambda: _leader_pid(db) == a.pid, 60, [a], logs)
        b = launch(config, logs[1], "run", "--port", "0")
        _wait(
            "B serves", lambda: "scheduler role: follower" in logs[1].read_text(), 60, [a, b], logs
        )
        _wait("first group sent", lambda: states(db) == {"sent": 40}, 60, [a, b], logs)
        a.send_signal(signal.SIGKILL)
        a.wait()
        killed = time.monotonic()
        _wait("B takes over", lambda: _leader_pid(db) == b.pid, 60, [b], logs)
        takeover = time.monotonic() - killed
        second = _add_group(db, "siang", 40, zone, second_at)
        _wait("second group sent", lambda: states(db) == {"sent": 80}, 60, [b], logs)
        assert _stop([b]) == [0], logs[1].read_text()[-3000:]
        sink.stop()
        got = sink.counts()
    print(f"takeover after {takeover:.1f} s")
    assert takeover < 60
    assert got == Counter(dict.fromkeys(first + second, 1))
    with db.connect() as conn:  # one row per edition, nothing built twice
        rows = conn.execute(select(deliveries.c.subscriber_id, deliveries.c.local_date)).all()
    assert len(rows) == len(set(rows)) == 80
    assert "this process is now the scheduler (leader)" in logs[1].read_text()


# ------------------------------------------------------------------ editions never twice


def test_racing_enqueuers_build_each_edition_once(
    db: Database, db_url: str, make_config, fixed_now: datetime
) -> None:
    """Two processes' worth of enqueueing (two pools, two threads, started
    together) over the same subscribers and date: one row per edition."""
    config: Config = make_config()
    save(db, [article(1), article(2)])
    ids = add_subscribers(db, 3000, CUTOFF)
    day = CUTOFF.date()
    pools = [open_database(db_url, upgrade=False) for _ in range(2)]
    barrier = threading.Barrier(2)
    made: list[int] = []

    def enqueue(pool: Database) -> None:
        barrier.wait()
        made.append(enqueue_editions(config, pool, ids, day, now=fixed_now))

    threads = [threading.Thread(target=enqueue, args=(p,)) for p in pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for p in pools:
        p.dispose()
    assert len(made) == 2
    with db.connect() as conn:
        rows = conn.execute(select(deliveries.c.subscriber_id, deliveries.c.local_date)).all()
    assert len(rows) == len(set(rows)) == 3000
    assert states(db) == {"queued": 3000}


def test_concurrent_insert_of_the_same_edition_waits_then_keeps_one(
    db: Database, fixed_now: datetime
) -> None:
    """The unique constraint as the final guard, with both transactions open at once."""
    ids = add_subscribers(db, 50, CUTOFF)
    items = [store.NewDelivery(i, LOCAL_DATE, CUTOFF, CUTOFF, ()) for i in ids]
    inserted = threading.Event()
    release = threading.Event()

    def first() -> None:
        with db.begin() as conn:
            store.insert_editions(conn, items, fixed_now)
            inserted.set()
            release.wait(30)

    t = threading.Thread(target=first)
    t.start()
    inserted.wait(30)
    second_done = threading.Event()

    def second() -> None:
        with db.begin() as conn:
            store.insert_editions(conn, items, fixed_now)  # blocks on the open conflict
        second_done.set()

    t2 = threading.Thread(target=second)
    t2.start()
    assert not second_done.wait(0.5)  # it waits for the first transaction
    release.set()
    t.join(30)
    t2.join(30)
    assert second_done.is_set()
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar() == 50


# ------------------------------------------------------------------ shared rate, election


RATE_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from kabarfeed.delivery.sharedrate import DatabaseSlots, Rates, SharedRateLimiter
    from kabarfeed.store import open_database

    url, count, start, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    db = open_database(url, upgrade=False)
    rates = Rates(per_second=40)
    limiter = SharedRateLimiter(DatabaseSlots(db, rates), rates)

    async def main():
        times = []
        async def conn(n):
            for _ in range(n):
                await limiter.acquire()
                times.append(time.time())
        while time.time() < start:
            await asyncio.sleep(0.005)
        await asyncio.gather(*(conn(count // 4) for _ in range(4)))
        return times

    json.dump(asyncio.run(main()), open(out, "w"))
    """
)


def test_rate_limit_holds_across_processes(db: Database, db_url: str, tmp_path: Path) -> None:
    """Three processes × 4 connections, 40/s configured: 40/s in total."""
    script = tmp_path / "child.py"
    script.write_text(RATE_CHILD)
    start = time.time() + 2.0
    outs = [tmp_path / f"times{i}.json" for i in range(3)]
    procs = [
        subprocess.Popen([sys.executable, str(script), db_url, "40", str(start), str(out)])
        for out in outs
    ]
    try:
        assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    times = sorted(t for out in outs for t in json.loads(out.read_text()))
    assert len(times) == 120
    span = times[-1] - times[0]
    assert span >= 119 / 40 - 0.05  # never faster than the configured total
    worst = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert worst <= 40 + 4, worst  # a window holds at most the rate plus one block
    assert span < 119 / 40 + 1.5  # and the rate is actually used


def test_advisory_leader_loses_the_role_with_its_session(db: Database, db_url: str) -> None:
    other_db = open_database(db_url, upgrade=False)
    try:
        a = AdvisoryLeadership(db, ttl=timedelta(seconds=15), me="node-a:1")
        b = AdvisoryLeadership(other_db, ttl=timedelta(seconds=15), me="node-b:2")
        now = datetime.now(UTC)
        assert a.poll(now) and not b.poll(now)
        assert a.poll(now)  # still ours
        assert a._conn is not None
        backend = a._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with other_db.connect() as conn:  # the leader's session dies
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})
            conn.commit()
        _until(lambda: b.poll(datetime.now(UTC)), 10)
        assert not a.poll(datetime.now(UTC))  # notices, steps down
        assert _leader_pid(db) == 2
        b.release(datetime.now(UTC))
        assert a.poll(datetime.now(UTC))  # an orderly release hands over at once
        a.release(datetime.now(UTC))
    finally:
        other_db.dispose()


def _until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


# ------------------------------------------------------------------ feeds on two nodes


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def test_concurrent_builds_on_two_nodes_write_identical_bytes(
    db: Database, make_config, tmp_path: Path, launch: Launch
) -> None:
    make_config()
    save(db, [article(n) for n in range(1, 30)])
    config = tmp_path / "config.toml"
    logs = [tmp_path / f"build{i}.log" for i in range(3)]
    targets = [tmp_path / "node-a", tmp_path / "node-b", tmp_path / "node-a"]
    procs = [
        launch(config, log, "build", "--output", str(target))
        for log, target in zip(logs, targets, strict=True)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0], [x.read_text() for x in logs]
    files = _files(tmp_path / "node-a")
    assert files and files == _files(tmp_path / "node-b")
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "node-a", tmp_path / "node-b", files, shallow=False
    )
    assert (mismatch, errors) == ([], [])
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "kabarfeed",
            "--config",
            str(config),
            "build",
            "--output",
            str(tmp_path / "node-b"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "0 feeds written" in again.stdout  # the shared state is consistent
