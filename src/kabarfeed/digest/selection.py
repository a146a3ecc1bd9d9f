"""Which articles go into an edition. Pure: (subscriber, candidates, cut-offs, config).

Matching: a subscriber's regions (a province matches its cities) and categories
are independent filters, each empty meaning "everything". The window is
``(since, cutoff]`` on *first seen* time, so an article first seen one minute
after a cut-off lands in the next edition: never lost, never repeated.
Articles published more than ``max_age`` before the cut-off are left out.

A *welcome edition* (:func:`select_latest`) instead holds the newest N
matching articles whatever their age.

Sections follow the subscriber's regions, then categories, in their order; an
article appears once, in its first matching section. A subscriber without
regions or categories gets one section per province (then "other").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kabarfeed.config import DigestConfig
from kabarfeed.models import Article, Subscriber, Taxonomy


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and its articles (newest published first)."""

    kind: str  # "region", "category" or "other"
    slug: str
    title: str
    articles: tuple[Article, ...]


@dataclass(frozen=True, slots=True)
class Selection:
    """An edition's content: sections in order, capped at ``max_articles``.

    ``articles`` is the flat, ordered tuple handed to the renderer;
    ``total_matching`` counts every match before the cap (for the "more" link).
    """

    since: datetime
    cutoff: datetime
    sections: tuple[Section, ...]
    total_matching: int

    @property
    def articles(self) -> tuple[Article, ...]:
        """Every selected article, section by section."""
        return tuple(a for s in self.sections for a in s.articles)


@dataclass(frozen=True, slots=True)
class _Bucket:
    kind: str
    slug: str
    title: str
    regions: frozenset[str] | None  # None: any region
    categories: frozenset[str] | None  # None: any category

    def accepts(self, article: Article) -> bool:
        ok_region = self.regions is None or not self.regions.isdisjoint(article.regions)
        ok_cat = self.categories is None or not self.categories.isdisjoint(article.categories)
        return ok_region and ok_cat


def edition_since(
    previous_cutoff: datetime | None, cutoff: datetime, config: DigestConfig
) -> datetime:
    """Start of the edition's window: the previous cut-off, or ``first_window`` back."""
    return previous_cutoff if previous_cutoff is not None else cutoff - config.first_window


def region_scope(regions: Sequence[str], taxonomy: Taxonomy) -> frozenset[str]:
    """The region slugs matched by ``regions``: each one plus its descendants."""
    return frozenset(s for r in regions for s in taxonomy.with_descendants(r))


@dataclass(frozen=True, slots=True)
class _Filter:
    """A subscriber's region scope and categories, computed once per selection."""

    regions: frozenset[str] | None  # None: any region
    categories: frozenset[str] | None  # None: any category

    @classmethod
    def of(cls, subscriber: Subscriber, taxonomy: Taxonomy) -> _Filter:
        scope = region_scope(subscriber.regions, taxonomy) if subscriber.regions else None
        return cls(scope, frozenset(subscriber.categories) or None)

    def accepts(self, article: Article) -> bool:
        if self.regions is not None and self.regions.isdisjoint(article.regions):
            return False
        return self.categories is None or not self.categories.isdisjoint(article.categories)


def matches(subscriber: Subscriber, article: Article, taxonomy: Taxonomy) -> bool:
    """Whether ``article`` matches the subscriber's region and category filters."""
    return _Filter.of(subscriber, taxonomy).accepts(article)


def _buckets(subscriber: Subscriber, taxonomy: Taxonomy) -> list[_Bucket]:
    wanted_cats = frozenset(subscriber.categories) or None
    wanted_regions = region_scope(subscriber.regions, taxonomy) or None
    out: list[_Bucket] = []
    for slug in subscriber.regions:
        region = taxonomy.region(slug)
        title = region.name if region else slug
        out.append(_Bucket("region", slug, title, region_scope([slug], taxonomy), wanted_cats))
    for slug in subscriber.categories:
        category = taxonomy.category(slug)
        title = category.name if category else slug
        out.append(_Bucket("category", slug, title, wanted_regions, frozenset([slug])))
    if not out:
        for root in taxonomy.roots():
            scope = region_scope([root.slug], taxonomy)
            out.append(_Bucket("region", root.slug, root.name, scope, None))
    out.append(_Bucket("other", "", "", wanted_regions, wanted_cats))
    return out


