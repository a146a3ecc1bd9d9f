"""Store queries of the feed builder: the light article index, the changes
since the last build, per-selection counts and newest items, article rows,
build state and the last-build marker. Plain SQLAlchemy Core (and portable
driver SQL), the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    delete,
    exists,
    func,
    insert,
    select,
)

from kabarfeed.feeds.selection import (
    ALL,
    Change,
    GroupKey,
    IndexRow,
    Selection,
    base_selections,
    sort_key,
)
from kabarfeed.models import Article, Taxonomy
from kabarfeed.store.articles import ARTICLE_COLUMNS, Slugs, article_from_row, slugs_of
from kabarfeed.store.schema import article_categories, article_regions, articles, feed_builds
from kabarfeed.store.state import read_state, write_state
from kabarfeed.store.types import utc_of

MARKER_KEY = "feeds.last_build"
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class StoredBuild:
    """What the last build wrote at one path: content hash and item tokens."""

    path: str
    content_hash: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Head:
    """The store's version: newest change time and article count. Moves on
    every insert, edit or delete."""

    newest: datetime | None
    total: int

    @property
    def key(self) -> str:
        """The version as one comparable string."""
        return f"{self.newest.isoformat() if self.newest else '-'}/{self.total}"


@dataclass(frozen=True, slots=True)
class Marker:
    """The last build: when, the store version it saw, the render fingerprint
    (config and version) it used and every selection's article count."""

    built_at: datetime
    head: Head
    fingerprint: str
    counts: Mapping[Selection, int] | None = None
    boot: str = ""
    """The machine's boot the build ran in (``""``: unknown)."""


TOKEN_REVISION = 16
"""Characters of an article's revision hash in its item token."""


def item_token(article_id: str, revision: str) -> str:
    """An item as build state remembers it: id plus revision, so edits show."""
    return f"{article_id}:{revision[:TOKEN_REVISION]}"


def store_version(conn: Connection) -> Head:
    """Newest change time and article count, from one snapshot. Two scalar
    subqueries, not one aggregate: each is then answered on its own (the
    newest from the end of an index), 5x faster on SQLite."""
    newest_q = select(func.max(articles.c.changed_at)).scalar_subquery()
    count_q = select(func.count()).select_from(articles).scalar_subquery()
    newest, count = conn.execute(select(newest_q, count_q)).one()
    return Head(newest, int(count))


def index_rows(conn: Connection) -> list[IndexRow]:
    """Every article as (token, regions, categories), newest published first.

    Plain driver SQL (portable SELECTs, no parameters) fetched in one go:
    this reads every row on a full build, and skipping Core's per-row
    processing makes it several times faster.
    """
    links: list[dict[str, list[str]]] = [{}, {}]
    for out, table, column in (
        (links[0], "article_regions", "region"),
        (links[1], "article_categories", "category"),
    ):
        rows = conn.exec_driver_sql(
            f"SELECT article_id, {column} FROM {table} ORDER BY article_id, {column}"
        ).fetchall()
        for article_id, slug in rows:
            found = out.get(article_id)
            if found is None:
                out[article_id] = [slug]
            else:
                found.append(slug)
    regions = {k: tuple(v) for k, v in links[0].items()}
    categories = {k: tuple(v) for k, v in links[1].items()}
    rows = conn.exec_driver_sql(
        "SELECT id, revision FROM articles ORDER BY published_at DESC, id DESC"
    ).fetchall()
    empty: tuple[str, ...] = ()
    return [
        IndexRow(f"{i}:{rev[:16]}", regions.get(i, empty), categories.get(i, empty))
        for i, rev in rows
    ]


Links = Slugs
"""Article id -> its region (or category) slugs, sorted."""


@dataclass(frozen=True, slots=True)
class ArticleIndex:
    """Every stored article as the full planner needs it, without content.

    ``rows`` holds ``(id, revision)`` newest published first; ``groups`` the
    positions in ``rows`` of the articles sharing one slug combination (see
    :func:`selection.plan_groups`); ``regions``/``categories`` every article's
    slugs, which the loader reuses instead of querying them again.
    """

    rows: Sequence[tuple[str, str]]
    groups: Mapping[GroupKey, Sequence[int]]
    regions: Links
    categories: Links

    def token(self, position: int) -> str:
        """The item token of the article at ``position``."""
        article_id, revision = self.rows[position]
        return item_token(article_id, revision)


