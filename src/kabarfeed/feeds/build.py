"""The feed builder: what changed -> which feeds -> render them -> files.

One build, sequential code (no worker processes, no threads):

1. **What changed**: the articles whose change column moved since the last
   build's marker (one query; a 5-minute lookback re-reads what another
   machine may have committed late). A full build (``--all``, the first
   build, a changed config or version) takes everything.
2. **Which feeds** (:mod:`feeds.plan`, pure): those the changed articles
   belong to now and those that showed one of them (each feed's item tokens
   are recorded). New articles that join their feeds in front need nothing
   more; any other change (an edit, a deleted or backdated article, a
   missing file) plans every feed from a light index of the store, and the
   feeds whose items differ from what they show are rendered too.
3. **Render** each of those feeds whole from its newest ``items`` articles,
   each article's entries serialised once (:mod:`feeds.documents`).
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
from kabarfeed.feeds import queries, websub, writer
from kabarfeed.feeds.catalog import build_catalog
from kabarfeed.feeds.documents import Renderer
from kabarfeed.feeds.index import INDEX_PATH, IndexPage
from kabarfeed.feeds.opml import OPML_PATH, render_opml
from kabarfeed.feeds.plan import (
    Work,
    counted,
    differing,
    feed_documents,
    inserted_since,
    joined,
    missing_feeds,
    old_feeds,
    settled,
    wanted_paths,
)
from kabarfeed.feeds.queries import token_id
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.selection import (
    FORMATS,
    Matcher,
    Selection,
    contents,
    sort_key,
    touched,
)
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
"""The last build's renderer, by render fingerprint: entries by item token
serve the next build, so 10 new articles cost 10 renders, not those of
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
        """The feeds the changes since ``marker`` reach. New articles that
        join their feeds in front (the usual case) need nothing else; any
        other change (an edit, a deletion, a backdated article, a missing
        file) plans every feed from the light index, and the feeds whose
        items differ from what they show join in."""
        newest, matcher = marker.head.newest, Matcher(self.config.taxonomy)
        changed = queries.changed_since(conn, newest - LOOKBACK if newest else None)
        stale = frozenset(c.id for c in changed)
        inserts_only = head.total == marker.head.total + inserted_since(changed, newest)
        if newest is not None:
            changed = [c for c in changed if not self._settled(c, newest, shown, matcher)]
        inserts_only &= inserted_since(changed, newest) == len(changed)
        slugs = [(c.regions, c.categories) for c in changed]
        feeds = touched(matcher, slugs, old_feeds(shown, {c.id for c in changed}))
        if inserts_only and marker.counts is not None:
            counts = counted(marker.counts, matcher, slugs)
            items = self._joined(conn, changed, feeds, shown, matcher)
            if items is not None and not missing_feeds(counts, self.formats, present):
                return Work(False, counts, sorted(feeds, key=sort_key), items, None, stale)
        work = replace(self.plan_full(conn), full=False, changed=stale)
        feeds |= differing(work.items, shown, self.formats)
        feeds |= missing_feeds(work.counts, self.formats, present)
        return replace(work, render=sorted(feeds & work.counts.keys(), key=sort_key))

    def _joined(
        self,
        conn: Connection,
        inserted: Sequence[queries.Changed],
        feeds: set[Selection],
        shown: Mapping[str, Sequence[str]],
        matcher: Matcher,
    ) -> dict[Selection, list[str]] | None:
        """The items of ``feeds`` when the new articles all join them in
        front (see :func:`joined`), else ``None``."""
        old = {s: shown.get(s.path(self.formats[0]), ()) for s in feeds}
        times = queries.published_of(conn, {token_id(t[0]) for t in old.values() if t})
        out = {}
        for selection in feeds:
            fresh = [
                c for c in inserted if selection in matcher.selections(c.regions, c.categories)
            ]
            found = joined(fresh, old[selection], times, self.config.feeds.items)
            if found is None:
                return None
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
        removed = writer.remove_all(self.output, stale)
        pages = self._pages(work.counts)
        urls = [self._site.url(p) for p in dict.fromkeys([*written, *moved])]
        websub.ping(self.client, self.config.feeds.websub_hub, urls)
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
        """Render and write ``work``'s feeds; the paths written, the tokens each shows."""
        renderer = self._renderer(fingerprint(self.config))
        renderer.forget(work.changed)
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
        renderer.shrink(KEPT_ENTRIES)
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
        with self.db.connect() as conn:
            items = {s: list(work.items.get(s, ())) for s in batch}
            wanted = [t for tokens in items.values() for t in tokens]
            missing = {token_id(t): t for t in renderer.missing(wanted)}
            found = queries.load_by_id(conn, missing, work.links)
        renderer.add({missing[i]: a for i, a in found.items()}, keep=set(wanted))
        return {s: [t for t in tokens if renderer.has(t)] for s, tokens in items.items()}

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
