"""The list of published feeds, grouped for people: all, regions (each with its
region x category feeds), categories. Shared by the OPML file and the index page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kabarfeed.feeds.render import MEDIA_TYPES, FeedSite, feed_title, xml_safe
from kabarfeed.feeds.selection import ALL, Selection, region_order


@dataclass(frozen=True, slots=True)
class FeedLink:
    """One format of one feed."""

    format: str
    url: str
    media_type: str


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """One feed: its names, article count and links (in the configured formats)."""

    selection: Selection
    name: str
    title: str
    count: int
    links: tuple[FeedLink, ...]

    @property
    def preferred(self) -> FeedLink:
        """The link to offer when only one fits (OPML): RSS, else Atom, else JSON."""
        return min(self.links, key=lambda link: ("rss", "atom", "json").index(link.format))


@dataclass(frozen=True, slots=True)
class RegionGroup:
    """A region feed, its depth in the tree, and its region x category feeds."""

    feed: FeedInfo
    depth: int
    pairs: tuple[FeedInfo, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every published feed, grouped."""

    all: FeedInfo
    regions: tuple[RegionGroup, ...]
    categories: tuple[FeedInfo, ...]


def _info(
    site: FeedSite,
    counts: Mapping[Selection, int],
    selection: Selection,
    formats: Sequence[str],
) -> FeedInfo:
    region = site.taxonomy.region(selection.region) if selection.region else None
    category = site.taxonomy.category(selection.category) if selection.category else None
    name = xml_safe(category.name if category else region.name if region else site.title)
    links = tuple(FeedLink(fmt, site.url(selection.path(fmt)), MEDIA_TYPES[fmt]) for fmt in formats)
    return FeedInfo(selection, name, feed_title(site, selection), counts.get(selection, 0), links)


def build_catalog(
    site: FeedSite, counts: Mapping[Selection, int], formats: Sequence[str]
) -> Catalog:
    """Group the existing feeds (``counts``' keys) in taxonomy order
    (province, then its cities)."""
    existing = set(counts)
    groups = []
    for slug, depth in region_order(site.taxonomy):
        pairs = tuple(
            _info(site, counts, Selection(slug, c.slug), formats)
            for c in site.taxonomy.categories
            if Selection(slug, c.slug) in existing
        )
        feed = _info(site, counts, Selection(region=slug), formats)
        groups.append(RegionGroup(feed, depth, pairs))
    categories = tuple(
        _info(site, counts, Selection(category=c.slug), formats) for c in site.taxonomy.categories
    )
    return Catalog(_info(site, counts, ALL, formats), tuple(groups), categories)
