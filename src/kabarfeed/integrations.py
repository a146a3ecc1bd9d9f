"""Thin adapters from the service to the feeds, web, digest and delivery modules.

The service joins the layers only through these functions, so each module's
public API is used in exactly one place. Every call takes the config in force
at that moment (a reload applies to the next call).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from kabarfeed.config import Config
from kabarfeed.digest.schedule import BREAKING, WEEKLY, send_moment
from kabarfeed.models import Clock, DeliveryState, SubscriberStatus
from kabarfeed.scheduler import SendGroup
from kabarfeed.store import Database
from kabarfeed.store.schema import subscribers

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ feeds and web


def build_feeds(config: Config, db: Database, clock: Clock) -> str:
    """Rebuild the feeds incrementally; return the build's one-line summary."""
    from kabarfeed.feeds import cluster

    report = cluster.build(config, db, clock)
    return str(report.summary())


def create_app(config: Config, db: Database, clock: Clock) -> Any:
    """The web app (feeds, pages, subscription endpoints) for ``config``."""
    try:
        from kabarfeed.web.app import create_app as make
    except ImportError:
        log.warning("web app module not available; serving the static feeds folder only")
        return _static_app(config.feeds.output)
    return make(config, db, clock=clock)


def _static_app(folder: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def health(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    folder.mkdir(parents=True, exist_ok=True)
    routes = [
        Route("/healthz", health),
        Mount("/", StaticFiles(directory=folder, html=True, check_dir=False)),
    ]
    return Starlette(routes=routes)


# ------------------------------------------------------------------ digests


def group_subscriber_ids(
    db: Database, group: SendGroup, local_date: date | None = None
) -> list[int]:
    """Ids of the active subscribers of ``group`` (with ``local_date``: those
    with an edition that day, so a weekly reader's other days get no row)."""
    s = subscribers.c
    query = select(s.id).where(
        s.status == SubscriberStatus.ACTIVE.value,
        s.timezone == group.timezone,
        s.send_at == group.send_at,
    )
    if local_date is not None:
        query = query.where(
            s.frequency != BREAKING,
            or_(s.frequency != WEEKLY, s.weekly_day == local_date.weekday()),
        )
    with db.connect() as conn:
        return list(conn.execute(query.order_by(s.id)).scalars())


def enqueue_group(
    config: Config, db: Database, clock: Clock, group: SendGroup, local_date: date, now: datetime
) -> int:
    """Build and queue the group's editions for ``local_date``; return how many are new."""
    from kabarfeed.delivery.enqueue import enqueue_editions

    ids = group_subscriber_ids(db, group, local_date)
    return enqueue_editions(config, db, ids, local_date, now=now)


def skip_group(
    config: Config, db: Database, group: SendGroup, local_date: date, now: datetime, reason: str
) -> int:
    """Record the group's editions for ``local_date`` as ``skipped`` (never sent)."""
    from kabarfeed.store import deliveries

    ids = group_subscriber_ids(db, group, local_date)
    cutoff = send_moment(group.timezone, group.send_at, local_date)
    with db.begin() as conn:
        previous = deliveries.newest_cutoffs(conn, ids)
        rows = [
            deliveries.NewDelivery(
                subscriber_id=sid,
                local_date=local_date.isoformat(),
                since=previous.get(sid, cutoff - config.digest.first_window),
                cutoff=cutoff,
                article_ids=(),
                state=DeliveryState.SKIPPED,
                reason=reason,
            )
            for sid in ids
        ]
        return deliveries.insert_editions(conn, rows, now)


def enqueue_welcomes(config: Config, db: Database, now: datetime) -> Any:
    """Record the promised welcome editions; a
    :class:`~kabarfeed.delivery.enqueue.WelcomeReport`."""
    from kabarfeed.delivery.enqueue import enqueue_welcomes as build

    return build(config, db, now=now)


# ------------------------------------------------------------------ delivery


async def drain_outbox(
    config: Config, db: Database, clock: Clock, stop: asyncio.Event, *, run_id: str
) -> int:
    """Send due deliveries batch by batch until none is due, the transport
    pauses, or ``stop`` is set (sends in flight finish; the rest of the batch
    goes back to the queue).
    Returns the number of messages sent. The ``[smtp]`` rate is shared through
    the database with every other process sending from it."""
    from kabarfeed.delivery import factory
    from kabarfeed.delivery.runner import OutboxRunner
    from kabarfeed.store.deliveries import worker_name

    runner = OutboxRunner(config, db, clock, worker_name(run_id), stop)
    batch = factory.engine_settings(config).batch_size
    sent = 0
    while not stop.is_set():
        report = await runner.run(limit=batch)
        sent += report.progress.sent
        if report.progress.done:
            log.info(
                "outbox: sent %d, deferred %d, failed %d, skipped %d, unknown %d, lost %d",
                report.progress.sent,
                report.progress.deferred,
                report.progress.failed,
                report.progress.skipped,
                report.progress.unknown,
                report.progress.lost,
            )
        if report.paused or report.progress.claimed == 0:
            break
    return sent
