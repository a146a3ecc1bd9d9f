"""Subscriber queries. Every write runs inside the caller's transaction
(``db.begin()``), so a subscriber and its region/category rows change together."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from kabarfeed.errors import InputError, StoreError
from kabarfeed.models import Article, Consent, Subscriber, SubscriberStatus, Taxonomy
from kabarfeed.store.articles import load_articles
from kabarfeed.store.db import Database
from kabarfeed.store.schema import (
    deliveries,
    subscriber_categories,
    subscriber_regions,
    subscribers,
)
from kabarfeed.subscribers import CsvRow, SubscriberDraft, email_key, new_token

_CHUNK = 400


# -- reading -----------------------------------------------------------------------


def _consent(r: Row[Any]) -> Consent | None:
    if r.consent_at is None:
        return None
    return Consent(
        r.consent_at, r.consent_method or "", r.consent_ip, r.consent_user_agent, r.consent_version
    )


def _subscriber(r: Row[Any], regions: Sequence[str], categories: Sequence[str]) -> Subscriber:
    return Subscriber(
        id=r.id,
        email=r.email,
        token=r.token,
        timezone=r.timezone,
        send_at=r.send_at,
        language=r.language,
        status=SubscriberStatus(r.status),
        created_at=r.created_at,
        name=r.name,
        regions=tuple(regions),
        categories=tuple(categories),
        confirmed_at=r.confirmed_at,
        unsubscribed_at=r.unsubscribed_at,
        bounce_count=r.bounce_count or 0,
        consent=_consent(r),
        frequency=r.frequency or "daily",
        weekly_day=r.weekly_day or 0,
        frequency_since=r.frequency_since,
        breaking_alerts=bool(r.breaking_alerts),
    )


def _hydrate(conn: Connection, rows: Sequence[Row[Any]]) -> list[Subscriber]:
    ids = [r.id for r in rows]
    regions: dict[int, list[str]] = {i: [] for i in ids}
    categories: dict[int, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(subscriber_regions).where(subscriber_regions.c.subscriber_id.in_(chunk))
        for link in conn.execute(query.order_by(subscriber_regions.c.position)):
            regions[link.subscriber_id].append(link.region)
        query = select(subscriber_categories).where(
            subscriber_categories.c.subscriber_id.in_(chunk)
        )
        for link in conn.execute(query.order_by(subscriber_categories.c.position)):
            categories[link.subscriber_id].append(link.category)
    return [_subscriber(r, regions[r.id], categories[r.id]) for r in rows]


def _one(conn: Connection, condition: Any) -> Subscriber | None:
    row = conn.execute(select(subscribers).where(condition)).first()
    return _hydrate(conn, [row])[0] if row is not None else None


def get(conn: Connection, subscriber_id: int) -> Subscriber | None:
    """The subscriber with ``subscriber_id``, or ``None``."""
    return _one(conn, subscribers.c.id == subscriber_id)


def get_by_email(conn: Connection, email: str) -> Subscriber | None:
    """The subscriber with this address (case-insensitive), or ``None``."""
    return _one(conn, subscribers.c.email_key == email_key(email.strip()))


def get_by_token(conn: Connection, token: str) -> Subscriber | None:
    """The subscriber whose link token is ``token``, or ``None``."""
    return _one(conn, subscribers.c.token == token)


def list_subscribers(
    conn: Connection,
    *,
    status: SubscriberStatus | None = None,
    region: str | None = None,
    category: str | None = None,
    after_id: int = 0,
    limit: int | None = None,
) -> list[Subscriber]:
    """Subscribers by id, optionally filtered; ``after_id``/``limit`` page through."""
    query = select(subscribers).where(subscribers.c.id > after_id)
    if status is not None:
        query = query.where(subscribers.c.status == status.value)
    if region is not None:
        query = query.where(
            subscribers.c.id.in_(
                select(subscriber_regions.c.subscriber_id).where(
                    subscriber_regions.c.region == region
                )
            )
        )
    if category is not None:
        query = query.where(
            subscribers.c.id.in_(
                select(subscriber_categories.c.subscriber_id).where(
                    subscriber_categories.c.category == category
                )
            )
        )
    query = query.order_by(subscribers.c.id)
    if limit is not None:
        query = query.limit(limit)
    return _hydrate(conn, list(conn.execute(query)))


def iter_batches(
    db: Database,
    *,
    status: SubscriberStatus | None = SubscriberStatus.ACTIVE,
    batch_size: int = 500,
) -> Iterator[list[Subscriber]]:
    """Stream subscribers (active by default) in id order, ``batch_size`` at a time.

    Keyset pagination: each batch is its own short read, so a run over a
    million subscribers holds no long transaction and little memory.
    """
    after = 0
    while True:
        with db.connect() as conn:
            batch = list_subscribers(conn, status=status, after_id=after, limit=batch_size)
        if not batch:
            return
        yield batch
        after = batch[-1].id


def iter_active(db: Database, *, batch_size: int = 500) -> Iterator[list[Subscriber]]:
    """Active subscribers in batches (see :func:`iter_batches`)."""
    return iter_batches(db, status=SubscriberStatus.ACTIVE, batch_size=batch_size)


def count_by_status(conn: Connection) -> dict[str, int]:
    """How many subscribers are in each status."""
    query = select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
    return {status: int(n) for status, n in conn.execute(query)}


def frequency_counts(conn: Connection) -> dict[str, int]:
    """Active subscribers per frequency (``daily``, ``weekly``, ``breaking``)."""
    s = subscribers.c
    query = (
        select(s.frequency, func.count())
        .where(s.status == SubscriberStatus.ACTIVE.value)
        .group_by(s.frequency)
    )
    return {str(f): int(n) for f, n in conn.execute(query)}


def weekly_groups(conn: Connection) -> list[tuple[str, str, int, int]]:
    """``(zone, send time, weekday, count)`` of active weekly readers."""
    s = subscribers.c
    query = (
        select(s.timezone, s.send_at, s.weekly_day, func.count())
        .where(s.status == SubscriberStatus.ACTIVE.value, s.frequency == "weekly")
        .group_by(s.timezone, s.send_at, s.weekly_day)
    )
    return [(str(z), str(at), int(day), int(n)) for z, at, day, n in conn.execute(query)]


def previous_cutoff(
    conn: Connection, subscriber_id: int, *, before: datetime | None = None
) -> datetime | None:
    """The newest recorded edition cut-off of a subscriber (optionally before a moment)."""
    query = select(func.max(deliveries.c.cutoff_at)).where(
        deliveries.c.subscriber_id == subscriber_id
    )
    if before is not None:
        query = query.where(deliveries.c.cutoff_at < before)
    value: datetime | None = conn.execute(query).scalar_one_or_none()
    return value


# -- writing -------------------------------------------------------------------------


def _consent_values(consent: Consent | None) -> dict[str, Any]:
    if consent is None:
        return {}
    return {
        "consent_at": consent.at,
        "consent_method": consent.method,
        "consent_ip": consent.ip,
        "consent_user_agent": consent.user_agent,
        "consent_version": consent.wording_version,
    }


def _set_links(
    conn: Connection,
    subscriber_id: int,
    regions: Sequence[str] | None,
    categories: Sequence[str] | None,
) -> None:
    if regions is not None:
        conn.execute(
            delete(subscriber_regions).where(subscriber_regions.c.subscriber_id == subscriber_id)
        )
        if regions:
            conn.execute(
                insert(subscriber_regions),
                [
                    {"subscriber_id": subscriber_id, "region": r, "position": i}
                    for i, r in enumerate(regions)
                ],
            )
    if categories is not None:
        conn.execute(
            delete(subscriber_categories).where(
                subscriber_categories.c.subscriber_id == subscriber_id
            )
        )
        if categories:
            conn.execute(
                insert(subscriber_categories),
                [
                    {"subscriber_id": subscriber_id, "category": c, "position": i}
                    for i, c in enumerate(categories)
                ],
            )


def add(conn: Connection, draft: SubscriberDraft, *, now: datetime) -> Subscriber:
    """Insert a validated, defaulted draft (see :func:`kabarfeed.subscribers.with_defaults`).

    :class:`InputError` when the address is already subscribed.
    """
    if get_by_email(conn, draft.email) is not None:
        raise InputError(f"{draft.email} is already a subscriber")
    status = draft.status or SubscriberStatus.ACTIVE
    active = status == SubscriberStatus.ACTIVE
    values = {
        "email": draft.email,
        "email_key": email_key(draft.email),
        "name": draft.name,
        "token": new_token(),
        "timezone": draft.timezone,
        "send_at": draft.send_at,
        "language": draft.language,
        "status": status.value,
        "bounce_count": 0,
        "created_at": draft.created_at or now,
        "updated_at": now,
        "confirmed_at": draft.confirmed_at or (now if active else None),
        "unsubscribed_at": now if status == SubscriberStatus.UNSUBSCRIBED else None,
        "frequency": draft.frequency or "daily",
        "weekly_day": draft.weekly_day or 0,
        "breaking_alerts": bool(draft.breaking_alerts),
        **_consent_values(draft.consent),
    }
    key = conn.execute(insert(subscribers).values(**values)).inserted_primary_key
    if key is None:
        raise StoreError(f"inserting {draft.email} returned no id")
    new_id = int(key[0])
    _set_links(conn, new_id, draft.regions, draft.categories)
    found = get(conn, new_id)
    assert found is not None
    return found


def update_preferences(
    conn: Connection, subscriber_id: int, draft: SubscriberDraft, *, now: datetime
) -> Subscriber:
    """Change the given (non-``None``) preference fields of a validated draft;
    email, status and token are never changed here."""
    values: dict[str, Any] = {"updated_at": now}
    for column in ("name", "timezone", "send_at", "language", "weekly_day", "breaking_alerts"):
        value = getattr(draft, column)
        if value is not None:
            values[column] = value
    if draft.frequency is not None:
        values["frequency"] = draft.frequency
        # stamped only on a real change: the next edition then covers the whole
        # gap since the previous one (see digest.schedule.window_max_age)
        values["frequency_since"] = case(
            (subscribers.c.frequency != draft.frequency, now),
            else_=subscribers.c.frequency_since,
        )
    conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
    _set_links(conn, subscriber_id, draft.regions, draft.categories)
    return _require(conn, subscriber_id)


def set_status(
    conn: Connection, subscriber_id: int, status: SubscriberStatus, *, now: datetime
) -> Subscriber:
    """Move a subscriber to ``status``, stamping confirmed/unsubscribed times."""
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status == SubscriberStatus.ACTIVE:
        values["confirmed_at"] = func.coalesce(subscribers.c.confirmed_at, now)
        values["unsubscribed_at"] = None
        values["bounce_count"] = 0
    elif status == SubscriberStatus.UNSUBSCRIBED:
        values["unsubscribed_at"] = now
    conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
    return _require(conn, subscriber_id)


def delete_subscriber(conn: Connection, subscriber_id: int) -> None:
    """Erase a subscriber with their preferences and delivery history."""
    for table, column in (
        (deliveries, deliveries.c.subscriber_id),
        (subscriber_regions, subscriber_regions.c.subscriber_id),
        (subscriber_categories, subscriber_categories.c.subscriber_id),
    ):
        conn.execute(delete(table).where(column == subscriber_id))
    conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))


def _require(conn: Connection, subscriber_id: int) -> Subscriber:
    found = get(conn, subscriber_id)
    if found is None:
        raise StoreError(f"subscriber {subscriber_id} vanished during the update")
    return found


# -- import ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: rows added, changed, already identical, and failures."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: tuple[tuple[int, str], ...] = ()


_STOPPED = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


def preference_changes(existing: Subscriber, draft: SubscriberDraft) -> SubscriberDraft | None:
    """The preference changes ``draft`` brings to ``existing`` (``None``: nothing)."""
    fields: dict[str, Any] = {
        "name": draft.name if draft.name not in (None, existing.name) else None,
        "regions": draft.regions if draft.regions not in (None, existing.regions) else None,
        "categories": draft.categories
        if draft.categories not in (None, existing.categories)
        else None,
        "timezone": draft.timezone if draft.timezone not in (None, existing.timezone) else None,
        "send_at": draft.send_at if draft.send_at not in (None, existing.send_at) else None,
        "language": draft.language if draft.language not in (None, existing.language) else None,
        "frequency": draft.frequency if draft.frequency not in (None, existing.frequency) else None,
        "weekly_day": draft.weekly_day
        if draft.weekly_day not in (None, existing.weekly_day)
        else None,
        "breaking_alerts": draft.breaking_alerts
        if draft.breaking_alerts not in (None, existing.breaking_alerts)
        else None,
    }
    if all(v is None for v in fields.values()):
        return None
    return SubscriberDraft(email=existing.email, **fields)


def upsert_row(
    conn: Connection, draft: SubscriberDraft, defaulted: SubscriberDraft, *, now: datetime
) -> str:
    """Import one row: ``"added"``, ``"updated"`` or ``"unchanged"``.

    An existing subscriber keeps their token, consent and status, except that
    a row may stop them (unsubscribed/bounced) but never re-activate them.
    """
    existing = get_by_email(conn, draft.email)
    if existing is None:
        add(conn, defaulted, now=now)
        return "added"
    outcome = "unchanged"
    changes = preference_changes(existing, draft)
    if changes is not None:
        update_preferences(conn, existing.id, changes, now=now)
        outcome = "updated"
    if draft.status in _STOPPED and existing.status != draft.status:
        set_status(conn, existing.id, draft.status, now=now)
        outcome = "updated"
    return outcome


def import_rows(
    db: Database, rows: Sequence[tuple[CsvRow, SubscriberDraft]], *, now: datetime, chunk: int = 200
) -> ImportReport:
    """Upsert validated rows (each paired with its defaulted draft), ``chunk``
    rows per transaction. When a chunk fails (e.g. a concurrent sign-up took an
    address), its rows are retried one transaction each and the failing rows
    are reported: a row lands whole or not at all, and re-importing is a no-op."""
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    failed: list[tuple[int, str]] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        try:
            with db.begin() as conn:
                outcomes = [upsert_row(conn, r.draft, d, now=now) for r, d in part]
        except (StoreError, InputError):
            outcomes = _one_by_one(db, part, failed, now=now)
        for outcome in outcomes:
            counts[outcome] += 1
    return ImportReport(counts["added"], counts["updated"], counts["unchanged"], tuple(failed))


def _one_by_one(
    db: Database,
    part: Sequence[tuple[CsvRow, SubscriberDraft]],
    failed: list[tuple[int, str]],
    *,
    now: datetime,
) -> list[str]:
    outcomes: list[str] = []
    for row, defaulted in part:
        try:
            with db.begin() as conn:
                outcomes.append(upsert_row(conn, row.draft, defaulted, now=now))
        except (StoreError, InputError, IntegrityError, SQLAlchemyError) as e:
            failed.append((row.line, str(e).splitlines()[0]))
    return outcomes


def edition_candidates(
    conn: Connection,
    subscriber: Subscriber,
    *,
    since: datetime,
    cutoff: datetime,
    max_age: timedelta,
    taxonomy: Taxonomy,
) -> list[Article]:
    """Articles first seen in ``(since, cutoff]`` that may match ``subscriber``
    (a superset is fine: :func:`kabarfeed.digest.selection.select_articles` decides)."""
    scope = sorted({s for r in subscriber.regions for s in taxonomy.with_descendants(r)})
    return load_articles(
        conn,
        regions=scope or None,
        categories=list(subscriber.categories) or None,
        published_after=cutoff - max_age - timedelta(seconds=1),
        first_seen_after=since,
        first_seen_until=cutoff,
    )
