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

from sqlalchemy import ColumnElement, Connection, Select, delete, exists, func, insert, select

from kabarfeed.feeds.selection import ALL, GroupKey, Selection, base_selections, sort_key
from kabarfeed.models import Article, Taxonomy
from kabarfeed.store.articles import ARTICLE_COLUMNS, Slugs, article_from_row, slugs_of
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


def _member_of(taxonomy: Taxonomy, selection: Selection) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if selection.region:
        slugs = taxonomy.with_descendants(selection.region)
        regions = article_regions.c
        conds.append(exists().where(regions.article_id == articles.c.id, regions.region.in_(slugs)))
    if selection.category:
        cats = article_categories.c
        conds.append(
            exists().where(cats.article_id == articles.c.id, cats.category == selection.category)
        )
    return conds


def newest_ids(
    conn: Connection, taxonomy: Taxonomy, selection: Selection, *, items: int
) -> list[str]:
    """The item tokens of ``selection``'s newest ``items`` articles (newest
    published first, then by id, as :func:`article_index` orders them)."""
    query = select(articles.c.id, articles.c.revision, articles.c.published_at)
    if selection.region and selection.category:  # few articles: start from them
        query = _pair_members(query, taxonomy, selection)
    else:
        query = query.where(*_member_of(taxonomy, selection))
    order = (articles.c.published_at.desc(), articles.c.id.desc())
    rows = conn.execute(query.order_by(*order).limit(items))
    return [item_token(i, rev) for i, rev, _ in rows]


def _pair_members(query: Select[Any], taxonomy: Taxonomy, selection: Selection) -> Select[Any]:
    """``query`` over the articles of a region x category pair, joined from
    the category's and the regions' rows (a pair holds ~1/600 of a large
    store: scanning articles by date for it read hundreds of rows per item)."""
    regions, cats = article_regions.c, article_categories.c
    slugs = taxonomy.with_descendants(selection.region or "")
    return (
        query.select_from(article_categories)
        .join(article_regions, regions.article_id == cats.article_id)
        .join(articles, articles.c.id == cats.article_id)
        .where(cats.category == selection.category, regions.region.in_(slugs))
        .distinct()
    )


def count_selections(conn: Connection, taxonomy: Taxonomy) -> dict[Selection, int]:
    """Every selection's article count: the always-present feeds (0 or more)
    and every region x category pair with articles. A few grouped queries:
    one per region that has sub-regions, three for everything else."""
    categories = {c.slug for c in taxonomy.categories}
    counts = dict.fromkeys(base_selections(taxonomy), 0)
    counts[ALL] = int(conn.execute(select(func.count()).select_from(articles)).scalar_one())
    query: Select[Any] = select(article_categories.c.category, func.count()).group_by(
        article_categories.c.category
    )
    for slug, count in conn.execute(query):
        if slug in categories:
            counts[Selection(category=slug)] = int(count)
    pairs = article_regions.join(
        article_categories, article_categories.c.article_id == article_regions.c.article_id
    )
    leaves = [r.slug for r in taxonomy.regions if not taxonomy.descendants(r.slug)]
    found = list(_grouped(conn, pairs, leaves, as_one=None))
    for r in taxonomy.regions:
        if taxonomy.descendants(r.slug):
            found += _grouped(conn, pairs, taxonomy.with_descendants(r.slug), as_one=r.slug)
    for region, category, count in found:
        if category is None or category in categories:
            counts[Selection(region, category)] = count
    return {s: n for s, n in counts.items() if n or s.kind != "pair"}


def _grouped(
    conn: Connection, pairs: Any, regions: Sequence[str], *, as_one: str | None
) -> list[tuple[str, str | None, int]]:
    """Counts per (region, None) and (region, category) over ``regions``; with
    ``as_one``, the regions count as that one region (each article once)."""
    if not regions:
        return []
    where = article_regions.c.region.in_(regions)
    if as_one is None:
        key: tuple[Any, ...] = (article_regions.c.region,)
        counter = func.count()
    else:
        key, counter = (), func.count(article_regions.c.article_id.distinct())
    single = select(*key, counter).where(where).group_by(*key)
    double = (
        select(*key, article_categories.c.category, counter)
        .select_from(pairs)
        .where(where)
        .group_by(*key, article_categories.c.category)
    )
    out: list[tuple[str, str | None, int]] = []
    for row in conn.execute(single):
        out.append((as_one or row[0], None, int(row[-1])))
    for row in conn.execute(double):
        out.append((as_one or row[0], row[-2], int(row[-1])))
    return out


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
