"""Mail health: sent, bounces, complaints and unsubscribes with their rates,
per edition (local date) and over the last 7 and 30 days, for ``kabarfeed
status`` and ``/metrics``. Warns past the thresholds mailbox providers use:
complaints above 0.1 %, bounces above 2 % of what was sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from kabarfeed.bounces.model import Attribution, EventKind
from kabarfeed.models import DeliveryState
from kabarfeed.store.schema import deliveries, mail_events, subscribers, suppressions
from kabarfeed.store.state import read_prefixed

POLL_STATE_PREFIX = "bounces.poll."
"""``state`` rows with the last poll of each bounce mailbox (``maildir``, ``imap``)."""
COMPLAINT_LIMIT = 0.001
BOUNCE_LIMIT = 0.02
WINDOWS = (7, 30)
EDITIONS = 7
_TRUSTED = [a.value for a in Attribution if a.trusted]
_COUNTED = (
    EventKind.HARD,
    EventKind.SOFT,
    EventKind.DELAYED,
    EventKind.COMPLAINT,
    EventKind.UNSUBSCRIBE,
)


@dataclass(frozen=True, slots=True)
class Rates:
    """One row of the table: a window (``7d``) or an edition (``2026-12-05``)."""

    label: str
    sent: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    delayed: int = 0
    """Delay notices (``Action: delayed``): counted, never acted on."""

    @property
    def bounce_rate(self) -> float:
        """(hard + soft) / sent; 0 when nothing was sent."""
        return (self.hard + self.soft) / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        """complaints / sent; 0 when nothing was sent."""
        return self.complaints / self.sent if self.sent else 0.0

    def warnings(self) -> list[str]:
        """What passes the providers' thresholds."""
        out = []
        if self.complaint_rate > COMPLAINT_LIMIT:
            out.append(
                f"{self.label}: complaint rate {self.complaint_rate:.2%} is above 0.1% "
                f"({self.complaints} of {self.sent} sent)"
            )
        if self.bounce_rate > BOUNCE_LIMIT:
            out.append(
                f"{self.label}: bounce rate {self.bounce_rate:.2%} is above 2% "
                f"({self.hard + self.soft} of {self.sent} sent)"
            )
        return out

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict with the rates."""
        return asdict(self) | {
            "bounce_rate": round(self.bounce_rate, 6),
            "complaint_rate": round(self.complaint_rate, 6),
        }


@dataclass(frozen=True, slots=True)
class MailHealth:
    """Windows, recent editions, warnings and the suppression list's size."""

    windows: tuple[Rates, ...] = ()
    editions: tuple[Rates, ...] = ()
    suppressed: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``status --json``)."""
        return {
            "windows": [w.as_json() for w in self.windows],
            "editions": [e.as_json() for e in self.editions],
            "suppressed": self.suppressed,
            "warnings": list(self.warnings),
        }


def _event_counts(conn: Connection, *conditions: Any) -> dict[str, int]:
    e = mail_events.c
    query = (
        select(e.kind, func.count())
        .where(e.attribution.in_(_TRUSTED), e.kind.in_([k.value for k in _COUNTED]), *conditions)
        .group_by(e.kind)
    )
    return {str(kind): int(n) for kind, n in conn.execute(query)}


def window(conn: Connection, now: datetime, days: int) -> Rates:
    """The last ``days`` days: editions sent, events received, unsubscribes made."""
    since = now - timedelta(days=days)
    d, s = deliveries.c, subscribers.c
    sent = conn.execute(
        select(func.count()).where(
            d.state == DeliveryState.SENT.value, d.sent_at >= since, d.sent_at <= now
        )
    ).scalar_one()
    events = _event_counts(conn, mail_events.c.received_at >= since)
    unsubscribed = conn.execute(
        select(func.count()).where(s.unsubscribed_at >= since, s.unsubscribed_at <= now)
    ).scalar_one()
    return Rates(
        f"{days}d",
        int(sent),
        events.get("hard", 0),
        events.get("soft", 0),
        events.get("complaint", 0),
        int(unsubscribed),
        events.get("delayed", 0),
    )


def editions(conn: Connection, limit: int = EDITIONS) -> list[Rates]:
    """The newest ``limit`` editions (local dates with sent digests); their
    events are those attributed to a delivery of that date."""
    d = deliveries.c
    dates = [
        str(day)
        for day in conn.execute(
            select(d.local_date)
            .where(d.state == DeliveryState.SENT.value)
            .group_by(d.local_date)
            .order_by(d.local_date.desc())
            .limit(limit)
        ).scalars()
    ]
    out: list[Rates] = []
    for day in dates:
        sent = conn.execute(
            select(func.count()).where(d.state == DeliveryState.SENT.value, d.local_date == day)
        ).scalar_one()
        events = _event_counts(conn, mail_events.c.local_date == day)
        out.append(
            Rates(
                day,
                int(sent),
                events.get("hard", 0),
                events.get("soft", 0),
                events.get("complaint", 0),
                events.get("unsubscribe", 0) + events.get("complaint", 0),
                events.get("delayed", 0),
            )
        )
    return out


def mail_health(conn: Connection, now: datetime) -> MailHealth:
    """Everything status and metrics show about the mail world's answers."""
    windows = tuple(window(conn, now, days) for days in WINDOWS)
    recent = tuple(editions(conn))
    suppressed = conn.execute(select(func.count()).select_from(suppressions)).scalar_one()
    warnings = tuple(w for rates in (*windows, *recent) for w in rates.warnings())
    return MailHealth(windows, recent, int(suppressed), warnings)


def metric_lines(health: MailHealth) -> list[str]:
    """Prometheus gauges: ``kabarfeed_mail_<what>{window|edition=…}``."""
    rows = [("window", r) for r in health.windows] + [("edition", r) for r in health.editions]
    lines: list[str] = []
    columns: tuple[tuple[str, str, Callable[[Rates], float]], ...] = (
        ("sent", "Digests sent", lambda r: r.sent),
        ("hard_bounces", "Hard bounces", lambda r: r.hard),
        ("soft_bounces", "Soft bounces", lambda r: r.soft),
        ("complaints", "Spam complaints", lambda r: r.complaints),
        ("unsubscribes", "Unsubscribes", lambda r: r.unsubscribes),
        ("delayed", "Delay notices (counted only)", lambda r: r.delayed),
        ("bounce_rate", "Bounces per digest sent", lambda r: round(r.bounce_rate, 6)),
        ("complaint_rate", "Complaints per digest sent", lambda r: round(r.complaint_rate, 6)),
    )
    for name, help_text, value in columns:
        metric = f"kabarfeed_mail_{name}"
        lines += [
            f"# HELP {metric} {help_text}, per window (last N days) and per recent edition.",
            f"# TYPE {metric} gauge",
        ]
        lines += [f'{metric}{{{key}="{r.label}"}} {value(r)}' for key, r in rows]
    lines += [
        "# HELP kabarfeed_mail_suppressed Addresses on the suppression list.",
        "# TYPE kabarfeed_mail_suppressed gauge",
        f"kabarfeed_mail_suppressed {health.suppressed}",
    ]
    return lines


def mail_polls(conn: Connection) -> dict[str, dict[str, Any]]:
    """The last poll of each bounce mailbox, by name."""
    found = read_prefixed(conn, POLL_STATE_PREFIX)
    return {key.removeprefix(POLL_STATE_PREFIX): value for key, value in found.items()}


def status_section(conn: Connection, now: datetime) -> dict[str, Any]:
    """The ``mail`` part of ``kabarfeed status``."""
    return mail_health(conn, now).as_json() | {"polls": mail_polls(conn)}