def _in_window(article: Article, since: datetime, cutoff: datetime, max_age: timedelta) -> bool:
    fresh = article.published >= cutoff - max_age
    return since < article.first_seen <= cutoff and fresh


def _newest_first(articles: Sequence[Article]) -> list[Article]:
    return sorted(articles, key=lambda a: (a.published, a.id), reverse=True)


def select_articles(
    subscriber: Subscriber,
    candidates: Sequence[Article],
    *,
    since: datetime,
    cutoff: datetime,
    taxonomy: Taxonomy,
    config: DigestConfig,
    max_age: timedelta | None = None,
) -> Selection:
    """The edition for ``subscriber`` over ``(since, cutoff]`` from ``candidates``.

    Candidates may be a superset (any order, duplicates allowed): every filter
    is applied here, so the result depends only on the arguments. ``max_age``
    (default ``config.max_age``) bounds how long before the cut-off an article
    may have been published (a weekly edition reaches back its whole week).
    """
    oldest = config.max_age if max_age is None else max_age
    wanted = _Filter.of(subscriber, taxonomy)
    seen: set[str] = set()
    pool: list[Article] = []
    for a in _newest_first(candidates):
        if a.id not in seen and _in_window(a, since, cutoff, oldest):
            if wanted.accepts(a):
                pool.append(a)
            seen.add(a.id)
    grouped = _group(pool, _buckets(subscriber, taxonomy))
    return Selection(since, cutoff, _cap(grouped, config.max_articles), len(pool))


def select_latest(
    subscriber: Subscriber,
    candidates: Sequence[Article],
    *,
    limit: int,
    cutoff: datetime,
    taxonomy: Taxonomy,
) -> Selection:
    """A welcome edition: the ``limit`` newest matching articles first seen by
    ``cutoff``, whatever their age, in the subscriber's sections.

    The window is ``(since, cutoff]`` with ``since`` just before the oldest
    selected article's first-seen time, so the next edition, which starts at
    ``cutoff``, can never repeat one. ``total_matching`` counts every match.
    """
    wanted = _Filter.of(subscriber, taxonomy)
    seen: set[str] = set()
    pool: list[Article] = []
    for a in _newest_first(candidates):
        if a.id not in seen and a.first_seen <= cutoff and wanted.accepts(a):
            pool.append(a)
        seen.add(a.id)
    chosen = pool[:limit]
    grouped = _group(chosen, _buckets(subscriber, taxonomy))
    oldest = min((a.first_seen for a in chosen), default=cutoff)
    since = min(oldest - timedelta(microseconds=1), cutoff)
    return Selection(since, cutoff, tuple(grouped), len(pool))


def _group(pool: list[Article], buckets: list[_Bucket]) -> list[Section]:
    placed: dict[int, list[Article]] = {i: [] for i in range(len(buckets))}
    for article in pool:
        index = next((i for i, b in enumerate(buckets) if b.accepts(article)), None)
        if index is not None:
            placed[index].append(article)
    return [
        Section(b.kind, b.slug, b.title, tuple(placed[i]))
        for i, b in enumerate(buckets)
        if placed[i]
    ]


def _cap(sections: list[Section], limit: int) -> tuple[Section, ...]:
    out: list[Section] = []
    room = limit
    for section in sections:
        if room <= 0:
            break
        kept = section.articles[:room]
        out.append(Section(section.kind, section.slug, section.title, kept))
        room -= len(kept)
    return tuple(out)


def sections_of(
    subscriber: Subscriber, articles: Sequence[Article], taxonomy: Taxonomy
) -> tuple[Section, ...]:
    """Re-derive the sections of an already selected, ordered article tuple
    (the renderer receives only the flat tuple)."""
    return tuple(_group(list(articles), _buckets(subscriber, taxonomy)))
