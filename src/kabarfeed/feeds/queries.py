"""Store queries of the feed builder: what changed since the last build, each
feed's newest items and count, article rows, what each feed last showed and
the last build's marker. SQLAlchemy Core, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from kabarfeed.feeds.selection import Matcher, Selection, sort_key
from kabarfeed.models import Article
from kabarfeed.store.articles import load_articles, slugs_of
from kabarfeed.store.schema import article_categories, article_regions, articles, feed_builds
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
    regions: tuple[str, ...]
    categories: tuple[str, ...]

    @property
    def id(self) -> str:
        """The article id."""
        return token_id(self.token)


Items = tuple[list[str], int]
"""A feed's newest item tokens and its article count."""

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
    """The articles whose change column moved after ``since`` (``None``:
    every article), with their slugs."""
    a = articles.c
    query = select(a.id, a.revision, a.changed_at, a.first_seen_at)
    query = query if since is None else query.where(a.changed_at > since)
    rows = list(conn.execute(query))
    regions, categories = slugs_of(conn, [r.id for r in rows])
    return [
        Changed(item_token(i, rev), at, seen, regions.get(i, _EMPTY), categories.get(i, _EMPTY))
        for i, rev, at, seen in rows
    ]


def every_feed(conn: Connection, matcher: Matcher, items: int) -> dict[Selection, Items]:
    """Every feed with articles: its newest ``items`` tokens and article count,
    from one pass over every article newest first (one query per feed costs
    ten times more over a whole store). Articles sharing slugs share feeds:
    each feed merges the heads of its slug groups' lists."""
    slugs: dict[str, tuple[list[str], list[str]]] = {}
    for side, (table, column) in enumerate(
        (("article_regions", "region"), ("article_categories", "category"))
    ):
        sql = f"SELECT article_id, {column} FROM {table} ORDER BY {column}"
        for article_id, slug in conn.exec_driver_sql(sql).all():
            slugs.setdefault(article_id, ([], []))[side].append(slug)
    order = "ORDER BY published_at DESC, id DESC"
    rows = conn.exec_driver_sql(f"SELECT id, revision FROM articles {order}").all()
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    for position, (article_id, _) in enumerate(rows):
        regions, categories = slugs.get(article_id, ((), ()))
        groups.setdefault((tuple(regions), tuple(categories)), []).append(position)
    members: dict[Selection, list[list[int]]] = {}
    for key, positions in groups.items():
        for selection in matcher.selections(*key):
            members.setdefault(selection, []).append(positions)
    return {s: _newest(rows, lists, items) for s, lists in members.items()}


def _newest(rows: Sequence[Any], lists: list[list[int]], items: int) -> Items:
    newest = heapq.nsmallest(items, chain.from_iterable(p[:items] for p in lists))
    return [item_token(*rows[p]) for p in newest], sum(map(len, lists))


def missing_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Those of ``ids`` no longer stored."""
    wanted, found = set(ids), set[str]()
    for chunk in _chunks(wanted):
        found.update(conn.execute(select(articles.c.id).where(articles.c.id.in_(chunk))).scalars())
    return wanted - found


def newest_items(
    conn: Connection, regions: Sequence[str], category: str | None, items: int
) -> list[str]:
    """The item tokens of the newest ``items`` articles in one of ``regions``
    (empty: any) and of ``category`` (``None``: any)."""
    a, r, c = articles.c, article_regions.c, article_categories.c
    query = select(a.id, a.revision).order_by(a.published_at.desc(), a.id.desc()).limit(items)
    if regions and category is not None:  # a pair: few articles, sorted (6 ms at 100k)
        linked = c.article_id == r.article_id
        pair = select(r.article_id).join_from(article_regions, article_categories, linked)
        pair = pair.where(r.region.in_(regions), c.category == category)
        query = query.where(a.id.in_(pair))
    elif regions:  # EXISTS: a walk down published_at that stops at ``items``
        query = query.where(
            select(r.article_id).where(r.article_id == a.id, r.region.in_(regions)).exists()
        )
    elif category is not None:
        query = query.where(
            select(c.article_id).where(c.article_id == a.id, c.category == category).exists()
        )
    return [item_token(i, rev) for i, rev in conn.execute(query).all()]


def newest_published(conn: Connection) -> datetime | None:
    """When the newest stored article was published (``None``: no article)."""
    found: datetime | None = conn.execute(select(func.max(articles.c.published_at))).scalar()
    return found


def load_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, Article]:
    """Full articles for ``ids``, keyed by id."""
    return {a.id: a for chunk in _chunks(ids) for a in load_articles(conn, ids=chunk)}


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    """``items`` sorted, without duplicates, in lists short enough for ``IN``."""
    wanted = sorted(set(items))
    return (wanted[i : i + _CHUNK] for i in range(0, len(wanted), _CHUNK))


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
    for chunk in _chunks([*written, *removed]):
        conn.execute(delete(feed_builds).where(feed_builds.c.path.in_(chunk)))
    rows = [
        {"path": p, "content_hash": "", "item_count": len(ids), "item_ids": " ".join(ids)}
        for p, ids in written.items()
    ]
    if rows:
        conn.execute(insert(feed_builds), [{**row, "built_at": now} for row in rows])


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
    counts = marker.counts or {}
    value = {
        "built_at": marker.built_at.isoformat(),
        "newest": marker.head.newest.isoformat() if marker.head.newest else None,
        "total": marker.head.total,
        "fingerprint": marker.fingerprint,
        "counts": [[s.region, s.category, counts[s]] for s in sorted(counts, key=sort_key)],
    }
    write_state(conn, MARKER_KEY, value, marker.built_at)
