"""What ``kabarfeed status`` shows, and the ``state`` rows the ``run`` process keeps.

The run process writes three kinds of rows into the ``state`` table:

* ``service.heartbeat`` — pid, host, start time, last beat, beat interval, port;
* ``config.last_reload`` — time, ok, trigger, problems (or applied changes);
* ``digest.group.<zone>@<HH:MM>`` — the newest local date a send group handled.

:func:`gather_status` reads them together with source health, article and
outbox counts into one frozen :class:`StatusReport`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, case, func, select

from kabarfeed import __version__
from kabarfeed.bounces.stats import status_section
from kabarfeed.config import Config
from kabarfeed.digest.schedule import (
    WEEKDAYS,
    WEEKLY,
    local_date_for,
    next_edition_date,
    send_moment,
)
from kabarfeed.leader import read_leader
from kabarfeed.models import DeliveryState, Subscriber, SubscriberStatus
from kabarfeed.scheduler import SendGroup, groups_from_rows, next_send_time
from kabarfeed.store import Database
from kabarfeed.store import alerts as alert_store
from kabarfeed.store import sources as source_store
from kabarfeed.store import subscribers as subscriber_store
from kabarfeed.store.schema import articles, deliveries, feed_builds, subscribers
from kabarfeed.store.state import (
    WORKER_HEARTBEAT_PREFIX,
    read_prefixed,
    read_state,
    write_state,
)

HEARTBEAT_KEY = "service.heartbeat"
RELOAD_KEY = "config.last_reload"
ONCE_KEY = "service.last_once"
ALIVE_FACTOR = 3
"""A run process is alive while its last beat is within this many intervals."""


# ------------------------------------------------------------------ state rows


def group_marker(conn: Connection, group: SendGroup) -> date | None:
    """The newest local date ``group`` has handled, or ``None``."""
    row = read_state(conn, group.key)
    raw = row.get("done_through") if row else None
    return date.fromisoformat(raw) if isinstance(raw, str) else None


def set_group_marker(conn: Connection, group: SendGroup, done: date, now: datetime) -> None:
    """Advance ``group``'s marker to ``done`` (never moves it back)."""
    current = group_marker(conn, group)
    if current is None or done > current:
        write_state(conn, group.key, {"done_through": done.isoformat(), "at": now}, now)


def active_groups(conn: Connection) -> list[tuple[SendGroup, int]]:
    """(zone, send time) groups of active subscribers, with their sizes."""
    s = subscribers.c
    rows = conn.execute(
        select(s.timezone, s.send_at, func.count())
        .where(s.status == SubscriberStatus.ACTIVE.value)
        .group_by(s.timezone, s.send_at)
    ).all()
    return sorted(((SendGroup(tz, at), int(n)) for tz, at, n in rows), key=lambda g: g[0])


def active_group_list(conn: Connection) -> list[SendGroup]:
    """Just the groups (see :func:`active_groups`)."""
    return groups_from_rows((g.timezone, g.send_at) for g, _ in active_groups(conn))


