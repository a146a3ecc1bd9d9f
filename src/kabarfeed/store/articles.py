"""Article queries: dedup-aware bulk save and selection for feeds and digests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, delete, func, insert, select, update

from kabarfeed.models import Article, Image
from kabarfeed.normalize import stable_key
from kabarfeed.store import overrides
from kabarfeed.store.pushapi import buried
from kabarfeed.store.schema import (
    article_categories,
    article_keys,
    article_regions,
    articles,
)

_CHUNK = 400


@dataclass(frozen=True, slots=True)
class Prepared:
    """An article ready to store, with its dedup keys and a revision hash
    covering every stored field (a changed revision means an upstream edit)."""

    article: Article
    guid_key: str | None
    url_key: str
    revision: str
    dated_by_clock: bool = False
    """The article had no usable date and was dated at ingest: once stored,
    its stored date stands (an edit never re-dates it)."""


@dataclass(frozen=True, slots=True)
class SaveCounts:
    """How a batch landed: new rows, edited rows, already-known duplicates."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class _Known:
    id: str
    source: str
    revision: str
    updated_at: datetime
    first_seen_at: datetime


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _keys(p: Prepared) -> tuple[list[str], str]:
    """The item keys (guid, URL) and the content key of a prepared article."""
    item = [f"u{p.url_key[:63]}"]
    if p.guid_key:
        item.insert(0, f"g{p.guid_key[:63]}")
    return item, f"h{p.article.content_hash[:63]}"


def _known_rows(conn: Connection, batch: Sequence[Prepared]) -> list[Row[Any]]:
    wanted = sorted({k for p in batch for k in (*_keys(p)[0], _keys(p)[1])})
    cols = (
        article_keys.c.key,
        articles.c.id,
        articles.c.source,
        articles.c.revision,
        articles.c.updated_at,
        articles.c.first_seen_at,
    )
    rows: list[Row[Any]] = []
    for chunk in _chunks(wanted):
        rows.extend(
            conn.execute(
                select(*cols)
                .join(articles, articles.c.id == article_keys.c.article_id)
                .where(article_keys.c.key.in_(chunk))
            )
        )
    return rows


class _Index:
    """Known articles by every dedup key; collects the keys to add."""

    def __init__(self, rows: Iterable[Row[Any]]) -> None:
        self.by_key: dict[str, _Known] = {}
        self.new_keys: list[dict[str, str]] = []
        by_id: dict[str, _Known] = {}
        for r in rows:
            known = by_id.setdefault(
                r.id, _Known(r.id, r.source, r.revision, r.updated_at, r.first_seen_at)
            )
            self.by_key[r.key] = known

    def remember(self, known: _Known, keys: Iterable[str]) -> None:
        """Point ``keys`` at ``known`` (stored with the batch)."""
        for key in keys:
            if key not in self.by_key:
                self.by_key[key] = known
                self.new_keys.append({"key": key, "article_id": known.id})

    def match(self, p: Prepared) -> tuple[_Known | None, bool]:
        """The known row for ``p`` and whether it is the same item (guid/URL)
        rather than a copy of the same content from elsewhere."""
        item_keys, content_key = _keys(p)
        for key in item_keys:
            if key in self.by_key:
                return self.by_key[key], True
        return self.by_key.get(content_key), False


def _row_values(p: Prepared) -> dict[str, Any]:
    a = p.article
    return {
        "id": a.id,
        "source": a.source,
        "guid": a.guid,
        "guid_key": p.guid_key,
        "url": a.url,
        "url_key": p.url_key,
        "title": a.title,
        "author": a.author,
        "published_at": a.published,
        "updated_at": a.updated,
        "first_seen_at": a.first_seen,
        "changed_at": a.first_seen,
        "summary": a.summary,
        "content_html": a.content_html,
        "image_url": a.image.url if a.image else None,
        "image_caption": a.image.caption if a.image else None,
        "image_type": a.image.type if a.image else None,
        "image_length": a.image.length if a.image else None,
        "advertorial": a.advertorial,
        "language": a.language,
        "local_tz": a.local_tz,
        "content_hash": a.content_hash,
        "revision": p.revision,
    }


def _link_rows(article: Article) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    regions = [{"article_id": article.id, "region": r} for r in article.regions]
    categories = [{"article_id": article.id, "category": c} for c in article.categories]
    return regions, categories


