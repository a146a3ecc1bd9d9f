"""Store queries of the feed builder: the light article index, build state and
the last-build marker. Plain SQLAlchemy Core, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from kabarfeed.feeds.selection import IndexRow
from kabarfeed.models import Article
from kabarfeed.store.articles import load_articles
from kabarfeed.store.schema import articles, feed_builds
from kabarfeed.store.schema import state as state_table

MARKER_KEY = "feeds.last_build"
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class StoredBuild:
    """What the last build wrote at one path: content hash and item tokens."""

    path: str
    content_hash: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Marker:
    """The last build: when, the store version it saw (see :func:`store_version`)
    and the render fingerprint (config and version) it used."""

    built_at: datetime
    head: str
    fingerprint: str


def item_token(article_id: str, revision: str) -> str:
    """An item as build state remembers it: id plus revision, so edits show."""
    return f"{article_id}:{revision[:16]}"


def store_version(conn: Connection) -> str:
    """Newest change time and article count: moves on every insert, edit or delete."""
    newest, count = conn.execute(select(func.max(articles.c.changed_at), func.count())).one()
    return f"{newest.isoformat() if newest else '-'}/{count}"


def index_rows(conn: Connection) -> list[IndexRow]:
    """Every article as (token, regions, categories), newest published first.

    Plain driver SQL (portable SELECTs, no parameters): this reads every row
    on every build, and skipping Core's result processing makes it 3x faster.
    """
    regions: dict[str, list[str]] = {}
    for article_id, region in conn.exec_driver_sql(
        "SELECT article_id, region FROM article_regions ORDER BY article_id, region"
    ):
        regions.setdefault(article_id, []).append(region)
    categories: dict[str, list[str]] = {}
    for article_id, category in conn.exec_driver_sql(
        "SELECT article_id, category FROM article_categories ORDER BY article_id, category"
    ):
        categories.setdefault(article_id, []).append(category)
    rows = conn.exec_driver_sql(
        "SELECT id, revision FROM articles ORDER BY published_at DESC, id DESC"
    )
    return [
        IndexRow(item_token(i, rev), tuple(regions.get(i, ())), tuple(categories.get(i, ())))
        for i, rev in rows
    ]


def load_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, Article]:
    """Full articles for ``ids`` (in chunks), keyed by id."""
    wanted = sorted(set(ids))
    out: dict[str, Article] = {}
    for i in range(0, len(wanted), _CHUNK):
        for article in load_articles(conn, ids=wanted[i : i + _CHUNK]):
            out[article.id] = article
    return out


def load_builds(conn: Connection) -> dict[str, StoredBuild]:
    """Every path the previous builds wrote."""
    rows = conn.execute(
        select(feed_builds.c.path, feed_builds.c.content_hash, feed_builds.c.item_ids)
    )
    return {
        path: StoredBuild(path, chash, tuple(json.loads(ids)) if ids else ())
        for path, chash, ids in rows
    }


def save_builds(
    conn: Connection, builds: Sequence[StoredBuild], removed: Iterable[str], *, now: datetime
) -> None:
    """Replace the rows of ``builds`` and delete those of ``removed`` paths."""
    paths = [b.path for b in builds] + list(removed)
    for i in range(0, len(paths), _CHUNK):
        conn.execute(delete(feed_builds).where(feed_builds.c.path.in_(paths[i : i + _CHUNK])))
    if builds:
        conn.execute(
            insert(feed_builds),
            [
                {
                    "path": b.path,
                    "content_hash": b.content_hash,
                    "item_count": len(b.items),
                    "item_ids": json.dumps(list(b.items)),
                    "built_at": now,
                }
                for b in builds
            ],
        )


def load_marker(conn: Connection) -> Marker | None:
    """The last build's marker, or ``None`` before the first build."""
    value = conn.execute(
        select(state_table.c.value).where(state_table.c.key == MARKER_KEY)
    ).scalar_one_or_none()
    if not value:
        return None
    try:
        data: Mapping[str, str | None] = json.loads(value)
        return Marker(
            datetime.fromisoformat(str(data["built_at"])),
            str(data.get("head") or ""),
            str(data.get("fingerprint") or ""),
        )
    except (ValueError, KeyError, TypeError):
        return None  # unreadable marker: the next build is a full one


def save_marker(conn: Connection, marker: Marker) -> None:
    """Record the build just finished (portable upsert)."""
    value = json.dumps(
        {
            "built_at": marker.built_at.isoformat(),
            "head": marker.head,
            "fingerprint": marker.fingerprint,
        }
    )
    done = conn.execute(
        update(state_table)
        .where(state_table.c.key == MARKER_KEY)
        .values(value=value, updated_at=marker.built_at)
    )
    if not done.rowcount:
        conn.execute(
            insert(state_table).values(key=MARKER_KEY, value=value, updated_at=marker.built_at)
        )
