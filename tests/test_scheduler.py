"""Scheduling decisions with an injected clock: no sleeping, no real time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from kabarfeed.config import SourceConfig
from kabarfeed.scheduler import (
    GroupPlan,
    SendGroup,
    ServiceScheduler,
    Timing,
    debounce_build,
    human_duration,
    latest_due_date,
    next_send_time,
    plan_group,
    source_first_run,
    source_next_run,
)
from kabarfeed.service import Runtime, Workers, describe_changes
from kabarfeed.status import active_group_list, group_marker, set_group_marker
from kabarfeed.store.schema import deliveries, subscribers

WIB = SendGroup("Asia/Jakarta", "06:00")
WITA = SendGroup("Asia/Makassar", "06:00")
WIT = SendGroup("Asia/Jayapura", "06:00")
SIX_H = timedelta(hours=6)
D17 = date(2025, 11, 17)
D16 = date(2025, 11, 16)


def utc(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


def due(group: SendGroup, done: date | None, now: datetime, **kw: object) -> GroupPlan:
    return plan_group(group, done, now, max_lateness=SIX_H, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ zones


@pytest.mark.parametrize(
    ("group", "moment"),
    [(WIT, utc(16, 21)), (WITA, utc(16, 22)), (WIB, utc(16, 23))],
)
def test_six_oclock_is_due_at_the_zone_offset(group: SendGroup, moment: datetime) -> None:
    before = due(group, D16, moment - timedelta(seconds=1))
    assert before.editions == ()
    at = due(group, D16, moment)
    assert [(e.local_date, e.moment, e.send) for e in at.editions] == [(D17, moment, True)]
    assert at.done_through == D17
    assert next_send_time(group, D16, moment - timedelta(minutes=5), max_lateness=SIX_H) == moment


def test_one_moment_three_zones() -> None:
    """At 22:30 UTC the WIT and WITA editions of the 17th are due, WIB's not yet."""
    now = utc(16, 22, 30)
    due_groups = [g for g in (WIB, WITA, WIT) if due(g, D16, now).editions]
    assert due_groups == [WITA, WIT]


def test_local_date_crosses_utc_midnight() -> None:
    # 15:30 UTC on the 16th is 00:30 on the 17th in Jayapura, 22:30 on the 16th in Jakarta.
    now = utc(16, 15, 30)
    assert latest_due_date(SendGroup("Asia/Jayapura", "00:00"), now) == D17
    assert latest_due_date(SendGroup("Asia/Jakarta", "23:00"), now) == date(2025, 11, 15)
    assert latest_due_date(SendGroup("Asia/Jakarta", "22:30"), now) == D16


def test_no_dst_in_indonesian_zones_across_the_year() -> None:
    for month in range(1, 13):
        plan = due(WITA, date(2025, month, 1), datetime(2025, month, 1, 22, tzinfo=UTC))
        assert [e.moment.hour for e in plan.editions] == [22]


def test_next_send_after_today_is_tomorrow() -> None:
    now = utc(16, 23, 30)
    assert next_send_time(WIB, D17, now, max_lateness=SIX_H) == utc(17, 23)


def test_overdue_group_shows_its_missed_moment() -> None:
    now = utc(17, 1)
    assert next_send_time(WIB, D16, now, max_lateness=SIX_H) == utc(16, 23)


# ------------------------------------------------------------------ lateness, catch-up


def test_max_lateness_boundary() -> None:
    on_time = due(WITA, D16, utc(16, 22) + SIX_H)
    assert on_time.editions[0].send
    late = due(WITA, D16, utc(16, 22) + SIX_H + timedelta(minutes=1))
    edition = late.editions[0]
    assert not edition.send
    assert edition.reason == "late by 6h1m (max_lateness 6h)"
    assert late.done_through == D17


def test_catch_up_after_downtime_sends_only_the_recent_edition() -> None:
    # Down from the 14th; back on the 17th at 23:00 UTC (07:00 WITA on the 18th).
    plan = due(WITA, date(2025, 11, 14), utc(17, 23))
    got = [(e.local_date.day, e.send) for e in plan.editions]
    assert got == [(15, False), (16, False), (17, False), (18, True)]
    assert all("late by" in e.reason for e in plan.editions if not e.send)
    assert plan.done_through == date(2025, 11, 18)


def test_long_outage_records_only_catch_up_days() -> None:
    plan = due(WITA, date(2025, 10, 1), utc(17, 23), catch_up_days=3)
    assert [e.local_date.day for e in plan.editions] == [16, 17, 18]
    assert plan.forgotten == (date(2025, 11, 16) - date(2025, 10, 2)).days