def save_articles(conn: Connection, batch: Sequence[Prepared], *, now: datetime) -> SaveCounts:
    """Insert new articles, update edited ones, skip known ones — in bulk.

    The same item (same guid or canonical URL) updates in place when its
    revision changed; the same content from another source is a duplicate,
    and its keys are remembered so it stays one after the original is edited.
    """
    index = _Index(_known_rows(conn, batch))
    dead = buried(conn, sorted({k for p in batch for k in (*_keys(p)[0], _keys(p)[1])}))
    taken = _taken_ids(conn, [p.article.id for p in batch])
    inserts: list[dict[str, Any]] = []
    links: tuple[list[dict[str, str]], list[dict[str, str]]] = ([], [])
    updated: list[str] = []
    unchanged = 0
    for p in batch:
        item_keys, content_key = _keys(p)
        if dead and not dead.isdisjoint((*item_keys, content_key)):
            unchanged += 1  # unpublished: only a new push brings it back
            continue
        known, same_item = index.match(p)
        if known is None:
            new = _own_id(p, taken)
            inserts.append(_row_values(new))
            regions, categories = _link_rows(new.article)
            links[0].extend(regions)
            links[1].extend(categories)
            a = new.article
            known = _Known(a.id, a.source, new.revision, a.updated, a.first_seen)
        elif same_item and known.revision != p.revision and known.source == p.article.source:
            _update(conn, known, p, now=now)
            known.revision = p.revision
            updated.append(known.id)
        else:
            unchanged += 1
        index.remember(known, [*item_keys, content_key])
    for table, rows in (
        (articles, inserts),
        (article_regions, links[0]),
        (article_categories, links[1]),
        (article_keys, index.new_keys),
    ):
        if rows:
            conn.execute(insert(table), rows)
    if updated:  # an editor's correction outlives the re-ingest that rewrote it
        overrides.reapply(conn, updated, now=now)
    new_ids = tuple(row["id"] for row in inserts)
    return SaveCounts(len(inserts), len(updated), unchanged, new_ids + tuple(updated))


