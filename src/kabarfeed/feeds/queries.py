"""Store queries of the feed builder: what changed since the last build, the
newest items and counts of feeds, article rows, what each feed last showed
and the last build's marker. SQLAlchemy Core (and portable driver SQL where
a full build reads every row), the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from kabarfeed.feeds.selection import GroupKey, Selection, sort_key
from kabarfeed.models import Article
from kabarfeed.store.articles import ARTICLE_COLUMNS, Slugs, article_from_row, slugs_of
from kabarfeed.store.schema import articles, feed_builds
from kabarfeed.store.state import read_state, write_state

MARKER_KEY = "feeds.last_build"
_CHUNK = 500
_EMPTY: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Head:
    """The store's version: newest change time and article count."""

    newest: datetime | None
    total: int


@dataclass(frozen=True, slots=True)
class Marker:
    """The last build: when, the store version it saw, the render fingerprint."""

    built_at: datetime
    head: Head
    fingerprint: str
    counts: Mapping[Selection, int] | None = None
    """Every feed's article count (``None``: not recorded)."""


@dataclass(frozen=True, slots=True)
class Changed:
    """An article inserted, edited or reclassified since a moment."""

    token: str
    changed: datetime
    first_seen: datetime
    published: datetime
    regions: tuple[str, ...]
    categories: tuple[str, ...]

    @property
    def id(self) -> str:
        """The article id."""
        return token_id(self.token)


TOKEN_REVISION = 16
"""Characters of an article's revision in its item token."""


def item_token(article_id: str, revision: str) -> str:
    """An item as a feed shows it: id plus revision, so edits show."""
    return f"{article_id}:{revision[:TOKEN_REVISION]}"


def token_id(token: str) -> str:
    """The article id of an item token."""
    return token.partition(":")[0]


def store_version(conn: Connection) -> Head:
    """Newest change time and article count, from one snapshot."""
    newest_q = select(func.max(articles.c.changed_at)).scalar_subquery()
    count_q = select(func.count()).select_from(articles).scalar_subquery()
    newest, count = conn.execute(select(newest_q, count_q)).one()
    return Head(newest, int(count))


def changed_since(conn: Connection, since: datetime | None) -> list[Changed]:
    """The articles whose change column moved after ``since`` (``None``: all),
    with their slugs."""
    a = articles.c
    query = select(a.id, a.revision, a.changed_at, a.first_seen_at, a.published_at)
    if since is not None:
        query = query.where(a.changed_at > since)
    rows = list(conn.execute(query))
    regions, categories = slugs_of(conn, [r.id for r in rows])
    return [
        Changed(
            item_token(i, rev), at, seen, pub, regions.get(i, _EMPTY), categories.get(i, _EMPTY)
        )
        for i, rev, at, seen, pub in rows
    ]


def published_of(conn: Connection, ids: Iterable[str]) -> dict[str, datetime]:
    """When each stored article of ``ids`` was published."""
    wanted = sorted(set(ids))
    out: dict[str, datetime] = {}
    for i in range(0, len(wanted), _CHUNK):
        query = select(articles.c.id, articles.c.published_at)
        rows = conn.execute(query.where(articles.c.id.in_(wanted[i : i + _CHUNK])))
        out.update((article_id, when) for article_id, when in rows)
    return out


@dataclass(frozen=True, slots=True)
class ArticleIndex:
    """Every stored article without content: ``ids`` (item tokens) newest first,
    the positions in ``ids`` of each slug combination, every article's slugs."""

    ids: Sequence[str]
    groups: Mapping[GroupKey, Sequence[int]]
    links: tuple[Slugs, Slugs]


def article_index(conn: Connection) -> ArticleIndex:
    """Read the :class:`ArticleIndex` with three parameterless SELECTs fetched
    straight from the DB-API cursor (Core's per-row work would triple the time)."""
    regions = _link_map(_fetch_raw(conn, "SELECT article_id, region FROM article_regions"))
    categories = _link_map(_fetch_raw(conn, "SELECT article_id, category FROM article_categories"))
    rows = _fetch_raw(
        conn,
        f"SELECT id, substr(revision, 1, {TOKEN_REVISION}) FROM articles"
        " ORDER BY published_at DESC, id DESC",
    )
    ids = [f"{i}:{rev}" for i, rev in rows]
    groups: dict[GroupKey, list[int]] = {}
    for position, (article_id, _) in enumerate(rows):
        key = (regions.get(article_id, _EMPTY), categories.get(article_id, _EMPTY))
        groups.setdefault(key, []).append(position)
    return ArticleIndex(ids, groups, (regions, categories))