def test_new_group_sends_today_only_when_in_time() -> None:
    fresh = due(WITA, None, utc(16, 23))
    assert [(e.local_date, e.send) for e in fresh.editions] == [(D17, True)]
    too_late = due(WITA, None, utc(17, 5))
    assert too_late.editions == ()
    assert too_late.done_through == D17


def test_handled_group_is_never_planned_twice() -> None:
    now = utc(16, 22, 5)
    first = due(WITA, D16, now)
    assert len(first.editions) == 1
    for later in (now, now + timedelta(hours=1), utc(17, 21, 59)):
        assert due(WITA, first.done_through, later).editions == ()


# ------------------------------------------------------------------ sources and feeds


def test_source_first_run_honours_backoff_and_spreads_new_sources() -> None:
    now = utc(17, 0)
    backoff = now + timedelta(minutes=40)
    assert source_first_run(timedelta(minutes=15), backoff, now, jitter=0.1, rand=lambda: 0.5) == (
        backoff
    )
    past = now - timedelta(hours=1)
    assert source_first_run(timedelta(minutes=15), past, now, jitter=0.1, rand=lambda: 0.5) == now
    fresh = source_first_run(timedelta(minutes=10), None, now, jitter=0.1, rand=lambda: 0.5)
    assert fresh == now + timedelta(seconds=30)


def test_source_next_run() -> None:
    now = utc(17, 0)
    later = now + timedelta(minutes=7)
    assert source_next_run(later, timedelta(minutes=15), now) == later
    assert source_next_run(None, timedelta(minutes=15), now) == now + timedelta(minutes=15)
    assert source_next_run(now, timedelta(minutes=15), now) == now + timedelta(minutes=15)


def test_debounce_burst_gives_one_build_and_caps_the_wait() -> None:
    delay, cap = timedelta(seconds=10), timedelta(seconds=30)
    t0 = utc(17, 0)
    pending = debounce_build(None, t0, delay=delay, max_wait=cap)
    assert pending.run_at == t0 + delay
    for step in range(1, 6):  # a change every 5 s keeps pushing the build back ...
        pending = debounce_build(
            pending, t0 + timedelta(seconds=5 * step), delay=delay, max_wait=cap
        )
    assert pending.run_at == t0 + cap  # ... but never beyond max_wait after the first
    assert pending.first_change == t0


def test_human_duration() -> None:
    assert human_duration(timedelta(hours=25)) == "25h"
    assert human_duration(timedelta(minutes=90)) == "1h30m"
    assert human_duration(timedelta(seconds=45)) == "45s"


# ------------------------------------------------------------------ config changes


def test_describe_changes_names_keys_and_hides_secrets(make_config) -> None:  # type: ignore[no-untyped-def]
    old = make_config(
        '[[sources]]\nname = "a"\nkind = "directory"\npath = "a"\n'
        '[digest]\nsend_at = "06:00"\n[smtp]\npassword = "one"\n'
    )
    new = make_config(
        '[[sources]]\nname = "b"\nkind = "directory"\npath = "b"\n'
        '[digest]\nsend_at = "07:00"\n[smtp]\npassword = "two"\n'
    )
    lines = describe_changes(old, new)
    assert "digest.send_at: '06:00' -> '07:00'" in lines
    assert "smtp.password: changed" in lines
    assert "sources: b added" in lines and "sources: a removed" in lines
    assert not any("one" in line or "two" in line for line in lines)


# ------------------------------------------------------------------ markers in the store


def _subscriber(conn, sid: int, tz: str, send_at: str, status: str = "active") -> None:  # type: ignore[no-untyped-def]
    now = utc(1, 0)
    conn.execute(
        insert(subscribers).values(
            id=sid,
            email=f"s{sid}@example.id",
            email_key=f"s{sid}@example.id",
            token=f"tok{sid}",
            timezone=tz,
            send_at=send_at,
            language="id",
            status=status,
            created_at=now,
            updated_at=now,
        )
    )


def test_groups_and_markers_survive_restart(db) -> None:  # type: ignore[no-untyped-def]
    with db.begin() as conn:
        _subscriber(conn, 1, "Asia/Jakarta", "06:00")
        _subscriber(conn, 2, "Asia/Jakarta", "06:00")
        _subscriber(conn, 3, "Asia/Jayapura", "06:00")
        _subscriber(conn, 4, "Asia/Makassar", "07:00", status="unsubscribed")
    with db.connect() as conn:
        assert active_group_list(conn) == [WIB, WIT]
    with db.begin() as conn:
        set_group_marker(conn, WIB, D17, utc(16, 23))
        set_group_marker(conn, WIB, D16, utc(16, 23))  # never moves back
    with db.connect() as conn:  # a "restarted" process reads the marker back
        done = group_marker(conn, WIB)
    assert done == D17
    assert due(WIB, done, utc(16, 23, 30)).editions == ()