def _taken_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are stored already."""
    taken: set[str] = set()
    for chunk in _chunks(sorted(set(ids))):
        taken.update(conn.execute(select(articles.c.id).where(articles.c.id.in_(chunk))).scalars())
    return taken


def _own_id(p: Prepared, taken: set[str]) -> Prepared:
    """``p`` with an id no other article has (and now taken).

    Ids come from the guid or the URL, so two different items can ask for the
    same one (one's guid is the other's link); the later one gets an id of its
    own instead of failing the whole batch.
    """
    ident, n = p.article.id, 0
    while ident in taken:
        n += 1
        ident = stable_key(p.article.id, p.url_key, str(n))[: len(p.article.id)]
    taken.add(ident)
    if ident == p.article.id:
        return p
    return replace(p, article=replace(p.article, id=ident))


def _update(conn: Connection, known: _Known, p: Prepared, *, now: datetime) -> None:
    values = _row_values(p)
    for key in ("id", "first_seen_at", "source"):
        values.pop(key)
    if p.dated_by_clock:
        values.pop("published_at")
    newer_upstream = p.article.updated > known.updated_at and not p.dated_by_clock
    values["updated_at"] = p.article.updated if newer_upstream else now
    values["changed_at"] = now
    conn.execute(update(articles).where(articles.c.id == known.id).values(**values))
    conn.execute(delete(article_regions).where(article_regions.c.article_id == known.id))
    conn.execute(delete(article_categories).where(article_categories.c.article_id == known.id))
    article = p.article
    regions = [{"article_id": known.id, "region": r} for r in article.regions]
    categories = [{"article_id": known.id, "category": c} for c in article.categories]
    if regions:
        conn.execute(insert(article_regions), regions)
    if categories:
        conn.execute(insert(article_categories), categories)


ARTICLE_COLUMNS = (
    articles.c.id,
    articles.c.source,
    articles.c.guid,
    articles.c.url,
    articles.c.title,
    articles.c.author,
    articles.c.published_at,
    articles.c.updated_at,
    articles.c.first_seen_at,
    articles.c.summary,
    articles.c.content_html,
    articles.c.image_url,
    articles.c.image_caption,
    articles.c.image_type,
    articles.c.image_length,
    articles.c.advertorial,
    articles.c.language,
    articles.c.local_tz,
    articles.c.content_hash,
)
"""The columns an :class:`Article` holds, in the order :func:`article_from_row` reads."""


def load_articles(
    conn: Connection,
    *,
    regions: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    published_after: datetime | None = None,
    first_seen_after: datetime | None = None,
    first_seen_until: datetime | None = None,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Article]:
    """Articles matching every given filter, newest published first.

    ``regions``/``categories`` match any of the slugs given (callers expand a
    province to its cities); ``first_seen_*`` bound the half-open window
    ``(after, until]`` used by digest editions.
    """
    query = select(*ARTICLE_COLUMNS)
    conds: list[ColumnElement[bool]] = []
    if regions is not None:
        conds.append(
            articles.c.id.in_(
                select(article_regions.c.article_id).where(article_regions.c.region.in_(regions))
            )
        )
    if categories is not None:
        conds.append(
            articles.c.id.in_(
                select(article_categories.c.article_id).where(
                    article_categories.c.category.in_(categories)
                )
            )
        )
    if published_after is not None:
        conds.append(articles.c.published_at > published_after)
    if first_seen_after is not None:
        conds.append(articles.c.first_seen_at > first_seen_after)
    if first_seen_until is not None:
        conds.append(articles.c.first_seen_at <= first_seen_until)
    if ids is not None:
        conds.append(articles.c.id.in_(list(ids)))
    if conds:
        query = query.where(and_(*conds))
    query = query.order_by(articles.c.published_at.desc(), articles.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = list(conn.execute(query))
    return _hydrate(conn, rows)


def _hydrate(conn: Connection, rows: Sequence[Row[*tuple[Any, ...]]]) -> list[Article]:
    regions, categories = slugs_of(conn, [r.id for r in rows])
    return [article_from_row(r, regions.get(r.id, ()), categories.get(r.id, ())) for r in rows]


Slugs = dict[str, tuple[str, ...]]
"""Article id -> its region (or category) slugs, sorted."""


def slugs_of(conn: Connection, ids: Sequence[str]) -> tuple[Slugs, Slugs]:
    """The sorted region and category slugs of the articles ``ids`` (an
    article without any is left out)."""
    found: tuple[dict[str, list[str]], dict[str, list[str]]] = ({}, {})
    for chunk in _chunks(ids):
        for table, column, out in (
            (article_regions, article_regions.c.region, found[0]),
            (article_categories, article_categories.c.category, found[1]),
        ):
            query = select(table.c.article_id, column).where(table.c.article_id.in_(chunk))
            for article_id, slug in conn.execute(query):
                out.setdefault(article_id, []).append(slug)
    return (
        {k: tuple(sorted(v)) for k, v in found[0].items()},
        {k: tuple(sorted(v)) for k, v in found[1].items()},
    )


def article_from_row(
    row: Sequence[Any], regions: Sequence[str], categories: Sequence[str]
) -> Article:
    """The :class:`Article` of a row of :data:`ARTICLE_COLUMNS` (unpacked by
    position: full feed builds map tens of thousands) and its sorted slugs."""
    (ident, source, guid, url, title, author, published, updated, first_seen, summary,
     content, image_url, caption, image_type, length, advertorial, language, local_tz,
     content_hash) = row  # fmt: skip
    image = Image(image_url, caption, image_type, length) if image_url else None
    return Article(
        id=ident,
        source=source,
        url=url,
        title=title,
        published=published,
        updated=updated,
        first_seen=first_seen,
        content_hash=content_hash,
        guid=guid,
        author=author,
        summary=summary,
        content_html=content,
        image=image,
        regions=tuple(regions),
        categories=tuple(categories),
        advertorial=bool(advertorial),
        language=language,
        local_tz=local_tz,
    )


def get_article(conn: Connection, article_id: str) -> Article | None:
    """One article by id."""
    found = load_articles(conn, ids=[article_id])
    return found[0] if found else None


def count_articles(conn: Connection) -> int:
    """How many articles are stored."""
    return int(conn.execute(select(func.count()).select_from(articles)).scalar_one())


def changed_since(conn: Connection, since: datetime | None) -> list[Article]:
    """Articles inserted or edited after ``since`` (all when ``None``)."""
    query = select(*ARTICLE_COLUMNS)
    if since is not None:
        query = query.where(articles.c.changed_at > since)
    return _hydrate(conn, list(conn.execute(query)))


def last_change(conn: Connection) -> datetime | None:
    """When the newest insert or edit happened."""
    return conn.execute(select(func.max(articles.c.changed_at))).scalar_one_or_none()
