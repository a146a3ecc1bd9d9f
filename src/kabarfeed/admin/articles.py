"""Articles in the console: search and filter, one article with its feeds and
editions, editorial corrections of the classification (kept beside the
article, surviving re-ingest), unpublish and republish. Every change is
audited; feeds follow at the next build."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from kabarfeed.admin import audit
from kabarfeed.admin.audit import Actor
from kabarfeed.config import Config
from kabarfeed.errors import NotFoundError
from kabarfeed.models import Article
from kabarfeed.store import Database, overrides, pushapi
from kabarfeed.store.articles import get_article
from kabarfeed.store.schema import (
    article_categories,
    article_regions,
    articles,
    deliveries,
    feed_builds,
)
from kabarfeed.subscribers import check_categories, check_regions

PAGE = 50


@dataclass(frozen=True, slots=True)
class ArticleQuery:
    """The article list's filters; empty ones do not filter."""

    text: str = ""
    source: str = ""
    region: str = ""
    category: str = ""
    advertorial: bool | None = None
    since: date | None = None
    until: date | None = None
    page: int = 0


@dataclass(frozen=True, slots=True)
class ArticleLine:
    """One row of the article list."""

    id: str
    title: str
    source: str
    published: datetime
    first_seen: datetime
    regions: tuple[str, ...]
    categories: tuple[str, ...]
    advertorial: bool
    corrected: bool


@dataclass(frozen=True, slots=True)
class ArticleRecord:
    """The article page: the article, its correction, feeds and editions."""

    article: Article
    override: overrides.Override | None
    feeds: tuple[str, ...]
    editions: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True, slots=True)
class Unpublished:
    """An unpublished article (its content is gone; its identity is kept)."""

    article_id: str
    source: str
    guid: str | None
    unpublished_at: datetime


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def search(db: Database, query: ArticleQuery) -> list[ArticleLine]:
    """One page of matching articles, newest first seen first."""
    a = articles.c
    ids = select(a.id).order_by(a.first_seen_at.desc(), a.id.desc())
    if query.text:
        ids = ids.where(func.lower(a.title).contains(query.text.lower(), autoescape=True))
    if query.source:
        ids = ids.where(a.source == query.source)
    if query.region:
        ids = ids.where(
            a.id.in_(
                select(article_regions.c.article_id).where(article_regions.c.region == query.region)
            )
        )
    if query.category:
        ids = ids.where(
            a.id.in_(
                select(article_categories.c.article_id).where(
                    article_categories.c.category == query.category
                )
            )
        )
    if query.advertorial is not None:
        ids = ids.where(a.advertorial == query.advertorial)
    if query.since:
        ids = ids.where(a.first_seen_at >= _day_start(query.since))
    if query.until:
        ids = ids.where(a.first_seen_at < _day_start(query.until + timedelta(days=1)))
    ids = ids.limit(PAGE).offset(max(0, min(query.page, 1000)) * PAGE)
    with db.connect() as conn:
        found = list(conn.execute(ids).scalars())
        corrected = overrides.overridden(conn, found)
        lines = []
        for article_id in found:
            article = get_article(conn, article_id)
            if article is None:
                continue
            lines.append(
                ArticleLine(
                    article.id,
                    article.title,
                    article.source,
                    article.published,
                    article.first_seen,
                    article.regions,
                    article.categories,
                    article.advertorial,
                    article_id in corrected,
                )
            )
    return lines


def sources(db: Database) -> list[str]:
    """Every source name with stored articles (for the filter)."""
    with db.connect() as conn:
        return sorted(conn.execute(select(articles.c.source).distinct()).scalars())


def record(db: Database, article_id: str) -> ArticleRecord:
    """The article page's data; :class:`NotFoundError` when unknown."""
    with db.connect() as conn:
        article = get_article(conn, article_id)
        if article is None:
            raise NotFoundError(f"no article {article_id}")
        rows = conn.execute(
            select(feed_builds.c.path, feed_builds.c.item_ids).where(
                feed_builds.c.item_ids.contains(article_id, autoescape=True)
            )
        ).all()
        feeds = tuple(sorted(path for path, ids in rows if article_id in _ids(ids)))
        d = deliveries.c
        found = conn.execute(
            select(d.local_date, d.state, func.count())
            .where(d.article_ids.contains(f'"{article_id}"', autoescape=True))
            .group_by(d.local_date, d.state)
            .order_by(d.local_date.desc())
        ).all()
        editions = tuple((str(day), str(state), int(n)) for day, state, n in found)
        return ArticleRecord(article, overrides.get(conn, article_id), feeds, editions)


