"""Helpers for the delivery tests: subscribers and queued rows written straight
into the real database, and a minimal renderer producing raw RFC 5322 bytes
(the engine is tested independently of the digest renderer)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from kabarfeed.delivery.engine import (
    Claim,
    DeliveryEngine,
    EngineSettings,
    Envelope,
    RenderedBatch,
    RunReport,
    Skip,
    Transport,
)
from kabarfeed.delivery.outbox import RetryPolicy
from kabarfeed.models import Clock, DeliveryState
from kabarfeed.store import Database
from kabarfeed.store import deliveries as store
from kabarfeed.store.schema import subscribers

LOCAL_DATE = "2025-11-17"


def add_subscribers(
    db: Database, count: int, now: datetime, *, prefix: str = "reader", status: str = "active"
) -> list[int]:
    """Insert ``count`` subscribers ``reader<i>@example.org``; return their ids."""
    rows = [
        {
            "email": f"{prefix}{i}@example.org",
            "email_key": f"{prefix}{i}@example.org",
            "name": f"Pembaca {i}",
            "token": f"tok-{prefix}-{i}",
            "timezone": "Asia/Makassar",
            "send_at": "06:00",
            "language": "id",
            "status": status,
            "bounce_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    with db.begin() as conn:
        conn.execute(insert(subscribers), rows)
        found = conn.execute(
            select(subscribers.c.id)
            .where(subscribers.c.email_key.like(f"{prefix}%"))
            .order_by(subscribers.c.id)
        )
        return [r.id for r in found]


def queue(db: Database, ids: Sequence[int], now: datetime, local_date: str = LOCAL_DATE) -> int:
    """One queued delivery per subscriber for ``local_date``."""
    items = [store.NewDelivery(i, local_date, now, now, ("a1", "a2")) for i in ids]
    with db.begin() as conn:
        return store.insert_editions(conn, items, now)


def rows(db: Database) -> list[store.DeliveryRow]:
    with db.connect() as conn:
        return store.list_deliveries(conn)


def states(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        return store.count_by_state(conn)


def email_of(db: Database) -> dict[int, tuple[str, str]]:
    with db.connect() as conn:
        return {
            r.id: (r.email, r.status)
            for r in conn.execute(
                select(subscribers.c.id, subscribers.c.email, subscribers.c.status)
            )
        }


class RawRenderer:
    """Claims to small but complete messages; skips subscribers not active."""

    def __init__(self, db: Database, size: int = 2000) -> None:
        self.db = db
        self.size = size
        self.rendered = 0

    def render(self, claims: Sequence[Claim]) -> RenderedBatch:
        people = email_of(self.db)
        envelopes: list[Envelope] = []
        skipped: list[Skip] = []
        for c in claims:
            email, status = people[c.subscriber_id]
            if status != "active":
                skipped.append(Skip(c, f"subscriber is {status}"))
                continue
            mid = f"<digest.{c.subscriber_id}.{c.local_date}@news.example.id>"
            envelopes.append(Envelope(c, email, mid, message_bytes(email, mid, self.size)))
        self.rendered += len(envelopes)
        return RenderedBatch(tuple(envelopes), tuple(skipped))


def message_bytes(recipient: str, message_id: str, size: int = 2000) -> bytes:
    head = (
        f"From: Nusantara Plus <redaksi@news.example.id>\r\nTo: {recipient}\r\n"
        f"Subject: Kabar pagi\r\nMessage-ID: {message_id}\r\n"
        "Date: Mon, 17 Nov 2025 06:00:00 +0800\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = "Berita hari ini dari Balikpapan dan sekitarnya.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode()


def settings(**overrides: object) -> EngineSettings:
    base: dict[str, object] = {
        "envelope_from": "bounces@news.example.id",
        "retry": RetryPolicy(3, timedelta(minutes=1), timedelta(hours=1)),
        "concurrency": 4,
        "batch_size": 50,
        "pause_after_failures": 5,
    }
    base.update(overrides)
    return EngineSettings(**base)  # type: ignore[arg-type]


def outbox(db: Database, run: str = "t1", bounce_threshold: int = 3) -> store.SqlOutbox:
    return store.SqlOutbox(
        db,
        worker=store.worker_name(run),
        lease=timedelta(minutes=10),
        bounce_threshold=bounce_threshold,
    )


def run_engine(
    db: Database,
    transport: Transport,
    clock: Clock,
    *,
    engine_settings: EngineSettings | None = None,
    run: str = "t1",
    bounce_threshold: int = 3,
    limit: int | None = None,
) -> RunReport:
    engine = DeliveryEngine(
        outbox(db, run, bounce_threshold),
        RawRenderer(db),
        transport,
        engine_settings or settings(),
        clock=clock,
        rand=lambda: 0.5,
    )
    return asyncio.run(engine.run(limit))


def by_state(db: Database, state: DeliveryState) -> list[store.DeliveryRow]:
    return [r for r in rows(db) if r.state is state]
