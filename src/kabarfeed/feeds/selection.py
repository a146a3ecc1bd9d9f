"""Which feeds exist and which articles each one carries. Pure.

A :class:`Selection` is one slice of the news: the whole site, a region (with
its descendant regions), a category, or a region x category pair. Its public
path is the same on disk and on the web (``feeds/region/balikpapan.rss``).

:func:`plan` walks a light index of every stored article, newest first, once:
it counts the articles of every selection and keeps the ids of the newest
``items`` of each. The builder renders from that plan and decides which feeds
changed by comparing item ids, so a full and an incremental build agree.

Between builds, :func:`touched` and :func:`replan` carry the previous plan
forward from the articles changed since (a :class:`Change` each) instead of
walking every article again: new articles are merged into the item lists
of the selections they belong to and counted; a list that lost an edited or
reclassified article while more articles exist behind it is left for the
caller to query afresh, and edits ask for a recount.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import NamedTuple

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


class IndexRow(NamedTuple):
    """One stored article as the planner sees it (no content)."""

    id: str
    regions: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass(slots=True)
class Slice:
    """What the planner found for one selection."""

    count: int = 0
    ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Plan:
    """Every feed that exists, with its article count and newest item ids."""

    slices: Mapping[Selection, Slice]

    def ids(self, selection: Selection) -> tuple[str, ...]:
        """The ids of ``selection``'s items, newest first (empty if unknown)."""
        found = self.slices.get(selection)
        return tuple(found.ids) if found else ()

    def count(self, selection: Selection) -> int:
        """How many stored articles ``selection`` matches."""
        found = self.slices.get(selection)
        return found.count if found else 0

    @property
    def selections(self) -> tuple[Selection, ...]:
        """Every existing selection, in a stable order."""
        return tuple(sorted(self.slices, key=sort_key))

    def counts(self) -> dict[Selection, int]:
        """Every selection's article count."""
        return {s: found.count for s, found in self.slices.items()}

    def updated(
        self,
        taxonomy: Taxonomy,
        ids: Mapping[Selection, Sequence[str]],
        counts: Mapping[Selection, int],
    ) -> Plan:
        """This plan with new ``ids`` for some selections and new ``counts``
        (every selection's); pairs whose count fell to 0 are gone."""
        base = set(base_selections(taxonomy))
        slices: dict[Selection, Slice] = {}
        for selection, count in counts.items():
            if count or selection in base:
                found = ids.get(selection)
                kept = list(found) if found is not None else list(self.ids(selection))
                slices[selection] = Slice(count, kept)
        return Plan(slices)


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


GroupKey = tuple[tuple[str, ...], tuple[str, ...]]
"""An article's (region slugs, category slugs): articles sharing one share feeds."""


def plan(taxonomy: Taxonomy, rows: Iterable[IndexRow], *, items: int) -> Plan:
    """Count and pick the newest ``items`` ids of every selection.

    ``rows`` must come newest first. The result holds the always-present
    feeds (possibly empty) plus every region x category pair with articles.
    """
    ids: list[str] = []
    groups: dict[GroupKey, list[int]] = {}
    for position, (token, regions, categories) in enumerate(rows):
        ids.append(token)
        groups.setdefault((regions, categories), []).append(position)
    return plan_groups(taxonomy, groups, ids.__getitem__, items=items)


def plan_groups(
    taxonomy: Taxonomy,
    groups: Mapping[GroupKey, Sequence[int]],
    token: Callable[[int], str],
    *,
    items: int,
) -> Plan:
    """:func:`plan` from articles already grouped by slug combination: each
    group lists its articles' positions in the newest-first order, ``token``
    gives the item token at a position.

    The per-article work is done by the grouping; each selection merges the
    heads of its groups' position lists.
    """
    matcher = Matcher(taxonomy)
    members: dict[Selection, list[Sequence[int]]] = {s: [] for s in base_selections(taxonomy)}
    for key, positions in groups.items():
        for selection in matcher.selections(*key):
            found = members.get(selection)
            if found is None:
                members[selection] = [positions]
            else:
                found.append(positions)
    slices: dict[Selection, Slice] = {}
    for selection, lists in members.items():
        heads = chain.from_iterable(p if len(p) <= items else p[:items] for p in lists)
        newest = heapq.nsmallest(items, heads)
        slices[selection] = Slice(sum(map(len, lists)), [token(p) for p in newest])
    return Plan(slices)


def token_id(token: str) -> str:
    """The article id of an item token (``id:revision``)."""
    return token.partition(":")[0]


@dataclass(frozen=True, slots=True)
class Change:
    """An article inserted or edited since the last build, as the planner sees it.

    ``kind`` is ``"new"`` (inserted since), ``"edited"`` (edited since: it may
    have left selections, so counts must be recounted) or ``"seen"`` (an
    insert the last build already saw, re-read for safety).
    """

    token: str
    published: datetime
    regions: tuple[str, ...]
    categories: tuple[str, ...]
    kind: str = "new"

    @property
    def id(self) -> str:
        """The article id."""
        return token_id(self.token)


