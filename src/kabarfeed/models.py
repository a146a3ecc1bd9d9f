"""Frozen dataclasses handed from one stage to the next.

Sources yield :class:`RawArticle`; ingest turns them into :class:`Article`;
feeds and the digest read articles back; the digest produces editions that the
delivery engine sends. All datetimes are timezone-aware.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime (injected for testability)."""


@dataclass(frozen=True, slots=True)
class Image:
    """An article's lead image."""

    url: str
    caption: str | None = None
    type: str | None = None
    length: int | None = None


@dataclass(frozen=True, slots=True)
class RawArticle:
    """One article as a source found it, before normalisation.

    ``regions``/``categories`` are explicit hints from metadata (slugs, names
    or free-text terms); ``dateline_city`` is the city named in the body's
    dateline (strongest region signal); ``advertorial`` is ``None`` when the
    source does not say.
    """

    source: str
    origin: str
    title: str
    guid: str | None = None
    url: str | None = None
    author: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    summary: str | None = None
    content_html: str | None = None
    image: Image | None = None
    regions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    dateline_city: str | None = None
    advertorial: bool | None = None
    language: str | None = None
    local_tz: str | None = None
    warnings: tuple[str, ...] = ()
    breaking: bool = False
    """Marked breaking news by the source (front matter ``breaking: true``):
    ingest queues breaking alerts for it (:mod:`kabarfeed.delivery.breaking`)."""
    floating_time: bool = False
    """``published``/``updated`` were written without a zone and read in the
    source's default zone; ingest re-reads their wall-clock time in the zone of
    the region the article is classified into (19:00 in Malang is WIB)."""


@dataclass(frozen=True, slots=True)
class Article:
    """A normalised, classified article as stored."""

    id: str
    source: str
    url: str
    title: str
    published: datetime
    updated: datetime
    first_seen: datetime
    content_hash: str
    guid: str | None = None
    author: str | None = None
    summary: str = ""
    content_html: str = ""
    image: Image | None = None
    regions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    advertorial: bool = False
    language: str = "id"
    local_tz: str | None = None


@dataclass(frozen=True, slots=True)
class Region:
    """A node of the region tree (province -> city/regency)."""

    slug: str
    name: str
    timezone: str
    parent: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Category:
    """A flat category with detection keywords."""

    slug: str
    name: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """Regions and categories, with tree helpers. Pure and immutable."""

    regions: tuple[Region, ...] = ()
    categories: tuple[Category, ...] = ()
    _regions: Mapping[str, Region] = field(init=False, repr=False, compare=False)
    _categories: Mapping[str, Category] = field(init=False, repr=False, compare=False)
    _children: Mapping[str, tuple[Region, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # lookups by slug are made per article and per feed: index them once
        regions: dict[str, Region] = {}
        for r in self.regions:
            regions.setdefault(r.slug, r)
        categories: dict[str, Category] = {}
        for c in self.categories:
            categories.setdefault(c.slug, c)
        children: dict[str, list[Region]] = {}
        for r in self.regions:
            if r.parent:
                children.setdefault(r.parent, []).append(r)
        object.__setattr__(self, "_regions", regions)
        object.__setattr__(self, "_categories", categories)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    def region(self, slug: str) -> Region | None:
        """The region with ``slug``, or ``None``."""
        return self._regions.get(slug)

    def category(self, slug: str) -> Category | None:
        """The category with ``slug``, or ``None``."""
        return self._categories.get(slug)

    def ancestors(self, slug: str) -> tuple[str, ...]:
        """Slugs of the parents of ``slug``, nearest first."""
        out: list[str] = []
        node = self.region(slug)
        while node is not None and node.parent and node.parent not in out:
            out.append(node.parent)
            node = self.region(node.parent)
        return tuple(out)

    def descendants(self, slug: str) -> tuple[str, ...]:
        """Slugs of every region below ``slug`` (children, grandchildren...)."""
        out: list[str] = []
        frontier = [slug]
        while frontier:
            current = frontier.pop()
            for r in self._children.get(current, ()):
                if r.slug not in out:
                    out.append(r.slug)
                    frontier.append(r.slug)
        return tuple(out)

    def with_descendants(self, slug: str) -> tuple[str, ...]:
        """``slug`` itself followed by its descendants."""
        return (slug, *self.descendants(slug))

    def roots(self) -> tuple[Region, ...]:
        """Regions without a parent (provinces)."""
        return tuple(r for r in self.regions if not r.parent)

    def children(self, slug: str) -> tuple[Region, ...]:
        """Direct children of ``slug``."""
        return self._children.get(slug, ())


class SubscriberStatus(enum.StrEnum):
    """Lifecycle of a subscriber."""

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class Consent:
    """Proof of consent (Indonesian PDP law): when, how, from where."""

    at: datetime
    method: str  # "cli", "import", "web", "api"
    ip: str | None = None
    user_agent: str | None = None
    wording_version: str | None = None


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A digest subscriber. Empty ``regions``/``categories`` mean everything."""

    id: int
    email: str
    token: str
    timezone: str
    send_at: str  # "HH:MM" local time
    language: str
    status: SubscriberStatus
    created_at: datetime
    name: str | None = None
    regions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    bounce_count: int = 0
    consent: Consent | None = None
    frequency: str = "daily"
    """``daily``, ``weekly`` or ``breaking`` (alerts only; see :mod:`kabarfeed.digest.schedule`)."""
    weekly_day: int = 0
    """The weekday of a weekly edition, Monday 0 ... Sunday 6."""
    frequency_since: datetime | None = None
    """When the frequency last changed (``None``: never)."""
    breaking_alerts: bool = False
    """Whether a daily or weekly reader also receives breaking alerts."""


class DeliveryState(enum.StrEnum):
    """Outbox states of one edition's delivery."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"
    """The connection failed after the final dot: the server may have the message."""


@dataclass(frozen=True, slots=True)
class Edition:
    """One subscriber's digest for one local date: which articles, up to when."""

    subscriber_id: int
    local_date: str  # YYYY-MM-DD in the subscriber's zone
    cutoff: datetime
    since: datetime
    article_ids: tuple[str, ...] = field(default_factory=tuple)
