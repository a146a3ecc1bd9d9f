"""The feed builder: what changed -> which feeds -> render them -> files.

One build, sequential code (no worker processes, no threads):

1. **What changed**: the articles whose change column moved since the last
   build's marker (one query; a 5-minute lookback re-reads what another
   machine may have committed late). A full build (``--all``, the first
   build, a changed config or version) takes every feed. Deleted articles
   are those the feeds show that are gone; when the article count says
   more changed than that (an article no feed showed was deleted, or one
   was stamped before the lookback), every feed is taken too.
2. **Which feeds** (:mod:`feeds.plan`, pure): those the changed articles
   belong to now and those that showed one of them or a deleted one (a
   reclassified article's old feeds). New articles add to their feeds'
   counts; an edit or a deletion may move articles out of feeds that did
   not show them, so then every feed's items and count are read in one pass.
3. **Render** each of those feeds whole from its newest ``items`` articles
   (one query per feed, unless read in that pass), each article's entries
   serialised once and kept for the next build while the config stays
   (:mod:`feeds.documents`).
4. **Write** every document atomically with its ``.gz`` sibling, only where
   the bytes differ; remove feeds that no longer exist; then the index page,
   the OPML file, the WebSub ping and last the marker (with what each feed
   shows). A build that stops anywhere leaves valid files, and the next one,
   starting from the same marker, redoes what is missing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import feedgen.version
import httpx
from lxml import etree  # type: ignore[import-untyped]
from sqlalchemy import Connection

from kabarfeed import __version__
from kabarfeed.config import Config
from kabarfeed.feeds import plan, queries, websub, writer
from kabarfeed.feeds.catalog import build_catalog
from kabarfeed.feeds.documents import Renderer
from kabarfeed.feeds.index import INDEX_PATH, IndexPage
from kabarfeed.feeds.opml import OPML_PATH, render_opml
from kabarfeed.feeds.queries import token_id
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.selection import FORMATS, Matcher, Selection, base_selections, sort_key
from kabarfeed.models import Clock
from kabarfeed.store import Database

log = logging.getLogger(__name__)
BATCH = 64
"""Feeds whose articles are loaded together (bounds a full build's memory)."""
LOCK_NAME = ".kabarfeed-build.lock"
LOOKBACK = timedelta(minutes=5)
"""Changes stamped this long before the last build's newest are read again:
a writer on another machine may commit a change stamped before that build."""
_RENDERERS: dict[str, Renderer] = {}
"""The last build's renderer, by render fingerprint: its entries by item
token serve the next build, so 10 new articles cost 10 renders, not those of
every item of the ~50 feeds they reach."""
KEPT_ENTRIES = 8_000  # rendered articles kept between builds (~70 MB, 1.6 KB bodies)


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
    _matcher: Matcher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._site = FeedSite.from_config(self.config)
        self._matcher = Matcher(self.config.taxonomy)

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
        with writer.locked(self.output, LOCK_NAME):
            report = self._build(full)
        log.info("%s", report.summary())
        return report

    def _build(self, full: bool) -> BuildReport:
        now, stamp = self.clock(), fingerprint(self.config)
        present = self._listing()
        with self.db.connect() as conn:
            marker, head = queries.load_marker(conn), queries.store_version(conn)
            shown = queries.shown(conn)
            if full or marker is None or marker.counts is None or marker.fingerprint != stamp:
                work = self.plan_full(conn)
            elif self._up_to_date(marker, head, shown, present):
                return BuildReport(unchanged=len(shown))
            else:
                work = self.plan_incremental(conn, marker, head, shown, present)
        return self._finish(work, shown, present, queries.Marker(now, head, stamp))

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

    def plan_full(self, conn: Connection) -> plan.Work:
        """Every feed (all, each region and category, each pair with
        articles), its items and count read in one pass over the store."""
        empty: queries.Items = ([], 0)
        items = dict.fromkeys(base_selections(self.config.taxonomy), empty)
        items |= queries.every_feed(conn, self._matcher, self.config.feeds.items)
        counts = {s: n for s, (_, n) in items.items()}
        return plan.Work(True, sorted(items, key=sort_key), counts, items)

    def plan_incremental(
        self,
        conn: Connection,
        marker: queries.Marker,
        head: queries.Head,
        shown: Mapping[str, Sequence[str]],
        present: set[str],
    ) -> plan.Work:
        """The feeds the changes since ``marker`` reach, and those with files
        missing; every feed when the article count does not add up."""
        changed, gone, adds_up = self._changes(conn, marker, head, shown)
        stale = frozenset({c.id for c in changed} | gone)
        if not adds_up:
            # an article no feed showed was deleted, or one was stored stamped
            # before the lookback: every feed is rendered (same bytes kept)
            return replace(self.plan_full(conn), full=False, changed=stale)
        counts = plan.counted(marker.counts or {}, self._matcher, changed)
        work = plan.Work(False, (), counts, changed=stale)
        if gone or plan.updates(changed, marker.head.newest):
            # a deletion or an edit may move articles out of feeds not showing them
            work = replace(self.plan_full(conn), full=False, changed=stale)
        feeds = plan.touched(self._matcher, changed, shown, gone)
        feeds |= plan.missing_feeds(work.counts, self.formats, present)
        return replace(work, render=sorted(feeds, key=sort_key))

    def _changes(
        self,
        conn: Connection,
        marker: queries.Marker,
        head: queries.Head,
        shown: Mapping[str, Sequence[str]],
    ) -> tuple[list[queries.Changed], set[str], bool]:
        """The articles changed since ``marker`` but those it took in, the
        deleted ones the feeds showed, and whether the store's article count
        adds up with them."""
        newest = marker.head.newest
        changed = queries.changed_since(conn, newest - LOOKBACK if newest else None)
        expected = marker.head.total + plan.inserted_since(changed, newest)
        gone: set[str] = set()
        if head.total != expected:
            gone = queries.missing_ids(conn, {token_id(t) for ts in shown.values() for t in ts})
        if newest is not None:
            changed = [c for c in changed if not self._settled(c, newest, shown)]
        return changed, gone, head.total == expected - len(gone)

    def _settled(
        self, changed: queries.Changed, newest: datetime, shown: Mapping[str, Sequence[str]]
    ) -> bool:
        feeds = self._matcher.selections(changed.regions, changed.categories)
        return plan.settled(changed, newest, shown, feeds, self.formats[0])

    def _finish(
        self,
        work: plan.Work,
        shown: Mapping[str, Sequence[str]],
        present: set[str],
        marker: queries.Marker,
    ) -> BuildReport:
        """Render and write; remove; index, OPML, ping; record the marker."""
        written, showing, found = self._write_feeds(work)
        counts = plan.existing({**work.counts, **found})
        # and those a build that stopped before its marker wrote: their items moved
        moved = [p for p, ids in showing.items() if shown.get(p) != tuple(ids)]
        known = set(shown) | (plan.feed_documents(present) if work.full else set())
        stale = sorted(known - plan.wanted_paths(counts, self.formats))
        removed = writer.remove_all(self.output, stale)
        pages = self._pages(counts)
        urls = [self._site.url(p) for p in dict.fromkeys([*written, *moved])]
        websub.ping(self.client, self.config.feeds.websub_hub, urls)
        with self.db.begin() as conn:
            queries.save_shown(conn, showing, stale, now=marker.built_at)
            queries.save_marker(conn, replace(marker, counts=counts))
        kept = len(counts) * len(self.formats) - len(written)
        paths = (tuple(written), tuple(removed))
        return BuildReport(len(written), kept, len(removed), work.full, pages, *paths)

    def _write_feeds(
        self, work: plan.Work
    ) -> tuple[list[str], dict[str, Sequence[str]], dict[Selection, int]]:
        """Render and write ``work``'s feeds: the paths written, the tokens
        each path shows, each feed's article count (a pair feed left without
        articles is not written: it is removed)."""
        renderer = self._renderer(fingerprint(self.config), work)
        written: list[str] = []
        showing: dict[str, Sequence[str]] = {}
        counts: dict[Selection, int] = {}
        for start in range(0, len(work.render), BATCH):
            for selection, (ids, count) in self._load(renderer, work, work.render[start:][:BATCH]):
                counts[selection] = count
                if count or selection.kind != "pair":
                    for fmt, data in renderer.documents(selection, ids).items():
                        showing[selection.path(fmt)] = ids
                        if writer.write_if_changed(self.output / selection.path(fmt), data):
                            written.append(selection.path(fmt))
        renderer.shrink(KEPT_ENTRIES)
        return written, showing, counts

    def _renderer(self, stamp: str, work: plan.Work) -> Renderer:
        """The last incremental build's renderer in this process when the
        config and versions are the same (its entries, by item token, are
        still right but for the changed articles'), else a new one."""
        found = _RENDERERS.get(stamp)
        if found is None or work.full:
            _RENDERERS.clear()
            found = _RENDERERS[stamp] = Renderer(self._site, self.formats)
        found.forget(work.changed)
        return found

    def _newest(self, conn: Connection, work: plan.Work, selection: Selection) -> queries.Items:
        """A feed's newest items from the store, its count as planned."""
        regions = self._matcher.regions(selection)
        items = self.config.feeds.items
        tokens = queries.newest_items(conn, regions, selection.category, items)
        return tokens, work.counts.get(selection, 0)

    def _load(
        self, renderer: Renderer, work: plan.Work, batch: Sequence[Selection]
    ) -> list[tuple[Selection, queries.Items]]:
        """The newest item tokens and article count of ``batch``'s feeds, their
        articles rendered; one deleted meanwhile is left out (the next build
        sees it)."""
        with self.db.connect() as conn:
            found = [(s, work.items.get(s) or self._newest(conn, work, s)) for s in batch]
            wanted = [t for _, (tokens, _) in found for t in tokens]
            missing = {token_id(t): t for t in renderer.missing(wanted)}
            loaded = queries.load_by_id(conn, missing)
        renderer.add({missing[i]: a for i, a in loaded.items()})
        return [(s, ([t for t in ts if renderer.has(t)], n)) for s, (ts, n) in found]

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