def article_index(conn: Connection) -> ArticleIndex:
    """Read the :class:`ArticleIndex`: three portable, parameterless SELECTs
    fetched straight from the DB-API cursor. A full build reads every row,
    and skipping Core's per-row processing makes this several times faster."""
    regions = _link_map(_fetch_raw(conn, "SELECT article_id, region FROM article_regions"))
    categories = _link_map(_fetch_raw(conn, "SELECT article_id, category FROM article_categories"))
    rows = _fetch_raw(
        conn,
        f"SELECT id, substr(revision, 1, {TOKEN_REVISION}) FROM articles"
        " ORDER BY published_at DESC, id DESC",
    )
    empty: tuple[str, ...] = ()
    groups: dict[GroupKey, list[int]] = {}
    for position, (article_id, _) in enumerate(rows):
        key = (regions.get(article_id, empty), categories.get(article_id, empty))
        found = groups.get(key)
        if found is None:
            groups[key] = [position]
        else:
            found.append(position)
    return ArticleIndex(rows, groups, regions, categories)


def _fetch_raw(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` (positional driver placeholders) as the DB-API
    driver returns it (tuples for sqlite3 and psycopg)."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _link_map(rows: Iterable[tuple[Any, ...]]) -> Links:
    """``(article_id, slug)`` rows -> article id -> sorted slugs. Tuples all
    the way (most articles have one slug): no list per article."""
    found: dict[str, tuple[str, ...]] = {}
    several = set()
    for article_id, slug in rows:
        slugs = found.get(article_id)
        if slugs is None:
            found[article_id] = (slug,)
        else:
            found[article_id] = (*slugs, slug)
            several.add(article_id)
    for article_id in several:
        found[article_id] = tuple(sorted(found[article_id]))
    return found


def changes_since(conn: Connection, head: Head, *, lookback: timedelta) -> list[Change]:
    """Articles changed after ``head`` (and, re-read for safety, in the
    ``lookback`` before it: a writer may commit a change stamped earlier)."""
    if head.newest is None:
        return []
    cols = (
        articles.c.id,
        articles.c.revision,
        articles.c.published_at,
        articles.c.first_seen_at,
        articles.c.changed_at,
    )
    rows = list(conn.execute(select(*cols).where(articles.c.changed_at > head.newest - lookback)))
    regions, categories = slugs_of(conn, [r.id for r in rows])
    return [
        Change(
            item_token(r.id, r.revision),
            r.published_at,
            regions.get(r.id, ()),
            categories.get(r.id, ()),
            _kind(r.first_seen_at, r.changed_at, head),
        )
        for r in rows
    ]


def _kind(first_seen: datetime, changed: datetime, head: Head) -> str:
    if changed != first_seen:
        return "edited"
    return "new" if head.newest is None or changed > head.newest else "seen"


def times_of(conn: Connection, ids: Iterable[str]) -> dict[str, tuple[datetime, datetime]]:
    """The publication and ``updated`` times of every stored article among ``ids``.

    Driver SQL with one placeholder per id, fetched from the DB-API cursor:
    an incremental build asks for the times of thousands of previous items,
    and Core's expanding ``IN`` and per-row type processing were most of
    this query's time."""
    wanted = sorted(set(ids))
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    out: dict[str, tuple[datetime, datetime]] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        sql = (
            "SELECT id, published_at, updated_at FROM articles"
            f" WHERE id IN ({', '.join([mark] * len(chunk))})"
        )
        for ident, published, updated in _fetch_raw(conn, sql, chunk):
            out[ident] = (utc_of(published), utc_of(updated))
    return out


def _member_of(taxonomy: Taxonomy, selection: Selection) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if selection.region:
        slugs = taxonomy.with_descendants(selection.region)
        conds.append(
            exists().where(
                article_regions.c.article_id == articles.c.id,
                article_regions.c.region.in_(slugs),
            )
        )
    if selection.category:
        conds.append(
            exists().where(
                article_categories.c.article_id == articles.c.id,
                article_categories.c.category == selection.category,
            )
        )
    return conds


def top_items(
    conn: Connection, taxonomy: Taxonomy, selection: Selection, *, items: int
) -> tuple[str, ...]:
    """The item tokens of ``selection``'s newest ``items`` articles."""
    query = (
        select(articles.c.id, articles.c.revision)
        .where(*_member_of(taxonomy, selection))
        .order_by(articles.c.published_at.desc(), articles.c.id.desc())
        .limit(items)
    )
    return tuple(item_token(i, rev) for i, rev in conn.execute(query))


def newest_ids(conn: Connection, offset: int, limit: int) -> list[str]:
    """The ids of the stored articles at newest-first ranks ``offset`` to
    ``offset + limit`` (the planner's order)."""
    query = (
        select(articles.c.id)
        .order_by(articles.c.published_at.desc(), articles.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


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


def load_by_id(
    conn: Connection, ids: Iterable[str], links: tuple[Links, Links] | None = None
) -> dict[str, Article]:
    """Full articles for ``ids`` (in chunks), keyed by id: only the columns
    a feed shows, each row read once. ``links`` (every article's region and
    category slugs, e.g. from :func:`article_index`) saves querying them."""
    wanted = sorted(set(ids))
    out: dict[str, Article] = {}
    empty: tuple[str, ...] = ()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        regions, categories = links or slugs_of(conn, chunk)
        query = select(*ARTICLE_COLUMNS).where(articles.c.id.in_(chunk))
        for row in conn.execute(query):
            ident = row[0]
            out[ident] = article_from_row(
                row, regions.get(ident, empty), categories.get(ident, empty)
            )
    return out


def load_builds(conn: Connection) -> dict[str, StoredBuild]:
    """Every path the previous builds wrote.

    Read on every build that has something to do, so from the DB-API cursor;
    a feed's documents in every format hold the same items, whose text is
    parsed once."""
    rows = _fetch_raw(conn, "SELECT path, content_hash, item_ids FROM feed_builds")
    parsed: dict[str | None, tuple[str, ...]] = {}
    out = {}
    for path, check, text in rows:
        items = parsed.get(text)
        if items is None:
            items = parsed[text] = _parse_items(text)
        out[path] = StoredBuild(path, check, items)
    return out


def built_since(conn: Connection, since: datetime) -> frozenset[str]:
    """The paths whose document was (re)built at or after ``since``."""
    rows = conn.execute(select(feed_builds.c.path).where(feed_builds.c.built_at >= since))
    return frozenset(rows.scalars())


def _parse_items(text: str | None) -> tuple[str, ...]:
    """Item tokens as stored: space-separated (tokens hold no spaces; 5x
    faster to read than JSON for every feed on every build), or a JSON list
    as development builds before 0.1 wrote it."""
    if not text:
        return ()
    if text.startswith("["):
        return tuple(json.loads(text))
    return tuple(text.split(" "))


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
                    "item_ids": " ".join(b.items),
                    "built_at": now,
                }
                for b in builds
            ],
        )


def load_marker(conn: Connection) -> Marker | None:
    """The last build's marker, or ``None`` before the first build."""
    data = read_state(conn, MARKER_KEY)
    if not data:
        return None
    try:
        newest = data.get("newest")
        counts = data.get("counts")
        return Marker(
            datetime.fromisoformat(str(data["built_at"])),
            Head(datetime.fromisoformat(newest) if newest else None, int(data.get("total", -1))),
            str(data.get("fingerprint") or ""),
            {Selection(r, c): int(n) for r, c, n in counts} if counts is not None else None,
            str(data.get("boot") or ""),
        )
    except (ValueError, KeyError, TypeError):
        return None  # unreadable marker: the next build is a full one


def save_marker(conn: Connection, marker: Marker) -> None:
    """Record the build just finished."""
    counts = marker.counts or {}
    value = {
        "built_at": marker.built_at.isoformat(),
        "newest": marker.head.newest.isoformat() if marker.head.newest else None,
        "total": marker.head.total,
        "fingerprint": marker.fingerprint,
        "boot": marker.boot,
        "counts": [
            [s.region, s.category, n]
            for s, n in sorted(counts.items(), key=lambda kv: sort_key(kv[0]))
        ],
    }
    write_state(conn, MARKER_KEY, value, marker.built_at)