def test_late_editions_are_recorded_skipped_once(db, make_config) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    with db.begin() as conn:
        _subscriber(conn, 1, "Asia/Makassar", "06:00")
        _subscriber(conn, 2, "Asia/Makassar", "06:00")
        set_group_marker(conn, WITA, date(2025, 11, 15), utc(14, 22))
    now = utc(17, 5)  # 13:00 WITA on the 17th: the 16th and 17th are both too late
    workers = Workers(Runtime(config, db, lambda: now))
    plan = workers.run_group(WITA, now)
    assert [(e.local_date.day, e.send) for e in plan.editions] == [(16, False), (17, False)]
    again = workers.run_group(WITA, now + timedelta(minutes=1))
    assert again.editions == ()
    with db.connect() as conn:
        rows = conn.execute(
            select(
                deliveries.c.subscriber_id,
                deliveries.c.local_date,
                deliveries.c.state,
                deliveries.c.last_reply,
            ).order_by(deliveries.c.local_date, deliveries.c.subscriber_id)
        ).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (1, "2025-11-16", "skipped"),
        (2, "2025-11-16", "skipped"),
        (1, "2025-11-17", "skipped"),
        (2, "2025-11-17", "skipped"),
    ]
    assert all("max_lateness 6h" in r[3] for r in rows)


# ------------------------------------------------------------------ APScheduler wiring


class _Cases:
    """A fake of the use cases: records calls, does no I/O."""

    def __init__(self, sources: list[SourceConfig], groups: list[SendGroup]) -> None:
        self._sources = sources
        self._groups = groups
        self.ran: list[tuple[SendGroup, datetime]] = []
        self.next_fetch: dict[str, datetime] = {}

    def sources(self) -> Sequence[SourceConfig]:
        return self._sources

    def source_next_fetch(self, name: str) -> datetime | None:
        return self.next_fetch.get(name)

    def ingest(self, source: SourceConfig) -> bool:
        return False

    def build_feeds(self) -> None:
        pass

    def groups(self) -> Sequence[SendGroup]:
        return self._groups

    def run_group(self, group: SendGroup, now: datetime) -> GroupPlan:
        self.ran.append((group, now))
        return GroupPlan(group)

    async def drain(self, stop: asyncio.Event) -> int:
        return 0

    def heartbeat(self) -> None:
        pass


def _src(name: str, interval: str = "15m") -> SourceConfig:
    return SourceConfig.model_validate(
        {"name": name, "kind": "directory", "path": "x", "interval": interval}
    )


async def test_wiring_schedules_sources_and_groups_without_overlap() -> None:
    now = datetime.now(UTC)
    cases = _Cases([_src("a"), _src("b")], [WIB, WIT])
    cases.next_fetch["b"] = now + timedelta(hours=2)  # b is backing off
    sched = ServiceScheduler(cases, lambda: now, Timing(), rand=lambda: 0.0)
    await sched.start()
    try:
        jobs = dict(sched.jobs())
        assert {"source:a", "source:b", "heartbeat", "groups", "drain"} <= set(jobs)
        assert f"group:{WIB.key}" in jobs and f"group:{WIT.key}" in jobs
        assert jobs["source:b"] == cases.next_fetch["b"]  # stored backoff honoured
        assert {g for g, _ in cases.ran} == {WIB, WIT}  # overdue check at start
        for job in sched._aps.get_jobs():
            assert job.max_instances == 1 and job.coalesce
        cases._sources = [_src("a", "5m"), _src("c")]
        changes = await sched.sync_sources()
        assert changes == [
            "source b unscheduled",
            "source a rescheduled every 5m",
            "source c scheduled every 15m",
        ]
        assert "source:b" not in dict(sched.jobs())
        sched.request_build()
        sched.request_build()
        assert [j for j, _ in sched.jobs()].count("feeds") == 1
    finally:
        assert await sched.shutdown(timeout=1)


# ------------------------------------------------------------------ logging


def test_json_log_lines_carry_context_but_no_address_at_info() -> None:
    import json
    import logging

    from kabarfeed.logsetup import JsonFormatter, RedactAddresses

    def line(level: int) -> dict[str, object]:
        record = logging.LogRecord(
            "kabarfeed.x", level, __file__, 1, "sent to %s", ("budi@example.id",), None
        )
        record.subscriber_id = 7
        record.recipient = "budi@example.id"
        assert RedactAddresses().filter(record)
        out: dict[str, object] = json.loads(JsonFormatter().format(record))
        return out

    info = line(logging.INFO)
    assert info["message"] == "sent to ***@example.id"
    assert info["subscriber_id"] == 7 and info["recipient"] == "***@example.id"
    assert "budi@" in str(line(logging.DEBUG)["message"])