# ------------------------------------------------------------------ the report


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The run process's liveness row."""

    pid: int
    host: str
    started: datetime
    beat: datetime
    interval: float
    port: int | None = None
    stopped: bool = False
    role: str = ""
    """``leader`` or ``follower`` (scheduler role of the process that beat last)."""

    def alive(self, now: datetime) -> bool:
        """Whether the process is running: not stopped, last beat recent enough."""
        fresh = now - self.beat <= timedelta(seconds=self.interval * ALIVE_FACTOR)
        return fresh and not self.stopped

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Heartbeat | None:
        """Parse the stored JSON; ``None`` when malformed."""
        try:
            return cls(
                int(row["pid"]),
                str(row["host"]),
                datetime.fromisoformat(row["started"]),
                datetime.fromisoformat(row["beat"]),
                float(row.get("interval", 15)),
                int(row["port"]) if row.get("port") is not None else None,
                bool(row.get("stopped", False)),
                str(row.get("role") or ""),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One send group: size, last handled date, next send time."""

    timezone: str
    send_at: str
    subscribers: int
    done_through: str | None
    next_send: datetime


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything ``kabarfeed status`` prints."""

    version: str
    now: datetime
    config_path: str
    config_valid: bool
    config_problems: tuple[str, ...] = ()
    last_reload: dict[str, Any] | None = None
    sources: tuple[dict[str, Any], ...] = ()
    articles_total: int = 0
    articles_last_24h: int = 0
    newest_article: datetime | None = None
    feeds_count: int = 0
    feeds_built_at: datetime | None = None
    outbox: dict[str, dict[str, int]] = field(default_factory=dict)
    groups: tuple[GroupStatus, ...] = ()
    heartbeat: Heartbeat | None = None
    last_once: dict[str, Any] | None = None
    leader: dict[str, Any] | None = None
    """The ``scheduler.leader`` row: which ``run`` process holds the scheduler role."""
    workers: tuple[Heartbeat, ...] = ()
    """``kabarfeed worker`` processes seen in the last day (alive or stopped)."""
    unknown: dict[str, int] = field(default_factory=dict)
    """Deliveries (any date) whose outcome is unknown — no reply after the final
    dot: ``retrying`` (a retry is scheduled) and ``for_admin`` (retries used up)."""
    mail: dict[str, Any] = field(default_factory=dict)
    """Sent, bounces, complaints and unsubscribes with rates and warnings
    (:func:`kabarfeed.bounces.stats.status_section`)."""
    frequencies: dict[str, int] = field(default_factory=dict)
    """Active subscribers per frequency (``daily``, ``weekly``)."""
    weekly: tuple[dict[str, Any], ...] = ()
    """The next weekly editions: zone, send time, weekday, readers, local date and moment."""
    breaking: dict[str, Any] = field(default_factory=dict)
    """Breaking alerts: readers (``breaking_only``, ``opted_in``), alert rows per
    state, how many quiet hours ``held`` and the ``next_release``."""

    @property
    def running(self) -> bool:
        """Whether a ``kabarfeed run`` process is alive."""
        return self.heartbeat is not None and self.heartbeat.alive(self.now)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``status --json``)."""
        data = asdict(self)
        data["running"] = self.running
        data["workers_alive"] = sum(1 for w in self.workers if w.alive(self.now))
        out: dict[str, Any] = _jsonable(data)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def gather_status(
    config: Config | None,
    db: Database,
    now: datetime,
    *,
    config_path: Path,
    problems: tuple[str, ...] = (),
) -> StatusReport:
    """Read the whole picture from ``db``. ``config`` is ``None`` when the file
    on disk does not validate (``problems`` then says why)."""
    with db.connect() as conn:
        beat_row = read_state(conn, HEARTBEAT_KEY)
        return StatusReport(
            version=__version__,
            now=now,
            config_path=str(config_path),
            config_valid=config is not None,
            config_problems=problems,
            last_reload=read_state(conn, RELOAD_KEY),
            sources=tuple(_sources(conn, config)),
            **_article_counts(conn, now),
            **_feed_counts(conn),
            outbox=_outbox(conn, config, now),
            unknown=_unknown(conn),
            groups=tuple(_groups(conn, config, now)),
            heartbeat=Heartbeat.from_row(beat_row) if beat_row else None,
            last_once=read_state(conn, ONCE_KEY),
            leader=read_leader(conn),
            workers=_workers(conn, now),
            mail=status_section(conn, now),
            frequencies=subscriber_store.frequency_counts(conn),
            weekly=tuple(_weekly(conn, now)),
            breaking=alert_store.status(conn, now),
        )


def _weekly(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """The next weekly editions per (zone, send time, weekday), soonest first."""
    out = []
    for zone, send_at, day, count in subscriber_store.weekly_groups(conn):
        probe = Subscriber(
            0, "", "", zone, send_at, "id", SubscriberStatus.ACTIVE, now,
            frequency=WEEKLY, weekly_day=day,
        )  # fmt: skip
        local = next_edition_date(probe, now)
        out.append(
            {
                "timezone": zone,
                "send_at": send_at,
                "weekday": WEEKDAYS[day],
                "subscribers": count,
                "local_date": local.isoformat(),
                "at": send_moment(zone, send_at, local),
            }
        )
    return sorted(out, key=lambda w: (w["at"], w["timezone"]))


def _workers(conn: Connection, now: datetime) -> tuple[Heartbeat, ...]:
    beats = (
        Heartbeat.from_row(row) for row in read_prefixed(conn, WORKER_HEARTBEAT_PREFIX).values()
    )
    recent = [b for b in beats if b is not None and now - b.beat <= timedelta(days=1)]
    return tuple(sorted(recent, key=lambda b: (b.host, b.pid)))


def _sources(conn: Connection, config: Config | None) -> list[dict[str, Any]]:
    stored = {s.name: s for s in source_store.list_sources(conn)}
    names = [s.name for s in config.sources] if config else sorted(stored)
    out = []
    for name in names:
        cfg = config.source(name) if config else None
        st = stored.get(name)
        health = "never fetched"
        if st and st.last_fetch_at:
            health = "failing" if st.error_count else ("warning" if st.last_error else "ok")
        if cfg is not None and not cfg.enabled:
            health = "disabled"
        out.append(
            {
                "name": name,
                "kind": cfg.kind if cfg else (st.kind if st else ""),
                "health": health,
                "last_success": st.last_success_at if st else None,
                "last_error": st.last_error if st else None,
                "last_error_at": st.last_error_at if st else None,
                "error_count": st.error_count if st else 0,
                "next_fetch": st.next_fetch_at if st else None,
            }
        )
    return out


def _article_counts(conn: Connection, now: datetime) -> dict[str, Any]:
    a = articles.c
    total, newest = conn.execute(select(func.count(), func.max(a.first_seen_at))).one()
    recent = conn.execute(
        select(func.count()).where(a.first_seen_at >= now - timedelta(hours=24))
    ).scalar()
    return {
        "articles_total": int(total or 0),
        "articles_last_24h": int(recent or 0),
        "newest_article": newest,
    }


def _feed_counts(conn: Connection) -> dict[str, Any]:
    count, built = conn.execute(select(func.count(), func.max(feed_builds.c.built_at))).one()
    return {"feeds_count": int(count or 0), "feeds_built_at": built}


def _outbox(conn: Connection, config: Config | None, now: datetime) -> dict[str, dict[str, int]]:
    zone = config.site.timezone if config else "UTC"
    today = local_date_for(zone, now)
    out: dict[str, dict[str, int]] = {}
    for day in (today, today - timedelta(days=1)):
        rows = conn.execute(
            select(deliveries.c.state, func.count())
            .where(deliveries.c.local_date == day.isoformat())
            .group_by(deliveries.c.state)
        ).all()
        out[day.isoformat()] = {str(st): int(n) for st, n in rows}
    return out


def _unknown(conn: Connection) -> dict[str, int]:
    d = deliveries.c
    parked = case((d.next_attempt_at.is_(None), "for_admin"), else_="retrying")
    rows = conn.execute(
        select(parked.label("kind"), func.count())
        .where(d.state == DeliveryState.UNKNOWN.value)
        .group_by(parked)
    ).all()
    counts = {"retrying": 0, "for_admin": 0}
    counts.update({str(kind): int(n) for kind, n in rows})
    return counts


def _groups(conn: Connection, config: Config | None, now: datetime) -> list[GroupStatus]:
    lateness = config.digest.max_lateness if config else timedelta(hours=6)
    out = []
    for group, size in active_groups(conn):
        done = group_marker(conn, group)
        out.append(
            GroupStatus(
                group.timezone,
                group.send_at,
                size,
                done.isoformat() if done else None,
                next_send_time(group, done, now, max_lateness=lateness),
            )
        )
    return out