def unseen(previous: Plan, changes: Sequence[Change], matcher: Matcher) -> list[Change]:
    """``changes`` without the re-read ones (``seen``: stamped before the last
    build, never edited) that every selection they belong to already holds,
    at that revision, among its previous items: the last build took them
    in, and carrying the plan over them again changes nothing."""
    return [
        c
        for c in changes
        if c.kind != "seen"
        or any(c.token not in previous.ids(s) for s in matcher.selections(c.regions, c.categories))
    ]


def touched(previous: Plan, changes: Sequence[Change], matcher: Matcher) -> set[Selection]:
    """Selections a change may alter: those the changed articles belong to now,
    and those whose items hold an older revision of one of them."""
    out = {s for c in changes for s in matcher.selections(c.regions, c.categories)}
    # an article never edited has had one revision: where previous items
    # hold it, they hold that one. Only edits can leave a stale token behind.
    current = {c.id: c.token for c in changes if c.kind == "edited"}
    if current:
        for selection, found in previous.slices.items():
            if any(current.get(token_id(t), t) != t for t in found.ids):
                out.add(selection)
    return out


@dataclass(frozen=True, slots=True)
class Replan:
    """The outcome of :func:`replan`.

    ``ids`` holds the new items of every touched selection, ``None`` where
    the previous items are not enough to know (the caller queries those);
    ``counts`` every selection's count, ``None`` when edits ask for a recount.
    """

    ids: Mapping[Selection, tuple[str, ...] | None]
    counts: Mapping[Selection, int] | None


def replan(
    previous: Plan,
    changes: Sequence[Change],
    selections: Collection[Selection],
    published: Mapping[str, datetime],
    matcher: Matcher,
    *,
    items: int,
) -> Replan:
    """Carry ``previous`` forward over ``changes`` for the touched ``selections``.

    ``published`` gives the publication time of every article id that
    :func:`times_needed` names (a missing one is an article gone from the
    store). Items are ordered newest published first, then by id, like the
    store's queries.
    """
    current = {c.id: c for c in changes}
    members = _members(changes, selections, matcher)
    ids = {s: _merge(previous, s, members[s], current, published, items=items) for s in members}
    if any(c.kind == "edited" for c in changes):
        return Replan(ids, None)
    counts = previous.counts()
    for selection, found in members.items():
        counts[selection] = counts.get(selection, 0) + sum(c.kind == "new" for c in found)
    return Replan(ids, counts)


def times_needed(
    previous: Plan, changes: Sequence[Change], selections: Collection[Selection], matcher: Matcher
) -> set[str]:
    """The article ids whose publication time :func:`replan` needs: of a
    selection that only gains new articles, its newest previous item (the
    new ones go in front of it, or the store is asked); of any other, every
    previous item."""
    current = {c.id: c for c in changes}
    needed: set[str] = set()
    for selection, fresh in _members(changes, selections, matcher).items():
        old = previous.ids(selection)
        needed.update(token_id(t) for t in (old[:1] if _gains_only(old, fresh, current) else old))
    return needed


def _members(
    changes: Sequence[Change], selections: Collection[Selection], matcher: Matcher
) -> dict[Selection, list[Change]]:
    """Every touched selection (and any a change belongs to) with its changes."""
    members: dict[Selection, list[Change]] = {s: [] for s in selections}
    for change in changes:
        for selection in matcher.selections(change.regions, change.categories):
            members.setdefault(selection, []).append(change)
    return members


def _gains_only(old: Sequence[str], fresh: Sequence[Change], current: Mapping[str, Change]) -> bool:
    """Whether ``fresh`` only adds new articles to items ``old`` that no
    change touches."""
    return all(c.kind == "new" for c in fresh) and not any(token_id(t) in current for t in old)


def _merge(
    previous: Plan,
    selection: Selection,
    fresh: Sequence[Change],
    current: Mapping[str, Change],
    published: Mapping[str, datetime],
    *,
    items: int,
) -> tuple[str, ...] | None:
    old = previous.ids(selection)
    if _gains_only(old, fresh, current):
        return _in_front(old, fresh, published, items=items)
    kept: dict[str, tuple[datetime, str]] = {}
    for token in old:
        article_id = token_id(token)
        change = current.get(article_id)
        if (change is not None and change.token != token) or article_id not in published:
            if previous.count(selection) > len(old):
                return None  # an article behind the previous items may move up
            continue
        if change is None:
            kept[article_id] = (published[article_id], token)
    for change in fresh:
        kept[change.id] = (change.published, change.token)
    order = sorted(kept.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)
    return tuple(token for _, (_, token) in order[:items])


def _in_front(
    old: Sequence[str], fresh: Sequence[Change], published: Mapping[str, datetime], *, items: int
) -> tuple[str, ...] | None:
    """New articles ``fresh`` ahead of the unchanged items ``old``, when every
    one sorts before ``old``'s newest; ``None`` (ask the store) when one does
    not — a backdated article — or that item is gone."""
    ahead = sorted(fresh, key=lambda c: (c.published, c.id), reverse=True)
    if old and ahead:
        newest = token_id(old[0])
        when = published.get(newest)
        if when is None or (ahead[-1].published, ahead[-1].id) <= (when, newest):
            return None
    return (*(c.token for c in ahead), *old)[:items]


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
