"""When is work due? Pure deciders with an injected clock, and the APScheduler wiring.

The pure half answers, for a given ``now``:

* which (time zone, send time) groups of subscribers have editions due, for
  which local dates, and whether each is still in time (``[digest]
  max_lateness``) or must be recorded as skipped;
* when each group sends next;
* when a source should be fetched next (its interval, jitter, stored backoff);
* when a debounced feed rebuild should run.

The :class:`ServiceScheduler` half wires those decisions into an APScheduler
3.x ``AsyncIOScheduler``. It never does the work itself: it asks the store
what is due and calls a :class:`UseCases` implementation (built by
:mod:`kabarfeed.service`), running blocking calls in a thread executor.
Every job runs with ``max_instances=1`` and ``coalesce=True``, so the same
job never overlaps itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from kabarfeed.config import SourceConfig
from kabarfeed.digest.schedule import local_date_for, send_moment
from kabarfeed.models import Clock

log = logging.getLogger(__name__)

GROUP_STATE_PREFIX = "digest.group."
"""``state`` key prefix of a group's marker: the newest local date it handled."""


# ------------------------------------------------------------------ digest groups


@dataclass(frozen=True, slots=True, order=True)
class SendGroup:
    """Subscribers sharing a time zone and a local send time ("06:00")."""

    timezone: str
    send_at: str

    @property
    def key(self) -> str:
        """The group's ``state`` key (``digest.group.Asia/Jakarta@06:00``)."""
        return f"{GROUP_STATE_PREFIX}{self.timezone}@{self.send_at}"

    def __str__(self) -> str:
        return f"{self.send_at} {self.timezone}"


@dataclass(frozen=True, slots=True)
class GroupEdition:
    """One group's editions for one local date: send them, or record them skipped."""

    group: SendGroup
    local_date: date
    moment: datetime
    late_by: timedelta
    send: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """What to do for a group now; afterwards its marker becomes ``done_through``."""

    group: SendGroup
    editions: tuple[GroupEdition, ...] = ()
    done_through: date | None = None
    forgotten: int = 0


def latest_due_date(group: SendGroup, now: datetime) -> date:
    """The newest local date whose send moment is at or before ``now``."""
    today = local_date_for(group.timezone, now)
    if send_moment(group.timezone, group.send_at, today) <= now:
        return today
    return today - timedelta(days=1)


def plan_group(
    group: SendGroup,
    done_through: date | None,
    now: datetime,
    *,
    max_lateness: timedelta,
    catch_up_days: int = 7,
) -> GroupPlan:
    """Decide which editions of ``group`` are due at ``now``.

    ``done_through`` is the newest local date already handled (from the
    group's stored marker; ``None`` for a group never seen). Every local date
    after it whose send moment has passed is due: sent when at most
    ``max_lateness`` late, otherwise recorded as skipped. A group seen for the
    first time only considers its newest date, and a too-late first date is
    simply marked done (nobody was waiting for it). After a long outage only
    the last ``catch_up_days`` dates are recorded; older ones are counted in
    ``forgotten``. Calling again with the returned marker yields nothing, so
    restarts never schedule an edition twice.
    """
    newest = latest_due_date(group, now)
    if done_through is not None and done_through >= newest:
        return GroupPlan(group, (), done_through)
    first = newest if done_through is None else done_through + timedelta(days=1)
    oldest_kept = newest - timedelta(days=max(catch_up_days, 1) - 1)
    forgotten = max((oldest_kept - first).days, 0)
    dates = _date_range(max(first, oldest_kept), newest)
    editions = tuple(_edition(group, d, now, max_lateness) for d in dates)
    if done_through is None:
        editions = tuple(e for e in editions if e.send)
    return GroupPlan(group, editions, newest, forgotten)


def _date_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _edition(group: SendGroup, local_date: date, now: datetime, limit: timedelta) -> GroupEdition:
    moment = send_moment(group.timezone, group.send_at, local_date)
    late_by = now - moment
    if late_by <= limit:
        return GroupEdition(group, local_date, moment, late_by, True)
    reason = f"late by {human_duration(late_by)} (max_lateness {human_duration(limit)})"
    return GroupEdition(group, local_date, moment, late_by, False, reason)


