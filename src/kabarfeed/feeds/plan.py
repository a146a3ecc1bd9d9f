"""The builder's decisions, pure: which feeds a build renders, writes and removes.

A feed is rendered again when a changed article belongs to it now or it
showed one (:func:`selection.touched`, :func:`old_feeds`), when its items are
not those it shows (:func:`differing`) or its files are missing
(:func:`missing_feeds`). New articles that all sort before a feed's newest
item join it in front (:func:`joined`); changes the last build already took
in are :func:`settled`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kabarfeed.feeds.queries import Changed, token_id
from kabarfeed.feeds.selection import FORMATS, Matcher, Selection, selection_of
from kabarfeed.store.articles import Slugs

FEED_SUFFIXES = frozenset("." + ext for ext in FORMATS.values())


@dataclass(frozen=True, slots=True)
class Work:
    """What one build renders and removes."""

    full: bool
    counts: Mapping[Selection, int]
    """Every feed that exists, with its article count (for the index page)."""
    render: Sequence[Selection]
    items: Mapping[Selection, Sequence[str]] = field(default_factory=dict)
    """The newest item tokens of every feed to render."""
    links: tuple[Slugs, Slugs] | None = None
    """Every article's region and category slugs, when already read."""
    changed: frozenset[str] = frozenset()
    """The articles changed since the last build (an editor's correction
    keeps the revision: their kept entries are stale)."""


def wanted_paths(counts: Mapping[Selection, int], formats: Sequence[str]) -> set[str]:
    """Every document path the existing feeds publish."""
    return {s.path(f) for s in counts for f in formats}


def missing_feeds(
    counts: Mapping[Selection, int], formats: Sequence[str], present: set[str]
) -> set[Selection]:
    """Feeds with a document or ``.gz`` sibling not on disk."""
    return {
        s
        for s in counts
        for f in formats
        if s.path(f) not in present or s.path(f) + ".gz" not in present
    }


def feed_documents(present: set[str]) -> set[str]:
    """Feed documents (and orphaned ``.gz`` siblings' documents) among ``present``."""
    out = set()
    for path in present:
        name = path.rpartition("/")[2].removesuffix(".gz")
        if os.path.splitext(name)[1] in FEED_SUFFIXES and not name.startswith("."):
            out.add(path.removesuffix(".gz"))
    return out


def old_feeds(shown: Mapping[str, Sequence[str]], ids: set[str]) -> set[Selection]:
    """The feeds whose recorded items hold one of the articles ``ids``."""
    hit = (selection_of(p) for p, items in shown.items() if any(token_id(t) in ids for t in items))
    return {s for s in hit if s is not None}


def settled(
    changed: Changed,
    newest: datetime,
    shown: Mapping[str, Sequence[str]],
    feeds: Sequence[Selection],
    fmt: str,
) -> bool:
    """Whether ``changed``, re-read from the lookback, was taken in by the
    last build: stamped before its newest change and shown, at this
    revision, by every feed it belongs to."""
    return changed.changed <= newest and all(
        changed.token in shown.get(s.path(fmt), ()) for s in feeds
    )


def differing(
    items: Mapping[Selection, Sequence[str]],
    shown: Mapping[str, Sequence[str]],
    formats: Sequence[str],
) -> set[Selection]:
    """The feeds whose newest ``items`` are not those their documents show."""
    return {s for s, ids in items.items() for f in formats if shown.get(s.path(f)) != tuple(ids)}


def counted(
    counts: Mapping[Selection, int],
    matcher: Matcher,
    inserted: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
) -> dict[Selection, int]:
    """``counts`` with the articles of slugs ``inserted`` added."""
    out = dict(counts)
    for regions, categories in inserted:
        for selection in matcher.selections(regions, categories):
            out[selection] = out.get(selection, 0) + 1
    return out


def joined(
    fresh: Sequence[Changed],
    old: Sequence[str],
    published: Mapping[str, datetime],
    items: int,
) -> list[str] | None:
    """A feed's new items when the ``fresh`` articles (inserted since, in the
    feed) all sort before its ``old`` items (``published``: when its newest
    was published); ``None`` when one does not (a backdated article) or the
    newest old item is gone: then the store is asked."""
    ahead = sorted(fresh, key=lambda c: (c.published, c.id), reverse=True)
    ids = {c.id for c in ahead}
    kept = [t for t in old if token_id(t) not in ids]
    if kept and ahead:
        first = token_id(kept[0])
        when = published.get(first)
        if when is None or (ahead[-1].published, ahead[-1].id) <= (when, first):
            return None
    return ([c.token for c in ahead] + kept)[:items]


def inserted_since(changed: Sequence[Changed], newest: datetime | None) -> int:
    """How many ``changed`` articles were first seen after ``newest``."""
    return sum(newest is None or c.first_seen > newest for c in changed)
