"""Which feeds exist and which articles each one carries. Pure.

A :class:`Selection` is one slice of the news: the whole site, a region (with
its descendant regions), a category, or a region x category pair. Its public
path is the same on disk and on the web (``feeds/region/balikpapan.rss``).
:class:`Matcher` maps an article's slugs to the feeds it belongs to, and a
feed to the region slugs its articles have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kabarfeed.models import Taxonomy

FORMATS: Mapping[str, str] = {"rss": "rss", "atom": "atom", "json": "json"}
"""Format name -> file extension."""


@dataclass(frozen=True, slots=True, order=True)
class Selection:
    """One feed's slice: ``region`` and/or ``category`` slugs (both ``None``: all)."""

    region: str | None = None
    category: str | None = None

    @property
    def kind(self) -> str:
        """``"all"``, ``"region"``, ``"category"`` or ``"pair"``."""
        if self.region and self.category:
            return "pair"
        if self.region:
            return "region"
        return "category" if self.category else "all"

    @property
    def stem(self) -> str:
        """The path without extension, relative to the output folder."""
        if self.region and self.category:
            return f"feeds/region/{self.region}/{self.category}"
        if self.region:
            return f"feeds/region/{self.region}"
        if self.category:
            return f"feeds/category/{self.category}"
        return "feeds/all"

    def path(self, fmt: str) -> str:
        """The relative path of this feed in format ``fmt`` (``"rss"``, ...)."""
        return f"{self.stem}.{FORMATS[fmt]}"


ALL = Selection()


def selection_of(path: str) -> Selection | None:
    """The selection whose document is at ``path`` (``None``: not a feed path)."""
    stem, dot, ext = path.rpartition(".")
    parts = stem.split("/")
    if not dot or ext not in FORMATS.values() or parts[0] != "feeds":
        return None
    if parts[1:] == ["all"]:
        return ALL
    if len(parts) == 3 and parts[1] in ("region", "category"):
        return Selection(**{parts[1]: parts[2]})
    if len(parts) == 4 and parts[1] == "region":
        return Selection(parts[2], parts[3])
    return None


def sort_key(selection: Selection) -> tuple[int, str, str]:
    """All first, then regions, categories and pairs, each alphabetical."""
    rank = {"all": 0, "region": 1, "category": 2, "pair": 3}[selection.kind]
    return rank, selection.region or "", selection.category or ""


def base_selections(taxonomy: Taxonomy) -> tuple[Selection, ...]:
    """The feeds that always exist: all, every region, every category."""
    regions = tuple(Selection(region=r.slug) for r in taxonomy.regions)
    categories = tuple(Selection(category=c.slug) for c in taxonomy.categories)
    return (ALL, *regions, *categories)


class Matcher:
    """Maps an article's region/category slugs to the selections it belongs to.

    Region feeds include descendants, so an article tagged ``balikpapan`` is
    in ``balikpapan`` and ``kalimantan-timur``. Slugs no longer in the
    taxonomy are ignored. Results are cached per slug combination.
    """

    def __init__(self, taxonomy: Taxonomy) -> None:
        self._up = {r.slug: (r.slug, *taxonomy.ancestors(r.slug)) for r in taxonomy.regions}
        self._categories = frozenset(c.slug for c in taxonomy.categories)
        self._cache: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[Selection, ...]] = {}
        self._made: dict[tuple[str | None, str | None], Selection] = {}
        self._down = {r.slug: taxonomy.with_descendants(r.slug) for r in taxonomy.regions}

    def regions(self, selection: Selection) -> tuple[str, ...]:
        """The region slugs of ``selection``'s articles: its region and those
        below it (empty: any region)."""
        return self._down.get(selection.region, ()) if selection.region else ()

    def selections(
        self, regions: Iterable[str], categories: Iterable[str]
    ) -> tuple[Selection, ...]:
        """Every selection an article with these slugs appears in (incl. all)."""
        key = (tuple(regions), tuple(categories))
        found = self._cache.get(key)
        if found is None:
            found = self._compute(*key)
            self._cache[key] = found
        return found

    def _compute(
        self, regions: tuple[str, ...], categories: tuple[str, ...]
    ) -> tuple[Selection, ...]:
        expanded: list[str | None] = [None]
        expanded += sorted({up for r in regions for up in self._up.get(r, ())})
        cats: list[str | None] = [None]
        cats += sorted({c for c in categories if c in self._categories})
        # all, regions, categories, pairs: the order ``sort_key`` gives
        keys = [(r, None) for r in expanded] + [(r, c) for r in expanded for c in cats[1:]]
        keys.sort(key=lambda k: (k[0] is not None) + 2 * (k[1] is not None))
        return tuple(self._selection(*k) for k in keys)

    def _selection(self, region: str | None, category: str | None) -> Selection:
        """One shared instance per slug pair (building frozen dataclasses is slow)."""
        found = self._made.get((region, category))
        if found is None:
            found = self._made[(region, category)] = Selection(region, category)
        return found


def region_order(taxonomy: Taxonomy) -> tuple[tuple[str, int], ...]:
    """Region slugs depth-first (province, then its cities) with their depth."""
    out: list[tuple[str, int]] = []

    def walk(slug: str, depth: int) -> None:
        out.append((slug, depth))
        for child in taxonomy.children(slug):
            walk(child.slug, depth + 1)

    for root in taxonomy.roots():
        walk(root.slug, 0)
    return tuple(out)
