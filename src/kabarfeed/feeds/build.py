"""The feed builder: what changed -> which feeds -> render them -> files.

One build, sequential:

1. **What changed**: the articles whose change column moved since the last
   build's marker (inserted, edited, reclassified), and those gone from the
   store (an article count that does not add up); everything on a full build
   (``--all``, the first build, or a changed config or version).
2. **Which feeds**: those the changed articles belong to now and those that
   last showed one of them (the ids each feed shows are recorded), plus any
   feed whose file is missing (:func:`plan_incremental`).
3. **Render** each of those feeds whole from its newest ``items`` articles,
   each article's entries serialised once per build (:mod:`feeds.documents`).
4. **Write** every document atomically with its ``.gz`` sibling, only where
   the bytes differ; remove feeds that no longer exist; then the index page,
   the OPML file, the WebSub ping and last the marker (with what each feed
   shows). A build that stops anywhere leaves valid files, and the next one,
   starting from the same marker, redoes what is missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import feedgen.version
import httpx
from lxml import etree  # type: ignore[import-untyped]
from sqlalchemy import Connection

from kabarfeed import __version__
from kabarfeed.config import Config
from kabarfeed.feeds import queries, writer
from kabarfeed.feeds.catalog import build_catalog
from kabarfeed.feeds.documents import Renderer
from kabarfeed.feeds.index import INDEX_PATH, IndexPage
from kabarfeed.feeds.opml import OPML_PATH, render_opml
from kabarfeed.feeds.queries import token_id
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.selection import (
    FORMATS,
    Matcher,
    Selection,
    contents,
    selection_of,
    sort_key,
    touched,
)
from kabarfeed.models import Clock
from kabarfeed.store import Database
from kabarfeed.store.articles import Slugs

log = logging.getLogger(__name__)
BATCH = 64
"""Feeds whose articles are loaded together (bounds a full build's memory)."""
LOCK_NAME = ".kabarfeed-build.lock"
PING_BATCH = 50
LOOKBACK = timedelta(minutes=5)
"""Changes stamped this long before the last build's newest are read again:
a writer on another machine may commit a change stamped before that build."""
FEED_SUFFIXES = frozenset("." + ext for ext in FORMATS.values())
_RENDERERS: dict[str, Renderer] = {}
"""The last build's renderer, by render fingerprint: an article's entries,
keyed by its item token (id and revision), serve the next build in this
process (up to ``Renderer.max_cached`` of them). 10 new articles then cost
10 renders, not those of every item of the ~50 feeds they reach."""


@dataclass(frozen=True, slots=True)
class BuildReport:
    """How many feed files were written, left unchanged and removed.

    ``written_paths``/``removed_paths`` are relative to the output folder;
    ``pages_written`` counts the index page and OPML file when they changed.
    """

    written: int = 0
    unchanged: int = 0
    removed: int = 0
    full: bool = False
    rendered: int = 0
    pages_written: int = 0
    written_paths: tuple[str, ...] = ()
    removed_paths: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the CLI and logs."""
        kind = "full" if self.full else "incremental"
        return (
            f"{kind} build: {self.written} feeds written, {self.unchanged} unchanged, "
            f"{self.removed} removed; index pages written {self.pages_written}"
        )


def fingerprint(config: Config) -> str:
    """A hash of everything besides articles that shapes the output bytes."""
    parts = (
        __version__,
        feedgen.version.version_str,
        repr(etree.LXML_VERSION),
        config.site.model_dump_json(exclude={"secret"}),
        config.feeds.model_dump_json(exclude={"cache_max_age", "build_delay"}),
        config.digest.advertorial_label,
        repr(config.taxonomy),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Work:
    """What one build renders and removes."""

    full: bool
    counts: Mapping[Selection, int]
    """Every feed that exists, with its article count (for the index page)."""
    render: Sequence[Selection]
    items: Mapping[Selection, Sequence[str]] = field(default_factory=dict)
    """The newest item ids of the feeds to render, when already known."""
    links: tuple[Slugs, Slugs] | None = None
    """Every article's region and category slugs, when already read."""


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
    changed: queries.Changed,
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
    fresh: Sequence[queries.Changed],
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


def inserted_since(changed: Sequence[queries.Changed], newest: datetime | None) -> int:
    """How many ``changed`` articles were first seen after ``newest``."""
    return sum(newest is None or c.first_seen > newest for c in changed)


@dataclass
class FeedBuilder:
    """Builds every feed of ``config`` from ``db`` into ``config.feeds.output``.

    Not thread-safe (feedgen switches the process locale while writing RSS
    dates); concurrent builds into one folder are serialised by a file lock.
    """

    config: Config
    db: Database
    clock: Clock
    client: httpx.Client | None = None
    _site: FeedSite = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._site = FeedSite.from_config(self.config)

    @property
    def output(self) -> Path:
        """The output folder."""
        return self.config.feeds.output

    @property
    def formats(self) -> tuple[str, ...]:
        """Enabled formats, without duplicates, in a fixed order."""
        return tuple(f for f in FORMATS if f in self.config.feeds.formats)

    def build(self, full: bool = False) -> BuildReport:
        """Bring the output folder up to date; ``full`` re-renders every feed."""
        with self._lock():
            report = self._build(full)
        log.info("%s", report.summary())
        return report

    def _build(self, full: bool) -> BuildReport:
        now, stamp = self.clock(), fingerprint(self.config)
        present = self._listing()
        with self.db.connect() as conn:
            marker, head = queries.load_marker(conn), queries.store_version(conn)
            shown = queries.shown(conn)
            full = full or marker is None or marker.fingerprint != stamp
            if not full and marker is not None and self._up_to_date(marker, head, shown, present):
                return BuildReport(unchanged=len(shown))
            if full or marker is None:
                work = self.plan_full(conn)
            else:
                work = self.plan_incremental(conn, marker, head, shown, present)
        return self._finish(work, shown, present, queries.Marker(now, head, stamp, None))

    def _listing(self) -> set[str]:
        """The files under ``feeds/``, without the temporary files a stopped
        build left (removed here: builds hold the lock)."""
        present = writer.files_under(self.output, "feeds")
        for path in [p for p in present if p.rpartition("/")[2].startswith(writer.TEMP_PREFIX)]:
            (self.output / path).unlink(missing_ok=True)
            present.discard(path)
        return present

    def _up_to_date(
        self,
        marker: queries.Marker,
        head: queries.Head,
        shown: Mapping[str, Sequence[str]],
        present: set[str],
    ) -> bool:
        """Nothing changed since the last build and every file it wrote is there."""
        files = {p for path in shown for p in (path, path + ".gz")} | {OPML_PATH}
        index = (self.output / INDEX_PATH).exists()
        return marker.head == head and bool(shown) and files <= present and index

    def plan_full(self, conn: Connection) -> Work:
        """Every feed, planned from a light index of every article."""
        index = queries.article_index(conn)
        found = contents(
            self.config.taxonomy, index.ids, index.groups, items=self.config.feeds.items
        )
        return Work(True, found.counts, found.selections, found.items, index.links)

    def plan_incremental(
        self,
        conn: Connection,
        marker: queries.Marker,
        head: queries.Head,
        shown: Mapping[str, Sequence[str]],
        present: set[str],
    ) -> Work:
        """The feeds the changes since ``marker`` reach, and those missing on
        disk. When the article count does not add up (an article deleted, or
        one stored with a change time before the marker), every feed's items
        are planned afresh and those that differ from what it shows join in."""
        newest, matcher = marker.head.newest, Matcher(self.config.taxonomy)
        changed = queries.changed_since(conn, newest - LOOKBACK if newest else None)
        count_ok = head.total == marker.head.total + inserted_since(changed, newest)
        if newest is not None:
            changed = [c for c in changed if not self._settled(c, newest, shown, matcher)]
        slugs = [(c.regions, c.categories) for c in changed]
        feeds = touched(matcher, slugs, old_feeds(shown, {c.id for c in changed}))
        if not count_ok:
            work = replace(self.plan_full(conn), full=False)
            feeds |= differing(work.items, shown, self.formats)
        elif marker.counts is not None and inserted_since(changed, newest) == len(changed):
            items = self._joined(conn, changed, feeds, shown, matcher)
            work = Work(False, counted(marker.counts, matcher, slugs), (), items)
        else:  # an edit may have moved an article between feeds
            work = Work(False, queries.count_selections(conn, self.config.taxonomy), ())
        feeds |= missing_feeds(work.counts, self.formats, present)
        return replace(work, render=sorted(feeds & work.counts.keys(), key=sort_key))

    def _joined(
        self,
        conn: Connection,
        inserted: Sequence[queries.Changed],
        feeds: set[Selection],
        shown: Mapping[str, Sequence[str]],
        matcher: Matcher,
    ) -> dict[Selection, list[str]]:
        """The items of the ``feeds`` that new articles only joined in front
        (see :func:`joined`); the store is asked for the others."""
        old = {s: shown.get(s.path(self.formats[0]), ()) for s in feeds}
        times = queries.published_of(conn, {token_id(t[0]) for t in old.values() if t})
        out = {}
        for selection in feeds:
            fresh = [
                c for c in inserted if selection in matcher.selections(c.regions, c.categories)
            ]
            found = joined(fresh, old[selection], times, self.config.feeds.items)
            if found is not None:
                out[selection] = found
        return out

    def _settled(
        self,
        changed: queries.Changed,
        newest: datetime,
        shown: Mapping[str, Sequence[str]],
        matcher: Matcher,
    ) -> bool:
        feeds = matcher.selections(changed.regions, changed.categories)
        return settled(changed, newest, shown, feeds, self.formats[0])

    def _finish(
        self,
        work: Work,
        shown: Mapping[str, Sequence[str]],
        present: set[str],
        marker: queries.Marker,
    ) -> BuildReport:
        """Render and write; remove; index, OPML, ping; record the marker."""
        written, showing = self._write_feeds(work)
        # and those a build that stopped before its marker wrote: their items moved
        moved = [p for p, ids in showing.items() if shown.get(p) != tuple(ids)]
        known = set(shown) | (feed_documents(present) if work.full else set())
        stale = sorted(known - wanted_paths(work.counts, self.formats))
        removed = self._remove(stale)
        pages = self._pages(work.counts)
        self._ping([self._site.url(p) for p in dict.fromkeys([*written, *moved])])
        with self.db.begin() as conn:
            queries.save_shown(conn, showing, stale, now=marker.built_at)
            queries.save_marker(conn, replace(marker, counts=work.counts))
        total = len(work.counts) * len(self.formats)
        return BuildReport(
            len(written),
            total - len(written),
            len(removed),
            work.full,
            len(work.render),
            pages,
            tuple(written),
            tuple(removed),
        )

    def _write_feeds(self, work: Work) -> tuple[list[str], dict[str, Sequence[str]]]:
        """Render and write every feed of ``work`` in batches; the paths
        written, and the ids every rendered path shows."""
        renderer = self._renderer(fingerprint(self.config))
        written: list[str] = []
        showing: dict[str, Sequence[str]] = {}
        for start in range(0, len(work.render), BATCH):
            batch = work.render[start : start + BATCH]
            items = self._load(renderer, work, batch)
            for selection in batch:
                ids = items[selection]
                for fmt, data in renderer.documents(selection, ids).items():
                    path = selection.path(fmt)
                    showing[path] = ids
                    if writer.write_if_changed(self.output / path, data):
                        written.append(path)
        return written, showing

    def _renderer(self, stamp: str) -> Renderer:
        """The renderer of the last build in this process when the config and
        versions are the same (its entries, by item token, are still right),
        else a new one."""
        found = _RENDERERS.get(stamp)
        if found is None:
            _RENDERERS.clear()
            found = _RENDERERS[stamp] = Renderer(self._site, self.formats)
        return found

    def _load(
        self, renderer: Renderer, work: Work, batch: Sequence[Selection]
    ) -> dict[Selection, list[str]]:
        """The item tokens of ``batch``'s feeds, their articles rendered; an
        article deleted or edited meanwhile is left out (the next build sees it)."""
        limit = self.config.feeds.items
        with self.db.connect() as conn:
            items = {
                s: list(work.items.get(s) or self._newest(conn, s, limit, work)) for s in batch
            }
            wanted = [t for tokens in items.values() for t in tokens]
            missing = {token_id(t): t for t in renderer.missing(wanted)}
            found = queries.load_by_id(conn, missing, work.links)
        renderer.add({missing[i]: a for i, a in found.items()}, keep=set(wanted))
        return {s: [t for t in tokens if renderer.has(t)] for s, tokens in items.items()}

    def _newest(self, conn: Connection, selection: Selection, limit: int, work: Work) -> list[str]:
        if work.full:  # an empty feed: the full plan lists it without items
            return []
        return queries.newest_ids(conn, self.config.taxonomy, selection, items=limit)

    def _remove(self, paths: Sequence[str]) -> list[str]:
        removed = [p for p in paths if writer.remove(self.output / p)]
        for path in sorted({(self.output / p).parent for p in paths}, reverse=True):
            if path != self.output and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return removed

    def _pages(self, counts: Mapping[Selection, int]) -> int:
        """Write the index page and the OPML file; how many changed."""
        catalog = build_catalog(self._site, counts, self.formats)
        with self.db.connect() as conn:
            newest = queries.newest_published(conn)
        docs = {
            INDEX_PATH: IndexPage(self._site).render(catalog, newest),
            OPML_PATH: render_opml(self._site, catalog),
        }
        return sum(writer.write_if_changed(self.output / p, d) for p, d in docs.items())

    @contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            self.output.mkdir(parents=True, exist_ok=True)
            handle = (self.output / LOCK_NAME).open("a")
        except OSError as e:
            raise writer.OutputError(f"cannot use output folder {self.output}: {e}") from e
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _ping(self, urls: Sequence[str]) -> None:
        """Tell the WebSub hub which feeds changed; failures are logged, never raised."""
        hub = self.config.feeds.websub_hub
        if not hub or not urls:
            return
        client = self.client or httpx.Client(timeout=10.0)
        try:
            for start in range(0, len(urls), PING_BATCH):
                ping_hub(client, hub, urls[start : start + PING_BATCH])
        finally:
            if self.client is None:
                client.close()


def ping_hub(client: httpx.Client, hub: str, urls: Sequence[str]) -> bool:
    """POST ``hub.mode=publish`` with one ``hub.url`` per feed; whether the hub
    accepted (2xx). Errors are logged, never raised."""
    try:
        response = client.post(hub, data={"hub.mode": "publish", "hub.url": list(urls)})
    except httpx.HTTPError as e:
        log.warning("WebSub ping to %s failed: %s", hub, e)
        return False
    if not response.is_success:
        log.warning(
            "WebSub hub %s answered %s to a ping for %d feeds", hub, response.status_code, len(urls)
        )
        return False
    return True