def next_send_time(
    group: SendGroup, done_through: date | None, now: datetime, *, max_lateness: timedelta
) -> datetime:
    """The moment of the group's next edition, aware UTC.

    A moment at or before ``now`` means an edition is overdue (it is sent at
    the next check); otherwise it is the next local send time after ``now``.
    """
    plan = plan_group(group, done_through, now, max_lateness=max_lateness)
    pending = [e.moment for e in plan.editions if e.send]
    if pending:
        return pending[0]
    following = latest_due_date(group, now) + timedelta(days=1)
    return send_moment(group.timezone, group.send_at, following)


def group_trigger(group: SendGroup) -> CronTrigger:
    """A daily trigger at the group's local send time, in the group's zone."""
    hour, _, minute = group.send_at.partition(":")
    return CronTrigger(hour=int(hour), minute=int(minute), timezone=ZoneInfo(group.timezone))


# ------------------------------------------------------------------ sources and feeds


def source_first_run(
    interval: timedelta,
    next_fetch_at: datetime | None,
    now: datetime,
    *,
    jitter: float,
    rand: Callable[[], float],
) -> datetime:
    """When a source's job should first run after (re)scheduling.

    A stored ``next_fetch_at`` (regular schedule or failure backoff) is
    honoured, but never later than one interval from now plus jitter when no
    backoff applies; a source never fetched runs soon, spread over
    ``jitter * interval`` so a restart does not fetch everything at once.
    """
    if next_fetch_at is None:
        return now + timedelta(seconds=interval.total_seconds() * jitter * rand())
    return max(next_fetch_at, now)


def source_next_run(next_fetch_at: datetime | None, interval: timedelta, now: datetime) -> datetime:
    """When a source's job should run again after a run: the stored
    ``next_fetch_at`` (set by ingest: interval with jitter, or backoff), else one
    interval from now."""
    if next_fetch_at is None or next_fetch_at <= now:
        return now + interval
    return next_fetch_at


@dataclass(frozen=True, slots=True)
class PendingBuild:
    """A debounced feed rebuild: first change seen, and when the build runs."""

    first_change: datetime
    run_at: datetime


def debounce_build(
    pending: PendingBuild | None, now: datetime, *, delay: timedelta, max_wait: timedelta
) -> PendingBuild:
    """Push the rebuild back by ``delay`` after each change, but never beyond
    ``max_wait`` after the first one, so a burst of changes gives one build
    and a steady stream still builds regularly."""
    first = pending.first_change if pending else now
    return PendingBuild(first, min(now + delay, first + max(max_wait, delay)))


def human_duration(delta: timedelta) -> str:
    """``"25h"``, ``"6h"``, ``"1h30m"``, ``"45s"``: compact, for log lines."""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


# ------------------------------------------------------------------ wiring


class UseCases(Protocol):
    """What the scheduler asks and calls. Blocking methods run in a thread."""

    def sources(self) -> Sequence[SourceConfig]:
        """The enabled sources of the current config."""

    def source_next_fetch(self, name: str) -> datetime | None:
        """The stored ``next_fetch_at`` of a source (backoff or regular)."""

    def ingest(self, source: SourceConfig) -> bool:
        """Ingest one source if due; return whether articles changed."""

    def build_feeds(self) -> None:
        """Rebuild the feeds incrementally."""

    def groups(self) -> Sequence[SendGroup]:
        """The (zone, send time) groups of active subscribers."""

    def run_group(self, group: SendGroup, now: datetime) -> GroupPlan:
        """Queue (or record skipped) the group's due editions; advance its marker."""

    async def drain(self, stop: asyncio.Event) -> int:
        """Send what the outbox has due now; return once idle or ``stop`` is set."""

    def heartbeat(self) -> None:
        """Record that this process is alive."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Scheduler cadences (from ``[scheduler]`` and ``[feeds] build_delay``)."""

    jitter: float = 0.1
    build_delay: timedelta = timedelta(seconds=10)
    build_max_wait: timedelta = timedelta(minutes=2)
    push_delay: timedelta = timedelta(milliseconds=250)
    push_max_wait: timedelta = timedelta(seconds=1)
    group_check: timedelta = timedelta(minutes=1)
    drain_interval: timedelta = timedelta(seconds=30)
    heartbeat: timedelta = timedelta(seconds=15)


_JOB_DEFAULTS = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}


@dataclass
class InFlight:
    """Counts running jobs so shutdown can wait for them to finish."""

    count: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def enter(self) -> None:
        """A job started."""
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        """A job ended."""
        self.count -= 1
        if self.count <= 0:
            self.idle.set()


