"""Editorial overrides of an article's classification (regions, categories,
advertorial flag), kept beside the ingested article.

The override row remembers what the classifier decided (``auto_*``) and what
an editor decided (``regions`` / ``categories`` / ``advertorial``; ``None``
leaves that part to the classifier). The article's own link rows and flag
always hold the result in force, so feeds, digests and the archive need no
filter of their own; :func:`reapply` runs after a re-ingest rewrote an
article, records the classifier's new decision and puts the editor's back.
Migration ``0006_article_overrides`` creates the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    ForeignKey,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from kabarfeed.store.schema import article_categories, article_regions, articles, metadata
from kabarfeed.store.types import UTCDateTime

article_overrides = Table(
    "article_overrides",
    metadata,
    Column(
        "article_id", String(32), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("regions", Text),
    Column("categories", Text),
    Column("advertorial", Boolean),
    Column("auto_regions", Text, nullable=False),
    Column("auto_categories", Text, nullable=False),
    Column("auto_advertorial", Boolean, nullable=False),
    Column("updated_by", String(320), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Classification:
    """Regions, categories and the advertorial flag of one article."""

    regions: tuple[str, ...]
    categories: tuple[str, ...]
    advertorial: bool


@dataclass(frozen=True, slots=True)
class Override:
    """An editor's correction (``None``: that part follows the classifier) and
    the classifier's own decision underneath it."""

    article_id: str
    regions: tuple[str, ...] | None
    categories: tuple[str, ...] | None
    advertorial: bool | None
    auto: Classification
    updated_by: str
    updated_at: datetime

    def result(self) -> Classification:
        """What is in force: the editor's parts over the classifier's."""
        return Classification(
            self.auto.regions if self.regions is None else self.regions,
            self.auto.categories if self.categories is None else self.categories,
            self.auto.advertorial if self.advertorial is None else self.advertorial,
        )


def _dump(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def _load(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def _override(row: Any) -> Override:
    return Override(
        row.article_id,
        _load(row.regions),
        _load(row.categories),
        row.advertorial,
        Classification(
            _load(row.auto_regions) or (), _load(row.auto_categories) or (), row.auto_advertorial
        ),
        row.updated_by,
        row.updated_at,
    )


def current(conn: Connection, article_id: str) -> Classification | None:
    """The classification in force (the article's own rows), or ``None``."""
    flag = conn.execute(
        select(articles.c.advertorial).where(articles.c.id == article_id)
    ).scalar_one_or_none()
    if flag is None:
        return None
    regions = conn.execute(
        select(article_regions.c.region)
        .where(article_regions.c.article_id == article_id)
        .order_by(article_regions.c.region)
    ).scalars()
    categories = conn.execute(
        select(article_categories.c.category)
        .where(article_categories.c.article_id == article_id)
        .order_by(article_categories.c.category)
    ).scalars()
    return Classification(tuple(regions), tuple(categories), bool(flag))


def get(conn: Connection, article_id: str) -> Override | None:
    """The override of ``article_id``, or ``None``."""
    row = conn.execute(
        select(article_overrides).where(article_overrides.c.article_id == article_id)
    ).first()
    return _override(row) if row else None


def overridden(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` carry an override."""
    if not ids:
        return set()
    query = select(article_overrides.c.article_id).where(
        article_overrides.c.article_id.in_(list(ids))
    )
    return set(conn.execute(query).scalars())


def _write(conn: Connection, article_id: str, wanted: Classification, now: datetime) -> None:
    """Make ``wanted`` the article's classification; mark it changed so the
    next incremental feed build renders the feeds it leaves and joins."""
    conn.execute(delete(article_regions).where(article_regions.c.article_id == article_id))
    conn.execute(delete(article_categories).where(article_categories.c.article_id == article_id))
    if wanted.regions:
        conn.execute(
            insert(article_regions),
            [{"article_id": article_id, "region": r} for r in wanted.regions],
        )
    if wanted.categories:
        conn.execute(
            insert(article_categories),
            [{"article_id": article_id, "category": c} for c in wanted.categories],
        )
    conn.execute(
        update(articles)
        .where(articles.c.id == article_id)
        .values(advertorial=wanted.advertorial, changed_at=now)
    )


def set_override(
    conn: Connection,
    article_id: str,
    *,
    regions: tuple[str, ...] | None,
    categories: tuple[str, ...] | None,
    advertorial: bool | None,
    by: str,
    now: datetime,
) -> Override:
    """Store an editor's correction and put it in force."""
    existing = get(conn, article_id)
    auto = existing.auto if existing else current(conn, article_id)
    if auto is None:
        raise LookupError(article_id)
    values = {
        "regions": _dump(regions),
        "categories": _dump(categories),
        "advertorial": advertorial,
        "updated_by": by,
        "updated_at": now,
    }
    if existing:
        conn.execute(
            update(article_overrides)
            .where(article_overrides.c.article_id == article_id)
            .values(**values)
        )
    else:
        conn.execute(
            insert(article_overrides).values(
                article_id=article_id,
                auto_regions=_dump(auto.regions),
                auto_categories=_dump(auto.categories),
                auto_advertorial=auto.advertorial,
                **values,
            )
        )
    found = get(conn, article_id)
    assert found is not None
    _write(conn, article_id, found.result(), now)
    return found


def clear(conn: Connection, article_id: str, *, now: datetime) -> Override | None:
    """Drop the correction: the classifier's decision is in force again."""
    found = get(conn, article_id)
    if found is None:
        return None
    conn.execute(delete(article_overrides).where(article_overrides.c.article_id == article_id))
    _write(conn, article_id, found.auto, now)
    return found


def reapply(conn: Connection, ids: Sequence[str], *, now: datetime) -> int:
    """After ``ids`` were re-ingested (their classification rewritten by the
    classifier): remember that decision and put the editors' corrections
    back. Returns how many articles had one."""
    done = 0
    for article_id in sorted(overridden(conn, ids)):
        auto = current(conn, article_id)
        if auto is None:
            continue
        conn.execute(
            update(article_overrides)
            .where(article_overrides.c.article_id == article_id)
            .values(
                auto_regions=_dump(auto.regions),
                auto_categories=_dump(auto.categories),
                auto_advertorial=auto.advertorial,
            )
        )
        found = get(conn, article_id)
        assert found is not None
        _write(conn, article_id, found.result(), now)
        done += 1
    return done
