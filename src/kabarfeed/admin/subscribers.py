"""Subscribers in the console: search, one subscriber's record (preferences,
consent, deliveries, bounces), unsubscribe, and a streamed CSV export.
Changes and exports are written to the audit log."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from sqlalchemy import select

from kabarfeed.admin import audit
from kabarfeed.admin.audit import Actor
from kabarfeed.config import Config
from kabarfeed.errors import NotFoundError
from kabarfeed.models import Subscriber, SubscriberStatus
from kabarfeed.store import Database
from kabarfeed.store import subscribers as store
from kabarfeed.store.schema import deliveries, metadata, subscriber_categories, subscriber_regions
from kabarfeed.store.schema import subscribers as table
from kabarfeed.subscribers import CSV_COLUMNS, CsvRow, csv_record, parse_csv, with_defaults

PAGE = 50
EXPORT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class SubscriberQuery:
    """The search form; empty fields do not filter. ``after_id`` pages on."""

    address: str = ""
    status: SubscriberStatus | None = None
    region: str = ""
    category: str = ""
    after_id: int = 0
    limit: int = PAGE

    def describe(self) -> dict[str, str]:
        """The filters in use (for the audit log)."""
        values = {
            "address": self.address,
            "status": self.status.value if self.status else "",
            "region": self.region,
            "category": self.category,
        }
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True, slots=True)
class DeliveryLine:
    """One edition of the subscriber's delivery history."""

    local_date: str
    state: str
    articles: int
    attempts: int
    sent_at: datetime | None
    last_code: int | None
    last_reply: str | None


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """Everything the subscriber page shows."""

    subscriber: Subscriber
    deliveries: tuple[DeliveryLine, ...]
    mail_events: tuple[dict[str, Any], ...]


def _ids(query: SubscriberQuery) -> Any:
    s = table.c
    ids = select(s.id).where(s.id > query.after_id)
    if query.address:
        ids = ids.where(s.email_key.contains(query.address.strip().casefold(), autoescape=True))
    if query.status is not None:
        ids = ids.where(s.status == query.status.value)
    if query.region:
        ids = ids.where(
            s.id.in_(
                select(subscriber_regions.c.subscriber_id).where(
                    subscriber_regions.c.region == query.region
                )
            )
        )
    if query.category:
        ids = ids.where(
            s.id.in_(
                select(subscriber_categories.c.subscriber_id).where(
                    subscriber_categories.c.category == query.category
                )
            )
        )
    return ids.order_by(s.id).limit(query.limit)


def search(db: Database, query: SubscriberQuery) -> list[Subscriber]:
    """One page of matching subscribers, by id."""
    with db.connect() as conn:
        found = list(conn.execute(_ids(query)).scalars())
        subs = (store.get(conn, sub_id) for sub_id in found)
        return [s for s in subs if s is not None]


def record(db: Database, subscriber_id: int) -> SubscriberRecord:
    """The subscriber page's data; :class:`NotFoundError` when unknown."""
    d = deliveries.c
    with db.connect() as conn:
        sub = store.get(conn, subscriber_id)
        if sub is None:
            raise NotFoundError(f"no subscriber #{subscriber_id}")
        rows = conn.execute(
            select(
                d.local_date,
                d.state,
                d.article_count,
                d.attempts,
                d.sent_at,
                d.last_code,
                d.last_reply,
            )
            .where(d.subscriber_id == subscriber_id)
            .order_by(d.local_date.desc())
            .limit(60)
        ).all()
        events: list[dict[str, Any]] = []
        mail_events = metadata.tables.get("mail_events")
        if mail_events is not None and "subscriber_id" in mail_events.c:
            found = conn.execute(
                select(mail_events)
                .where(mail_events.c.subscriber_id == subscriber_id)
                .order_by(mail_events.c.id.desc())
                .limit(60)
            ).mappings()
            events = [dict(e) for e in found]
    lines = tuple(DeliveryLine(*row) for row in rows)
    return SubscriberRecord(sub, lines, tuple(events))


def unsubscribe(db: Database, subscriber_id: int, actor: Actor, *, now: datetime) -> Subscriber:
    """Stop every future edition for the subscriber (idempotent), audited."""
    with db.begin() as conn:
        sub = store.get(conn, subscriber_id)
        if sub is None:
            raise NotFoundError(f"no subscriber #{subscriber_id}")
        if sub.status is SubscriberStatus.UNSUBSCRIBED:
            return sub
        done = store.set_status(conn, sub.id, SubscriberStatus.UNSUBSCRIBED, now=now)
        audit.record(
            conn,
            actor,
            "subscriber.unsubscribe",
            sub.email,
            before={"status": sub.status.value},
            after={"status": done.status.value},
            now=now,
        )
    return done


