"""Operations endpoints: ``/healthz`` (the database answers) and ``/metrics``
(Prometheus text exposition format 0.0.4).

Metrics are read from the store on each scrape: articles, subscribers by
status, deliveries by state, and the times of the last successful ingest,
feed build, sent message and service heartbeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from kabarfeed import __version__
from kabarfeed.bounces.stats import MailHealth, mail_health, metric_lines
from kabarfeed.errors import StoreError
from kabarfeed.models import DeliveryState, SubscriberStatus
from kabarfeed.status import HEARTBEAT_KEY, Heartbeat
from kabarfeed.store import Database
from kabarfeed.store.schema import articles, deliveries, feed_builds, sources, subscribers
from kabarfeed.store.state import read_state
from kabarfeed.web.security import same_token

log = logging.getLogger(__name__)

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The numbers ``/metrics`` reports."""

    articles: int
    subscribers: Mapping[str, int]
    deliveries: Mapping[str, int]
    last_times: Mapping[str, datetime | None] = field(default_factory=dict)
    mail: MailHealth | None = None


def _grouped(conn: Connection, column: object) -> dict[str, int]:
    query = select(column, func.count()).group_by(column)  # type: ignore[call-overload]
    return {str(key): int(n) for key, n in conn.execute(query)}


def _heartbeat(conn: Connection) -> datetime | None:
    row = read_state(conn, HEARTBEAT_KEY)
    beat = Heartbeat.from_row(row) if row else None
    return beat.beat if beat else None


def read_snapshot(conn: Connection) -> Snapshot:
    """Gather every metric in a few aggregate queries."""
    last_times = {
        "ingest": conn.execute(select(func.max(sources.c.last_success_at))).scalar(),
        "feed_build": conn.execute(select(func.max(feed_builds.c.built_at))).scalar(),
        "send": conn.execute(select(func.max(deliveries.c.sent_at))).scalar(),
        "heartbeat": _heartbeat(conn),
    }
    return Snapshot(
        articles=int(conn.execute(select(func.count()).select_from(articles)).scalar() or 0),
        subscribers=_grouped(conn, subscribers.c.status),
        deliveries=_grouped(conn, deliveries.c.state),
        last_times=last_times,
        mail=mail_health(conn, datetime.now(UTC)),
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_metrics(snap: Snapshot) -> str:
    """The Prometheus text for ``snap`` (every known status/state, zeros included)."""
    lines = [
        "# HELP kabarfeed_info Version of the running kabarfeed.",
        "# TYPE kabarfeed_info gauge",
        f'kabarfeed_info{{version="{_escape(__version__)}"}} 1',
        "# HELP kabarfeed_articles Articles in the store.",
        "# TYPE kabarfeed_articles gauge",
        f"kabarfeed_articles {snap.articles}",
        "# HELP kabarfeed_subscribers Subscribers by status.",
        "# TYPE kabarfeed_subscribers gauge",
    ]
    statuses = [s.value for s in SubscriberStatus]
    statuses += sorted(set(snap.subscribers) - set(statuses))
    lines += [
        f'kabarfeed_subscribers{{status="{_escape(s)}"}} {snap.subscribers.get(s, 0)}'
        for s in statuses
    ]
    lines += [
        "# HELP kabarfeed_deliveries Digest deliveries (editions) by state.",
        "# TYPE kabarfeed_deliveries gauge",
    ]
    states = [s.value for s in DeliveryState]
    states += sorted(set(snap.deliveries) - set(states))
    lines += [
        f'kabarfeed_deliveries{{state="{_escape(s)}"}} {snap.deliveries.get(s, 0)}' for s in states
    ]
    for name, moment in snap.last_times.items():
        metric = f"kabarfeed_last_{name}_timestamp_seconds"
        lines += [
            f"# HELP {metric} Unix time of the last {name.replace('_', ' ')} (0: never).",
            f"# TYPE {metric} gauge",
            f"{metric} {moment.timestamp() if moment else 0:.3f}",
        ]
    if snap.mail is not None:
        lines += metric_lines(snap.mail)
    return "\n".join(lines) + "\n"


def _ping(db: Database) -> None:
    with db.connect() as conn:
        conn.execute(text("SELECT 1"))


def _snapshot(db: Database) -> Snapshot:
    with db.connect() as conn:
        return read_snapshot(conn)


def ops_routes(db: Database, *, metrics_token: str = "") -> list[BaseRoute]:
    """``/healthz`` and ``/metrics`` (behind a bearer token when one is set)."""

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(_ping, db)
        except StoreError as e:
            log.warning("health check failed: %s", e)
            return _plain("database unavailable\n", 503)
        return _plain("ok\n", 200)

    async def metrics(request: Request) -> Response:
        if metrics_token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not same_token(given, metrics_token):
                return _plain("unauthorized\n", 401, {"WWW-Authenticate": "Bearer"})
        try:
            snap = await run_in_threadpool(_snapshot, db)
        except StoreError as e:
            log.warning("metrics unavailable: %s", e)
            return _plain("database unavailable\n", 503)
        return PlainTextResponse(
            format_metrics(snap), media_type=PROMETHEUS_TYPE, headers={"Cache-Control": "no-store"}
        )

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _plain(body: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return PlainTextResponse(
        body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )
