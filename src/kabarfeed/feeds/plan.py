"""The builder's decisions, pure: which feeds a build renders and removes.

A feed is rendered again when a changed article belongs to it now, when it
showed a changed or deleted one (:func:`old_feeds`: the old feeds of a
reclassified article) or when its files are missing (:func:`missing_feeds`).
Changes the last build already took in are :func:`settled`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kabarfeed.feeds.queries import Changed, Items, token_id
from kabarfeed.feeds.selection import FORMATS, Matcher, Selection, selection_of

FEED_SUFFIXES = frozenset("." + ext for ext in FORMATS.values())


@dataclass(frozen=True, slots=True)
class Work:
    """What one build renders."""

    full: bool
    render: Sequence[Selection]
    """The feeds to render, in :func:`~feeds.selection.sort_key` order."""
    counts: Mapping[Selection, int]
    """Every feed's article count before rendering."""
    items: Mapping[Selection, Items] = field(default_factory=dict)
    """Every feed's newest items and count when read for all at once (else
    each feed rendered asks the store)."""
    changed: frozenset[str] = frozenset()
    """The articles changed since the last build (an editor's
    correction keeps the revision: their rendered entries are stale)."""


def existing(counts: Mapping[Selection, int]) -> dict[Selection, int]:
    """The feeds that exist among ``counts``: a pair feed only with articles."""
    return {s: n for s, n in counts.items() if n or s.kind != "pair"}


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


def touched(
    matcher: Matcher, changed: Iterable[Changed], shown: Mapping[str, Sequence[str]], gone: set[str]
) -> set[Selection]:
    """The feeds ``changed`` articles belong to now, and those that showed
    one of them or a ``gone`` (deleted) article."""
    ids = {c.id for c in changed} | gone
    now = {s for c in changed for s in matcher.selections(c.regions, c.categories)}
    return now | old_feeds(shown, ids)


def counted(
    counts: Mapping[Selection, int], matcher: Matcher, inserted: Iterable[Changed]
) -> dict[Selection, int]:
    """``counts`` with the ``inserted`` articles added to their feeds."""
    out = dict(counts)
    for article in inserted:
        for selection in matcher.selections(article.regions, article.categories):
            out[selection] = out.get(selection, 0) + 1
    return out


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


def inserted_since(changed: Sequence[Changed], newest: datetime | None) -> int:
    """How many ``changed`` articles were first seen after ``newest``
    (``None``: the store was empty)."""
    return sum(newest is None or c.first_seen > newest for c in changed)


def updates(changed: Sequence[Changed], newest: datetime | None) -> bool:
    """Whether one of ``changed`` was stored before ``newest`` (an edit or a
    reclassification: it may have left feeds it was not shown in)."""
    return newest is not None and any(c.first_seen <= newest for c in changed)