class ServiceScheduler:
    """Ingest, feed-build, digest and delivery jobs on one asyncio loop."""

    def __init__(
        self,
        cases: UseCases,
        clock: Clock,
        timing: Timing,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.cases = cases
        self.clock = clock
        self.timing = timing
        self.rand = rand
        self.stop = asyncio.Event()
        self.in_flight = InFlight()
        self._pending_build: PendingBuild | None = None
        self._pending_push: PendingBuild | None = None
        self._build_lock = asyncio.Lock()
        self._drain_wakeup = asyncio.Event()
        self._draining = False
        self._scheduled_sources: dict[str, SourceConfig] = {}
        self._scheduled_groups: set[SendGroup] = set()
        self._group_locks: dict[SendGroup, asyncio.Lock] = {}
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults=_JOB_DEFAULTS)

    # ---- lifecycle

    async def start(self) -> None:
        """Schedule every job and start the scheduler (call inside the loop)."""
        self._aps.start()
        await self.sync_sources()
        await self.sync_groups()
        self._add_interval("heartbeat", self._heartbeat, self.timing.heartbeat, run_now=True)
        self._add_interval("groups", self.sync_groups, self.timing.group_check)
        self._add_interval("drain", self._drain, self.timing.drain_interval, run_now=True)

    def retime(self, timing: Timing) -> None:
        """Apply new cadences (config reload) to the fixed jobs."""
        self.timing = timing
        for job_id, every in (
            ("heartbeat", timing.heartbeat),
            ("groups", timing.group_check),
            ("drain", timing.drain_interval),
        ):
            if self._aps.get_job(job_id):
                self._aps.reschedule_job(job_id, trigger=IntervalTrigger(seconds=_secs(every)))

    async def shutdown(self, timeout: float) -> bool:
        """Stop taking work, wait up to ``timeout`` s for running jobs; True if all ended."""
        self.stop.set()
        self._drain_wakeup.set()
        if self._aps.running:
            self._aps.pause()
        try:
            await asyncio.wait_for(self.in_flight.idle.wait(), timeout)
            finished = True
        except TimeoutError:
            finished = False
        if self._aps.running:
            self._aps.shutdown(wait=False)
        return finished

    def _add_interval(
        self,
        job_id: str,
        func: Callable[[], Awaitable[Any]],
        every: timedelta,
        *,
        run_now: bool = False,
    ) -> None:
        # APScheduler 3 adds a job *paused* when given next_run_time=None: omit it instead
        first = {"next_run_time": self.clock()} if run_now else {}
        self._aps.add_job(
            self._guarded(job_id, func),
            IntervalTrigger(seconds=_secs(every)),
            id=job_id,
            name=job_id,
            replace_existing=True,
            **first,
        )

    def _guarded(
        self, name: str, func: Callable[[], Awaitable[Any]]
    ) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            if self.stop.is_set():
                return
            self.in_flight.enter()
            try:
                await func()
            except Exception:
                log.exception("job %s failed", name, extra={"job": name})
            finally:
                self.in_flight.leave()

        return job

    # ---- sources

    async def sync_sources(self) -> list[str]:
        """Add, remove and reschedule source jobs to match the config; log each change."""
        wanted = {s.name: s for s in self.cases.sources()}
        changes: list[str] = []
        for name in sorted(set(self._scheduled_sources) - set(wanted)):
            self._remove_job(f"source:{name}")
            del self._scheduled_sources[name]
            changes.append(f"source {name} unscheduled")
        for name, source in sorted(wanted.items()):
            old = self._scheduled_sources.get(name)
            if old == source:
                continue
            await self._schedule_source(source)
            verb = "scheduled" if old is None else "rescheduled"
            changes.append(f"source {name} {verb} every {human_duration(source.interval)}")
        for change in changes:
            log.info(change)
        return changes

    async def _schedule_source(self, source: SourceConfig) -> None:
        stored = await asyncio.to_thread(self.cases.source_next_fetch, source.name)
        now = self.clock()
        first = source_first_run(
            source.interval, stored, now, jitter=self.timing.jitter, rand=self.rand
        )
        self._scheduled_sources[source.name] = source
        self._aps.add_job(
            self._guarded(f"source:{source.name}", functools.partial(self._ingest, source.name)),
            IntervalTrigger(
                seconds=_secs(source.interval),
                jitter=int(source.interval.total_seconds() * self.timing.jitter) or None,
            ),
            id=f"source:{source.name}",
            name=f"ingest {source.name}",
            replace_existing=True,
            next_run_time=first,
        )

    async def _ingest(self, name: str) -> None:
        source = self._scheduled_sources.get(name)
        if source is None:
            return
        changed = await asyncio.to_thread(self.cases.ingest, source)
        stored = await asyncio.to_thread(self.cases.source_next_fetch, name)
        job = self._aps.get_job(f"source:{name}")
        if job is not None and not self.stop.is_set():
            job.modify(next_run_time=source_next_run(stored, source.interval, self.clock()))
        if changed:
            self.request_build()

    # ---- feeds

    def request_build(self) -> None:
        """Ask for a debounced feed rebuild (after an ingest that changed articles)."""
        now = self.clock()
        self._pending_build = debounce_build(
            self._pending_build,
            now,
            delay=self.timing.build_delay,
            max_wait=self.timing.build_max_wait,
        )
        self._schedule_build()

    def request_push_build(self) -> None:
        """Ask for a prompt feed rebuild after a push through the API: the
        regular debounce is bypassed (``push_delay``, at most ``push_max_wait``
        after the first push of a burst), so a burst still builds once."""
        self._pending_push = debounce_build(
            self._pending_push,
            self.clock(),
            delay=self.timing.push_delay,
            max_wait=self.timing.push_max_wait,
        )
        self._schedule_build()

    def _schedule_build(self) -> None:
        pending = [p.run_at for p in (self._pending_build, self._pending_push) if p is not None]
        # A build coming due while one runs waits for it (the lock in _build)
        # instead of being skipped: what changed meanwhile is built right after.
        self._aps.add_job(
            self._guarded("feeds", self._build),
            DateTrigger(run_date=min(pending)),
            id="feeds",
            name="build feeds",
            replace_existing=True,
            max_instances=3,
        )

    async def _build(self) -> None:
        async with self._build_lock:
            self._pending_build = self._pending_push = None
            await asyncio.to_thread(self.cases.build_feeds)

    # ---- digests

    async def sync_groups(self) -> None:
        """Schedule a job per (zone, send time) group, then run any overdue group."""
        groups = set(await asyncio.to_thread(self.cases.groups))
        for gone in self._scheduled_groups - groups:
            self._remove_job(f"group:{gone.key}")
            log.info("digest group %s has no subscribers any more", gone)
        for group in sorted(groups - self._scheduled_groups):
            self._aps.add_job(
                self._guarded(f"group:{group.key}", functools.partial(self._run_group, group)),
                group_trigger(group),
                id=f"group:{group.key}",
                name=f"digest {group}",
                replace_existing=True,
            )
        self._scheduled_groups = groups
        for group in sorted(groups):
            if not self.stop.is_set():
                await self._run_group(group)

    async def _run_group(self, group: SendGroup) -> None:
        lock = self._group_locks.setdefault(group, asyncio.Lock())
        async with lock:
            plan = await asyncio.to_thread(self.cases.run_group, group, self.clock())
        if any(e.send for e in plan.editions):
            self.request_drain()

    def request_drain(self) -> None:
        """Drain the outbox now (editions were just queued), not at the next interval."""
        self._drain_wakeup.set()
        if not self._draining and self._aps.running and self._aps.get_job("drain"):
            self._aps.modify_job("drain", next_run_time=self.clock())

    # ---- delivery and heartbeat

    async def _drain(self) -> None:
        """Drain; go round again if editions were queued meanwhile."""
        self._draining = True
        try:
            while not self.stop.is_set():
                self._drain_wakeup.clear()
                await self.cases.drain(self.stop)
                if not self._drain_wakeup.is_set():
                    break
        finally:
            self._draining = False

    async def _heartbeat(self) -> None:
        await asyncio.to_thread(self.cases.heartbeat)

    def _remove_job(self, job_id: str) -> None:
        if self._aps.get_job(job_id):
            self._aps.remove_job(job_id)

    def jobs(self) -> list[tuple[str, datetime | None]]:
        """(job id, next run) of every scheduled job, for logs and tests."""
        return [(j.id, j.next_run_time) for j in self._aps.get_jobs()]


def _secs(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.05)


def groups_from_rows(rows: Iterable[tuple[str, str]]) -> list[SendGroup]:
    """Distinct (zone, send time) rows as sorted groups."""
    return sorted({SendGroup(tz, at) for tz, at in rows})