def _ids(text: str | None) -> set[str]:
    tokens = (text or "").replace('"', " ").replace("[", " ").replace("]", " ").replace(",", " ")
    return {t.partition(":")[0] for t in tokens.split()}


def _summary(c: overrides.Classification | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "regions": list(c.regions),
        "categories": list(c.categories),
        "advertorial": c.advertorial,
    }


def correct(
    db: Database,
    config: Config,
    article_id: str,
    actor: Actor,
    *,
    regions: tuple[str, ...] | None,
    categories: tuple[str, ...] | None,
    advertorial: bool | None,
    now: datetime,
) -> overrides.Override:
    """Set an editor's correction (``None`` parts follow the classifier);
    :class:`InputError` for unknown slugs, :class:`NotFoundError` if unknown."""
    taxonomy = config.taxonomy
    regions = check_regions(regions, taxonomy) if regions is not None else None
    categories = check_categories(categories, taxonomy) if categories is not None else None
    with db.begin() as conn:
        before = overrides.current(conn, article_id)
        if before is None:
            raise NotFoundError(f"no article {article_id}")
        done = overrides.set_override(
            conn,
            article_id,
            regions=regions,
            categories=categories,
            advertorial=advertorial,
            by=actor.name,
            now=now,
        )
        audit.record(
            conn,
            actor,
            "article.correct",
            article_id,
            before=_summary(before),
            after=_summary(done.result()),
            now=now,
        )
    return done


def clear_correction(db: Database, article_id: str, actor: Actor, *, now: datetime) -> bool:
    """Back to the classifier's decision; whether there was a correction."""
    with db.begin() as conn:
        before = overrides.current(conn, article_id)
        found = overrides.clear(conn, article_id, now=now)
        if found is None:
            return False
        audit.record(
            conn,
            actor,
            "article.correct_clear",
            article_id,
            before=_summary(before),
            after=_summary(found.auto),
            now=now,
        )
    return True


def unpublish(db: Database, article_id: str, actor: Actor, *, now: datetime) -> bool:
    """Take the article out of every feed (next build), archive and unsent
    edition (the push API's tombstones: a re-ingest does not bring it back)."""
    with db.begin() as conn:
        article = get_article(conn, article_id)
        if article is None or not pushapi.bury(conn, article_id, now=now):
            return False
        audit.record(
            conn,
            actor,
            "article.unpublish",
            article_id,
            before={"title": article.title, "source": article.source, "url": article.url},
            after={"published": False},
            now=now,
        )
    return True


def send_breaking(
    config: Config, db: Database, article_id: str, actor: Actor, *, now: datetime
) -> int | None:
    """Mark the article breaking news from the console: queue its alerts under
    the same rules as a push (matching readers taking alerts, daily cap, quiet
    hours, once per article and reader); audited. Returns how many alerts were
    queued, ``None`` when there is no such article."""
    from kabarfeed.delivery.breaking import enqueue_alerts

    with db.connect() as conn:
        article = get_article(conn, article_id)
    if article is None:
        return None
    queued = enqueue_alerts(config, db, [article], now)
    with db.begin() as conn:
        audit.record(
            conn,
            actor,
            "article.breaking",
            article_id,
            before={"title": article.title},
            after={"alerts_queued": queued},
            now=now,
        )
    return queued


def republish(db: Database, article_id: str, actor: Actor, *, now: datetime) -> int:
    """Lift an unpublished article's tombstones: its source's next fetch (or
    the CMS's next push) brings it back. Returns how many keys were lifted."""
    t = pushapi.article_tombstones
    with db.begin() as conn:
        keys = list(conn.execute(select(t.c.key).where(t.c.article_id == article_id)).scalars())
        pushapi.unburied(conn, keys)
        if keys:
            audit.record(
                conn,
                actor,
                "article.republish",
                article_id,
                before={"published": False},
                after={"published": "at the next fetch"},
                now=now,
            )
    return len(keys)


def unpublished(db: Database, limit: int = 100) -> list[Unpublished]:
    """Recently unpublished articles, newest first."""
    t = pushapi.article_tombstones
    query = (
        select(t.c.article_id, t.c.source, func.max(t.c.guid), func.max(t.c.unpublished_at))
        .group_by(t.c.article_id, t.c.source)
        .order_by(func.max(t.c.unpublished_at).desc())
        .limit(limit)
    )
    with db.connect() as conn:
        return [Unpublished(*row) for row in conn.execute(query).all()]