def _fetch_raw(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _link_map(rows: Iterable[tuple[Any, ...]]) -> Slugs:
    """``(article_id, slug)`` rows -> article id -> sorted slugs."""
    found: dict[str, list[str]] = {}
    for article_id, slug in rows:
        found.setdefault(article_id, []).append(slug)
    return {k: tuple(sorted(v)) for k, v in found.items()}


def newest_published(conn: Connection) -> datetime | None:
    """When the newest stored article was published (``None``: no article)."""
    found: datetime | None = conn.execute(select(func.max(articles.c.published_at))).scalar()
    return found


def load_by_id(
    conn: Connection, ids: Iterable[str], links: tuple[Slugs, Slugs] | None = None
) -> dict[str, Article]:
    """Full articles for ``ids``, keyed by id (``links``: every article's
    region and category slugs when already read)."""
    wanted = sorted(set(ids))
    out: dict[str, Article] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        regions, categories = links or slugs_of(conn, chunk)
        for row in conn.execute(select(*ARTICLE_COLUMNS).where(articles.c.id.in_(chunk))):
            ident = row[0]
            found = article_from_row(row, regions.get(ident, _EMPTY), categories.get(ident, _EMPTY))
            out[ident] = found
    return out


def shown(conn: Connection) -> dict[str, tuple[str, ...]]:
    """Every feed path written with the item tokens it shows."""
    rows = conn.execute(select(feed_builds.c.path, feed_builds.c.item_ids))
    return {path: _tokens_of(text) for path, text in rows}


def _tokens_of(text: str | None) -> tuple[str, ...]:
    """Tokens as stored: space-separated, or a JSON list (development builds
    before 0.1)."""
    if not text:
        return ()
    return tuple(json.loads(text) if text.startswith("[") else text.split(" "))


def save_shown(
    conn: Connection,
    written: Mapping[str, Sequence[str]],
    removed: Iterable[str],
    *,
    now: datetime,
) -> None:
    """Record the item tokens each ``written`` path shows; forget ``removed`` paths."""
    paths = [*written, *removed]
    for i in range(0, len(paths), _CHUNK):
        conn.execute(delete(feed_builds).where(feed_builds.c.path.in_(paths[i : i + _CHUNK])))
    rows = [_row(path, ids, now) for path, ids in written.items()]
    if rows:
        conn.execute(insert(feed_builds), rows)


def _row(path: str, ids: Sequence[str], now: datetime) -> dict[str, Any]:
    return {
        "path": path,
        "content_hash": "",
        "item_count": len(ids),
        "item_ids": " ".join(ids),
        "built_at": now,
    }


def _order(marker: Marker) -> list[Selection]:
    return sorted(marker.counts or {}, key=sort_key)


def load_marker(conn: Connection) -> Marker | None:
    """The last build's marker; ``None`` before the first build or when unreadable."""
    data = read_state(conn, MARKER_KEY)
    if not data:
        return None
    try:
        newest = data.get("newest")
        head = Head(datetime.fromisoformat(newest) if newest else None, int(data["total"]))
        built = datetime.fromisoformat(str(data["built_at"]))
        counts = data.get("counts")
        found = {Selection(r, c): int(n) for r, c, n in counts} if counts is not None else None
        return Marker(built, head, str(data.get("fingerprint") or ""), found)
    except (ValueError, KeyError, TypeError):
        return None


def save_marker(conn: Connection, marker: Marker) -> None:
    """Record the build just finished."""
    value = {
        "built_at": marker.built_at.isoformat(),
        "newest": marker.head.newest.isoformat() if marker.head.newest else None,
        "total": marker.head.total,
        "fingerprint": marker.fingerprint,
        "counts": [[s.region, s.category, (marker.counts or {})[s]] for s in _order(marker)],
    }
    write_state(conn, MARKER_KEY, value, marker.built_at)