def note_resend(db: Database, sub: Subscriber, actor: Actor, *, now: datetime) -> None:
    """Audit a confirmation mail sent again from the console."""
    with db.begin() as conn:
        audit.record(conn, actor, "subscriber.resend_confirmation", sub.email, now=now)


def export_csv(
    db: Database, query: SubscriberQuery, actor: Actor, *, now: datetime
) -> Iterator[str]:
    """CSV text (the columns of ``kabarfeed subscribers export``, re-importable)
    of every subscriber matching ``query``, produced batch by batch so the
    response streams. The export itself is audited, with its filters."""
    with db.begin() as conn:
        audit.record(conn, actor, "subscribers.export", "csv", after=query.describe(), now=now)

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        after = 0
        needle = query.address.strip().casefold()
        while True:
            with db.connect() as conn:
                batch = store.list_subscribers(
                    conn,
                    status=query.status,
                    region=query.region or None,
                    category=query.category or None,
                    after_id=after,
                    limit=EXPORT_BATCH,
                )
            writer.writerows(csv_record(s) for s in batch if needle in s.email.casefold())
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(batch) < EXPORT_BATCH:
                return
            after = batch[-1].id

    return rows()


# -- CSV import with a preview ------------------------------------------------------------

MAX_IMPORT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """What importing one CSV row will do: ``add``, ``update`` (the fields
    that change), ``stop`` (unsubscribe/bounce) or ``unchanged``."""

    line: int
    email: str
    outcome: str
    changes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """The preview of an import: every row's outcome and every rejected row."""

    rows: tuple[PlannedRow, ...]
    problems: tuple[tuple[int, str], ...]

    def count(self, outcome: str) -> int:
        """Rows with ``outcome``."""
        return sum(1 for r in self.rows if r.outcome == outcome)


def _plan_row(existing: Subscriber | None, row: CsvRow) -> PlannedRow:
    draft = row.draft
    if existing is None:
        return PlannedRow(row.line, draft.email, "add")
    changes = store.preference_changes(existing, draft)
    fields = tuple(
        f"{f.name}: {_show(getattr(existing, f.name, None))} → {_show(getattr(changes, f.name))}"
        for f in (dataclass_fields(changes) if changes is not None else ())
        if f.name != "email" and getattr(changes, f.name) is not None
    )
    stops = draft.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)
    if stops and existing.status != draft.status:
        assert draft.status is not None
        status = f"status: {existing.status.value} → {draft.status.value}"
        return PlannedRow(row.line, existing.email, "stop", (*fields, status))
    if fields:
        return PlannedRow(row.line, existing.email, "update", fields)
    return PlannedRow(row.line, existing.email, "unchanged")


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(value) or "–"
    return "–" if value in (None, "") else str(value)


def plan_import(db: Database, config: Config, text: str, *, now: datetime) -> ImportPlan:
    """Parse ``text`` (the CSV of ``kabarfeed subscribers import``) and say
    what importing it would change; nothing is written."""
    parsed = parse_csv(text, config.taxonomy, now=now)
    with db.connect() as conn:
        planned = tuple(_plan_row(store.get_by_email(conn, r.draft.email), r) for r in parsed.rows)
    return ImportPlan(planned, tuple((p.line, p.message) for p in parsed.problems))


IMPORT_SLICE = 500
"""Rows per progress step of an import (each slice is its own transactions)."""


def count_rows(config: Config, text: str, *, now: datetime) -> int:
    """How many valid rows ``text`` has (to decide whether to import in the background)."""
    return len(parse_csv(text, config.taxonomy, now=now).rows)


def run_import(
    db: Database,
    config: Config,
    text: str,
    actor: Actor,
    *,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> store.ImportReport:
    """Import ``text`` exactly as ``kabarfeed subscribers import`` does, slice
    by slice (``progress(done, total)`` after each); audited."""
    parsed = parse_csv(text, config.taxonomy, now=now)
    rows = [(r, with_defaults(r.draft, config)) for r in parsed.rows]
    added = updated = unchanged = 0
    failed: list[tuple[int, str]] = []
    for start in range(0, len(rows), IMPORT_SLICE):
        part = store.import_rows(db, rows[start : start + IMPORT_SLICE], now=now)
        added, updated, unchanged = (
            added + part.added,
            updated + part.updated,
            unchanged + part.unchanged,
        )
        failed.extend(part.failed)
        if progress is not None:
            progress(min(start + IMPORT_SLICE, len(rows)), len(rows))
    report = store.ImportReport(added, updated, unchanged, tuple(failed))
    with db.begin() as conn:
        audit.record(
            conn,
            actor,
            "subscribers.import",
            "csv",
            after={
                "added": report.added,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "rejected": len(parsed.problems) + len(report.failed),
            },
            now=now,
        )
    return report
