"""The incremental feed builder: store -> plan -> render what changed -> files.

One build:

1. plans every feed: its article count and newest ``items`` tokens. A full
   build (``--all``, first build, changed render fingerprint) walks a light
   index of every article; otherwise the last build's plan (item tokens in
   ``feed_builds``, counts in the marker) is carried forward over the
   articles changed since the marker (see :func:`selection.replan`): only
   the selections they touch are re-planned, with per-selection SQL where
   the old items are not enough. When the article count does not add up
   (a deleted article, a late insert) the full index walk plans instead;
2. renders only the feeds whose tokens differ from the last build's (a new,
   edited, reclassified or dropped article changes them), whose file is
   missing, or all of them on a full build. Each shown article's entries are
   serialised once and spliced into every document that carries it: reused
   from the last build's files when unchanged, rendered in worker processes
   on a full build of a large store (:mod:`feeds.pool`), else here. A feed
   that only gained new articles (the usual incremental case) is its new
   entries plus a run cut from its previous file, in a file thread;
3. writes each document atomically with a ``.gz`` sibling, leaving identical
   bytes untouched, and removes feeds that no longer exist;
4. records the build state (``feed_builds``) and a marker (``state``) in one
   transaction, then pings the WebSub hub for the feeds that changed.

When nothing changed since the marker, step 1 is skipped entirely.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import logging
import os
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from pathlib import Path

import feedgen.version
import httpx
from lxml import etree  # type: ignore[import-untyped]
from sqlalchemy import Connection
from zlib_ng import zlib_ng

from kabarfeed import __version__
from kabarfeed.config import Config
from kabarfeed.feeds import queries, writer
from kabarfeed.feeds.catalog import build_catalog
from kabarfeed.feeds.index import INDEX_PATH, IndexPage
from kabarfeed.feeds.opml import OPML_PATH, render_opml
from kabarfeed.feeds.pool import (
    MIN_ARTICLES,
    EntryPool,
    Rendered,
    default_processes,
    entry_pool,
)
from kabarfeed.feeds.render import FeedSite, Renderer, kept_entries, splice, split_entries
from kabarfeed.feeds.selection import (
    FORMATS,
    Matcher,
    Plan,
    Selection,
    Slice,
    plan_groups,
    replan,
    sort_key,
    times_needed,
    token_id,
    touched,
    unseen,
)
from kabarfeed.models import Article, Clock
from kabarfeed.store import Database

log = logging.getLogger(__name__)
BATCH = 64
"""Selections rendered per article-loading round in a full build (bounds memory)."""
SMALL_BATCH = 16
"""The same in an incremental build: its few documents then start being
written while the next ones are prepared."""
LOCK_NAME = ".kabarfeed-build.lock"
PING_BATCH = 50
RECENT = timedelta(minutes=10)
"""Documents written this long before the last build may not have reached
the disk if the machine went down since (the kernel writes files back
within ~30 s, later under load): after a restart, a build reads them and
the trailers of their ``.gz`` (see :func:`intact`). Older ones, and all of
them while the machine stays up (its page cache holds what was written),
are only checked to exist."""
LOOKBACK = timedelta(minutes=5)
"""Changes stamped this long before the last build's newest are re-read: a
writer on another machine may commit a change stamped before that build."""
WRITERS = 2
"""Threads comparing, hashing, gzipping and writing documents."""
LOOKAHEAD = 3
"""Batches whose entries are being rendered by worker processes ahead of
the batch being written."""
Links = tuple[queries.Links, queries.Links]
"""Every article's region and category slugs, from the full planner."""
FEED_SUFFIXES = frozenset("." + ext for ext in FORMATS.values())


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


# ---------------------------------------------------------------- pure decisions


def fingerprint(config: Config) -> str:
    """A hash of everything besides articles that shapes the output bytes."""
    parts = (
        __version__,
        feedgen.version.version_str,
        repr(etree.LXML_VERSION),  # entries are reused from files it serialised
        config.site.model_dump_json(exclude={"secret"}),
        config.feeds.model_dump_json(exclude={"cache_max_age", "build_delay"}),
        config.digest.advertorial_label,
        repr(config.taxonomy),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def to_render(
    the_plan: Plan,
    builds: Mapping[str, queries.StoredBuild],
    formats: Sequence[str],
    *,
    full: bool,
    damaged: Collection[str] = (),
) -> tuple[Selection, ...]:
    """Selections whose documents must be rendered this build (``damaged``:
    recorded paths no longer on disk as they were written)."""
    out = []
    for selection in the_plan.selections:
        items = the_plan.ids(selection)
        for fmt in formats:
            stored = builds.get(selection.path(fmt))
            if full or stored is None or stored.items != items or stored.path in damaged:
                out.append(selection)
                break
    return tuple(out)


def to_remove(the_plan: Plan, formats: Sequence[str], known: Collection[str]) -> tuple[str, ...]:
    """Known feed paths that the plan no longer publishes (gone from config,
    format disabled, region x category pair without articles)."""
    wanted = {s.path(f) for s in the_plan.selections for f in formats}
    return tuple(sorted(p for p in known if p not in wanted))


def fresh_in_front(items: Sequence[str], previous: Sequence[str]) -> int | None:
    """How many of a feed's ``items`` come before a run that starts its
    ``previous`` items: the feed gained those (new articles, usually) and
    perhaps lost its oldest. Its document is then their entries plus a run
    of entries cut from its previous file. ``None`` when the items do not
    end with such a run."""
    if not items or not previous:
        return None
    try:
        fresh = items.index(previous[0])
    except ValueError:
        return None
    kept = len(items) - fresh
    return fresh if tuple(items[fresh:]) == tuple(previous[:kept]) else None


def same_feeds(
    the_plan: Plan, formats: Sequence[str], known: Collection[str], stale: Collection[str]
) -> bool:
    """Whether ``the_plan`` publishes exactly the ``known`` feed paths (none
    ``stale``, none new): then lists of feeds, like the OPML file, stand."""
    return not stale and len(known) == len(the_plan.selections) * len(formats)


def previous_plan(
    marker: queries.Marker, builds: Mapping[str, queries.StoredBuild], formats: Sequence[str]
) -> Plan | None:
    """The last build's plan from its marker (counts) and build state (items);
    ``None`` when they do not fit together."""
    if marker.counts is None or not formats:
        return None
    slices: dict[Selection, Slice] = {}
    for selection, count in marker.counts.items():
        stored = builds.get(selection.path(formats[0]))
        if stored is None:
            return None
        slices[selection] = Slice(count, list(stored.items))
    return Plan(slices)


@contextmanager
def _gc_deferred() -> Iterator[None]:
    """Pause the cyclic garbage collector for the build. A build keeps a
    large plan and tens of thousands of entries alive to the end and makes
    no reference cycles worth collecting early (see the tests); the
    collector would rescan them again and again (a tenth of a full build's
    CPU time in the main process). Reference counting frees everything else
    as usual."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def content_hash(data: bytes) -> str:
    """The check value recorded for a written document: its CRC-32 and length.

    It only guards reuse (a previous file's entries are spliced into new
    documents when the file still holds what the build wrote), against
    accidental edits, not forgery: whoever can write the output folder
    controls what it serves anyway. zlib-ng's CRC-32 is 6x faster than
    SHA-256 here, and every document of a build is checked."""
    return f"crc32:{zlib_ng.crc32(data):08x}:{len(data)}"


@dataclass(frozen=True, slots=True)
class Listing:
    """The output folder as a build finds it: every file under ``feeds/``,
    and what the recently written documents and their ``.gz`` hold: the
    :func:`content_hash` of each document, and the CRC-32 and length its
    ``.gz`` trailer records, in the same form (``None``: missing)."""

    present: Collection[str]
    found: Mapping[str, str | None]


def list_output(output: Path, recent: Iterable[str]) -> Listing:
    """List ``output``'s feed files; read only the ``recent`` documents (and
    the last bytes of their ``.gz``)."""
    found: dict[str, str | None] = {}
    for path in recent:
        data = writer.read_or_none(output / path)
        found[path] = None if data is None else content_hash(data)
        trailer = writer.gzip_trailer(writer.gzip_path(output / path))
        found[path + ".gz"] = None if trailer is None else _check_value(*trailer)
    return Listing(writer.files_under(output, "feeds"), found)


def _check_value(crc: int, size: int) -> str:
    """A :func:`content_hash` value from a CRC-32 and a length."""
    return f"crc32:{crc:08x}:{size}"


def intact(stored: queries.StoredBuild, listing: Listing) -> bool:
    """Whether the output folder still holds ``stored``'s document and its
    ``.gz``; for a recently written one, also whether the document has its
    recorded CRC-32 and length and the ``.gz`` trailer records the same.
    Writes are not flushed (see :mod:`feeds.writer`), and a crash can leave
    a just-replaced file empty, short or zero-filled: the build re-renders
    what fails this. (Check values of versions before CRC-32, SHA-256, are
    only checked for presence.)"""
    path, gz = stored.path, stored.path + ".gz"
    if path not in listing.present or gz not in listing.present:
        return False
    if path not in listing.found or not stored.content_hash.startswith("crc32:"):
        return True  # not written recently: on disk long since
    expected = stored.content_hash
    return listing.found[path] == expected and listing.found[gz] == expected


def _write(path: Path, data: bytes) -> tuple[bool, str]:
    """Worker: write ``data`` unless unchanged; whether written, and its hash."""
    return writer.write_if_changed(path, data), content_hash(data)


class _Stale(Exception):
    """A previous file no longer holds what the build state records."""


def _splice_write(
    output: Path, stored: queries.StoredBuild, fmt: str, head: bytes, fresh: list[bytes], kept: int
) -> tuple[bool, str]:
    """Worker: write ``stored``'s document anew as ``head`` with the ``fresh``
    entries and then the first ``kept`` entries of its previous file (see
    :func:`_write`); :class:`_Stale`, nothing written, when that file no
    longer holds what the build state records."""
    data = as_recorded(output, stored)
    run = None if data is None else kept_entries(data, fmt, kept, len(stored.items))
    if run is None:
        raise _Stale(stored.path)
    return _write(output / stored.path, splice(head, fmt, [*fresh, run]))


def as_recorded(output: Path, stored: queries.StoredBuild) -> bytes | None:
    """The bytes of ``stored``'s document if the file still holds exactly what
    the build state records (its check value), else ``None``."""
    data = writer.read_or_none(output / stored.path)
    return data if data is not None and content_hash(data) == stored.content_hash else None


# ---------------------------------------------------------------- I/O


_Pending = tuple[Selection, str, tuple[str, ...], "Future[tuple[bool, str]]"]
"""A document being written: its feed, path, item tokens, and the job: whether
written, and its hash."""
_Done = tuple[str, tuple[str, ...], bool, str]
"""A document written or left as it was: path, item tokens, whether written, hash."""


@dataclass(frozen=True, slots=True)
class _Start:
    """What a build reads before it decides what to do."""

    now: datetime
    fingerprint: str
    marker: queries.Marker | None
    head: queries.Head
    builds: Mapping[str, queries.StoredBuild]
    """The last build's documents, by path."""
    recent: Collection[str]
    """Those of them written shortly before the last build (see :data:`RECENT`)."""


@dataclass(frozen=True, slots=True)
class _Planned:
    """What planning found: the plan, and what it read on the way."""

    plan: Plan
    links: Links | None = None
    """Every article's slugs (from a full index walk)."""
    updated: Mapping[str, datetime] = field(default_factory=dict)
    """The ``updated`` time of the previous items a carried plan looked at."""


@dataclass(frozen=True, slots=True)
class _Render:
    """What rendering one build's documents works from and with."""

    planned: _Planned
    builds: Mapping[str, queries.StoredBuild]
    """The last build's files, whose entries may be reused (empty: none)."""
    workers: EntryPool | None
    files: ThreadPoolExecutor
    batch: int = BATCH
    """Selections per round (see :data:`BATCH`)."""

    @property
    def plan(self) -> Plan:
        """The plan being rendered."""
        return self.planned.plan

    @property
    def links(self) -> Links | None:
        """Every article's slugs, when the planner read them."""
        return self.planned.links


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
    processes: int | None = None
    """Render worker processes for full builds of large stores (``None``: one
    per usable CPU; 0 or 1: render in this process)."""
    parallel_from: int = MIN_ARTICLES
    """Stored articles from which a full build uses ``processes``."""
    boot: Callable[[], str | None] = writer.boot_id
    """The machine's current boot (``None``: unknown). Only a machine that
    went down can have lost written files: recent ones are read and checked
    when the last build ran in another boot."""
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
        with self._lock(), _gc_deferred():
            report = self._build(full)
        log.info("%s", report.summary())
        self._ping([self._site.url(p) for p in report.written_paths])
        return report

    def _build(self, full: bool) -> BuildReport:
        with self.db.connect() as conn:
            marker = queries.load_marker(conn)
            since = self._check_since(marker)
            start = _Start(
                self.clock(),
                fingerprint(self.config),
                marker,
                queries.store_version(conn),
                queries.load_builds(conn),
                queries.built_since(conn, since) if since else (),
            )
        full = full or marker is None or marker.fingerprint != start.fingerprint
        if not full and self._up_to_date(start):
            return BuildReport(unchanged=len(start.builds))
        files = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="kf-write")
        with files:
            return self._rebuild(start, full, files)

    @staticmethod
    def _damaged(builds: Mapping[str, queries.StoredBuild], found: Listing) -> set[str]:
        """Recorded documents no longer on disk as written (logged: an admin
        wants to know that files went missing or came back short)."""
        damaged = {path for path, stored in builds.items() if not intact(stored, found)}
        if damaged:
            shown = ", ".join(sorted(damaged)[:5]) + (", …" if len(damaged) > 5 else "")
            log.warning(
                "%d feed file(s) missing or not as last written (deleted, or left "
                "short by a crash); writing them again: %s",
                len(damaged),
                shown,
            )
        return damaged

    def _check_since(self, marker: queries.Marker | None) -> datetime | None:
        """From when recorded documents are read and checked: those
        written shortly before the last build, if the machine has restarted
        since (or it cannot tell); ``None``: no check needed."""
        if marker is None:
            return None
        boot = self.boot()
        if boot is not None and boot == marker.boot:
            return None
        return marker.built_at - RECENT

    def _rebuild(
        self,
        start: _Start,
        full: bool,
        files: ThreadPoolExecutor,
    ) -> BuildReport:
        """Plan, render and write."""
        head, builds = start.head, start.builds
        with self._entry_pool(full, head) as workers:
            if workers is not None:
                workers.speculate(self._speculation(head))
            # listed first, on this thread: in a file thread, or once the
            # previous files are being read, the listing took 10x as long
            found = list_output(self.output, start.recent)
            self._remove_leftovers(found.present)
            planned = self._plan(None if full else start.marker, builds, head)
            the_plan = planned.plan
            known = set(builds) | (set(self._scan(found.present)) if full else set())
            stale = to_remove(the_plan, self.formats, known)
            damaged = set() if full else self._damaged(builds, found)
            selections = to_render(the_plan, builds, self.formats, full=full, damaged=damaged)
            batch = BATCH if full else SMALL_BATCH
            render = _Render(planned, {} if full else builds, workers, files, batch)
            pending = self._render_all(render, selections)
            same = not full and same_feeds(the_plan, self.formats, builds, stale)
            # while the last documents are written:
            pages = self._pages(the_plan, opml=not same)
            done = self._finish(render, pending)
        written = [path for path, _, changed, _ in done if changed]
        saved = [queries.StoredBuild(path, check, tokens) for path, tokens, _, check in done]
        removed = self._remove(stale)
        now = start.now
        with self.db.begin() as conn:
            queries.save_builds(conn, saved, stale, now=now)
            counts = the_plan.counts()
            marker = queries.Marker(now, head, start.fingerprint, counts, self.boot() or "")
            queries.save_marker(conn, marker)
        unchanged = len(the_plan.selections) * len(self.formats) - len(written)
        return BuildReport(
            len(written),
            unchanged,
            len(removed),
            full,
            len(selections),
            pages,
            tuple(written),
            tuple(removed),
        )

    def _plan(
        self,
        marker: queries.Marker | None,
        builds: Mapping[str, queries.StoredBuild],
        head: queries.Head,
    ) -> _Planned:
        """The last build's plan carried forward, else a plan of every article
        (then with every article's slugs too)."""
        with self.db.connect() as conn:
            carried = None
            if marker is not None:
                carried = self._replan(conn, marker, builds, head)
            return carried or self._plan_all(conn)

    def _plan_all(self, conn: Connection) -> _Planned:
        """Plan from an index of every article; also every article's slugs."""
        index = queries.article_index(conn)
        the_plan = plan_groups(
            self.config.taxonomy, index.groups, index.token, items=self.config.feeds.items
        )
        return _Planned(the_plan, (index.regions, index.categories))

    def _entry_pool(
        self, full: bool, head: queries.Head
    ) -> AbstractContextManager[EntryPool | None]:
        """Render workers for a full build of a large store, started before
        planning so that their start-up overlaps it (see :mod:`feeds.pool`)."""
        processes = self.processes if self.processes is not None else default_processes()
        if not full or head.total < self.parallel_from:
            processes = 0
        return entry_pool(self.db, self._site, self.formats, processes)

    def _speculation(self, head: queries.Head) -> int:
        """How many of the newest articles workers render while the build
        plans: at most as many as all feeds together can show."""
        taxonomy = self.config.taxonomy
        regions, categories = len(taxonomy.regions), len(taxonomy.categories)
        feeds = (1 + regions) * (1 + categories)
        return min(head.total, feeds * self.config.feeds.items)

    def _replan(
        self,
        conn: Connection,
        marker: queries.Marker,
        builds: Mapping[str, queries.StoredBuild],
        head: queries.Head,
    ) -> _Planned | None:
        """The last build's plan carried forward over the changes since, or
        ``None`` when only a full index walk can tell (see the module doc)."""
        previous = previous_plan(marker, builds, self.formats)
        if previous is None:
            return None
        changes = queries.changes_since(conn, marker.head, lookback=LOOKBACK)
        if head.total != marker.head.total + sum(c.kind == "new" for c in changes):
            return None  # deleted articles, or inserts stamped before the marker
        taxonomy, items = self.config.taxonomy, self.config.feeds.items
        matcher = Matcher(taxonomy)
        changes = unseen(previous, changes, matcher)
        selections = touched(previous, changes, matcher)
        times = queries.times_of(conn, times_needed(previous, changes, selections, matcher))
        published = {i: when for i, (when, _) in times.items()}
        draft = replan(previous, changes, selections, published, matcher, items=items)
        ids = {
            s: found if found is not None else queries.top_items(conn, taxonomy, s, items=items)
            for s, found in draft.ids.items()
        }
        counts = draft.counts
        if counts is None:
            counts = queries.count_selections(conn, taxonomy)
        updated = {i: when for i, (_, when) in times.items()}
        return _Planned(previous.updated(taxonomy, ids, counts), updated=updated)

    def _read_ahead(
        self,
        builds: Mapping[str, queries.StoredBuild],
        selections: Collection[Selection],
        files: ThreadPoolExecutor,
    ) -> dict[str, Future[list[bytes]]]:
        """Start reading the previous files of ``selections`` (the feeds a
        carried plan re-renders reuse their entries), when they are few
        enough to hold at once (one batch); else :meth:`_reuse` reads them
        batch by batch."""
        if len(selections) > BATCH:  # not all at once: _reuse reads per batch
            return {}
        out = {}
        for selection in sorted(selections, key=sort_key):  # the order they render in
            for fmt in self.formats:
                stored = builds.get(selection.path(fmt))
                if stored is not None:
                    out[stored.path] = files.submit(self._entries_of, stored, fmt)
        return out

    def _up_to_date(self, start: _Start) -> bool:
        """Whether nothing changed since the last build and every file it
        wrote is still there (see :func:`intact`)."""
        marker, builds = start.marker, start.builds
        if marker is None or marker.head != start.head or not builds:
            return False
        found = list_output(self.output, start.recent)
        pages = (INDEX_PATH, OPML_PATH)
        return all(intact(b, found) for b in builds.values()) and not any(
            writer.missing_or_empty(self.output / p) for p in pages
        )

    def _render_all(self, render: _Render, selections: Sequence[Selection]) -> list[_Pending]:
        """Start writing every document of ``selections``: spliced from new
        entries and the previous file where the feed only gained articles
        (see :func:`fresh_in_front`), else rendered (:meth:`_render_each`)."""
        spliced, rest = self._spliceable(render, selections)
        read = self._read_ahead(render.builds, rest, render.files) if render.builds else {}
        pending, late = self._splice_all(render, spliced)
        return pending + self._render_each(render, sorted([*rest, *late], key=sort_key), read)

    def _spliceable(
        self, render: _Render, selections: Sequence[Selection]
    ) -> tuple[list[tuple[Selection, int]], list[Selection]]:
        """``selections`` that can be spliced, with how many new items each
        starts with, and the rest. Only incremental builds without worker
        processes splice (a full build has no previous files to cut from)."""
        if render.workers is not None or not render.builds:
            return [], list(selections)
        spliced, rest = [], []
        for selection in selections:
            items = {self._previous_items(render.builds, selection, fmt) for fmt in self.formats}
            previous = items.pop() if len(items) == 1 else None  # the same in every format
            fresh = fresh_in_front(render.plan.ids(selection), previous or ())
            if fresh is None:
                rest.append(selection)
            else:
                spliced.append((selection, fresh))
        return spliced, rest

    @staticmethod
    def _previous_items(
        builds: Mapping[str, queries.StoredBuild], selection: Selection, fmt: str
    ) -> tuple[str, ...] | None:
        stored = builds.get(selection.path(fmt))
        return None if stored is None else stored.items

    def _splice_all(
        self, render: _Render, spliced: Sequence[tuple[Selection, int]]
    ) -> tuple[list[_Pending], list[Selection]]:
        """Render the heads and new entries of the ``spliced`` feeds here and
        hand each document to a file thread, which cuts the run of previous
        entries from its file (:func:`_splice_write`); also the feeds left to
        render instead (an article gone from the store since planning)."""
        the_plan = render.plan
        split = [(s, the_plan.ids(s)[:n], the_plan.ids(s)[n:]) for s, n in spliced]
        renderer = self._fresh(s[1] for s in split)
        times = self._updated_times(render, (token_id(t) for _, _, kept in split for t in kept))
        pending: list[_Pending] = []
        late = []
        for selection, fresh, kept in split:
            fresh_ids, kept_ids = [token_id(t) for t in fresh], [token_id(t) for t in kept]
            if not all(map(renderer.has, fresh_ids)) or not all(i in times for i in kept_ids):
                late.append(selection)  # rendered instead, without the missing article
                continue
            updated = max(chain(map(renderer.updated, fresh_ids), (times[i] for i in kept_ids)))
            for fmt, head in renderer.heads(selection, updated, self.formats).items():
                stored = render.builds[selection.path(fmt)]
                entries = [renderer.entry(i, fmt) for i in fresh_ids]
                job = render.files.submit(
                    _splice_write, self.output, stored, fmt, head, entries, len(kept)
                )
                pending.append((selection, stored.path, the_plan.ids(selection), job))
        return pending, late

    def _fresh(self, items: Iterable[Sequence[str]]) -> Renderer:
        """A renderer holding the entries of the articles among ``items``."""
        renderer = Renderer(self._site)
        ids = list(dict.fromkeys(token_id(t) for tokens in items for t in tokens))
        if ids:
            with self.db.connect() as conn:
                renderer.add(queries.load_by_id(conn, ids).values(), self.formats)
        return renderer

    def _updated_times(self, render: _Render, ids: Iterable[str]) -> dict[str, datetime]:
        """The ``updated`` times of ``ids``: read by the planner, else from
        the store (an article gone from it stays out)."""
        known = render.planned.updated
        wanted = set(ids)
        times = {i: known[i] for i in wanted if i in known}
        missing = wanted.difference(times)
        if missing:
            with self.db.connect() as conn:
                found = queries.times_of(conn, missing)
            times.update((i, when) for i, (_, when) in found.items())
        return times

    def _render_each(
        self,
        render: _Render,
        selections: Sequence[Selection],
        read: Mapping[str, Future[list[bytes]]],
    ) -> list[_Pending]:
        """Render documents in this thread (feedgen is not thread-safe), their
        entries in ``render.workers`` when given; compare, write and gzip in
        the ``render.files`` threads (file I/O, zlib and hashing release the
        GIL). ``read``: previous files already being read."""
        pending: list[_Pending] = []
        renderer = Renderer(self._site)
        size = render.batch
        batches = [selections[i : i + size] for i in range(0, len(selections), size)]
        for batch in self._prepared(renderer, render, batches, read):
            done = len(pending)
            for selection in batch:
                tokens = render.plan.ids(selection)
                # an article deleted since planning is left out; the
                # next build sees the count drop and plans afresh
                ids = [i for i in map(token_id, tokens) if renderer.has(i)]
                for fmt, data in renderer.render_ids(selection, ids, self.formats).items():
                    path = selection.path(fmt)
                    job = render.files.submit(_write, self.output / path, data)
                    pending.append((selection, path, tokens, job))
            for *_, job in pending[:done]:
                job.result()  # at most two batches of documents in memory
        return pending

    def _finish(self, render: _Render, pending: Sequence[_Pending]) -> list[_Done]:
        """Wait for every document; render the spliced ones whose previous
        file turned out not to hold what the build state records."""
        done: dict[str, _Done] = {}
        failed: set[Selection] = set()
        for selection, path, tokens, job in pending:
            try:
                done[path] = (path, tokens, *job.result())
            except _Stale:
                failed.add(selection)
        if failed:
            log.info("%d feed(s) changed on disk since the last build: rendered", len(failed))
            again = self._render_each(render, sorted(failed, key=sort_key), {})
            for _, path, tokens, job in again:
                written, check = job.result()
                earlier = done.get(path)  # another format's splice may have written it
                done[path] = (path, tokens, written or (earlier is not None and earlier[2]), check)
        return list(done.values())

    def _prepared(
        self,
        renderer: Renderer,
        render: _Render,
        batches: Sequence[Sequence[Selection]],
        read: Mapping[str, Future[list[bytes]]],
    ) -> Iterator[Sequence[Selection]]:
        """Yield each batch once ``renderer`` holds the entries of its articles:
        reused from the last build's files, rendered by ``render.workers``
        (``LOOKAHEAD`` batches ahead) or, for what is still missing, here."""
        workers, the_plan = render.workers, render.plan
        if workers is not None:
            workers.settle(renderer)
        queued: deque[tuple[Sequence[Selection], list[Future[list[Rendered]]]]] = deque()
        upcoming = iter(batches)
        while True:
            while workers is not None and not workers.broken and len(queued) < LOOKAHEAD:
                batch = next(upcoming, None)
                if batch is None:
                    break
                missing = [i for i in self._ids(the_plan, batch) if not renderer.has(i)]
                queued.append((batch, workers.submit(missing, render.links)))
            if queued and workers is not None:
                batch, futures = queued.popleft()
                workers.collect(futures, renderer)
            else:
                batch = next(upcoming, None)
                if batch is None:
                    return
                self._reuse(renderer, render, batch, read)
            self._load(renderer, the_plan, batch, render.links)
            yield batch

    @staticmethod
    def _ids(the_plan: Plan, batch: Sequence[Selection]) -> list[str]:
        """The article ids of ``batch``'s items, each once, in a stable order."""
        return list(dict.fromkeys(token_id(t) for s in batch for t in the_plan.ids(s)))

    def _reuse(
        self,
        renderer: Renderer,
        render: _Render,
        batch: Sequence[Selection],
        read: Mapping[str, Future[list[bytes]]],
    ) -> None:
        """Seed ``renderer`` with the entries of ``batch``'s previous files whose
        article is still at the same revision. The build state tells which
        files hold which items, so only files with an item still missing are
        read (and checked against their recorded hash) in the file threads."""
        wanted = {t for s in batch for t in render.plan.ids(s) if not renderer.has(token_id(t))}
        sources = self._sources(render.builds, batch, wanted)
        found: dict[str, dict[str, bytes]] = {}
        jobs = [
            read.get(stored.path) or render.files.submit(self._entries_of, stored, fmt)
            for stored, fmt in sources
        ]
        for (stored, fmt), job in zip(sources, jobs, strict=True):
            entries = job.result()
            for token, data in zip(stored.items, entries, strict=False):
                if token in wanted:
                    found.setdefault(token, {})[fmt] = data
        ready = {token_id(t): e for t, e in found.items() if len(e) == len(self.formats)}
        if not ready:
            return
        for article_id, when in self._updated_times(render, ready).items():
            renderer.seed(article_id, when, ready[article_id])

    def _sources(
        self,
        builds: Mapping[str, queries.StoredBuild],
        batch: Sequence[Selection],
        wanted: Collection[str],
    ) -> list[tuple[queries.StoredBuild, str]]:
        """Previous files that together hold every ``wanted`` item they can,
        per format: a file is taken when it holds an item not covered yet."""
        out = []
        for fmt in self.formats:
            missing = set(wanted)
            for selection in batch:
                stored = builds.get(selection.path(fmt))
                if stored is not None and not missing.isdisjoint(stored.items):
                    out.append((stored, fmt))
                    missing.difference_update(stored.items)
        return out

    def _entries_of(self, stored: queries.StoredBuild, fmt: str) -> list[bytes]:
        """The entries of a file exactly as the build state recorded it, else none."""
        data = as_recorded(self.output, stored)
        if data is None:
            return []
        entries = split_entries(data, fmt)
        return entries if entries is not None and len(entries) == len(stored.items) else []

    def _load(
        self,
        renderer: Renderer,
        the_plan: Plan,
        batch: Sequence[Selection],
        links: Links | None = None,
    ) -> None:
        """Render the entries of ``batch``'s articles not rendered yet
        (``links``: every article's slugs, when the planner read them)."""
        ids = self._ids(the_plan, batch)
        renderer.trim(keep=set(ids))
        missing = [i for i in ids if not renderer.has(i)]
        if missing:
            with self.db.connect() as conn:
                renderer.add(queries.load_by_id(conn, missing, links).values(), self.formats)

    @staticmethod
    def _scan(present: Collection[str]) -> Iterator[str]:
        """Feed documents (and orphaned ``.gz`` siblings) among ``present``."""
        for path in present:
            folder, _, name = path.rpartition("/")
            name = name.removesuffix(".gz")
            if os.path.splitext(name)[1] in FEED_SUFFIXES and not name.startswith("."):
                yield f"{folder}/{name}"

    def _remove_leftovers(self, present: Iterable[str]) -> None:
        """Delete temporary files a build that crashed left under ``feeds/``
        (builds hold the lock: no other one is writing)."""
        for path in present:
            if path.rpartition("/")[2].startswith(writer.TEMP_PREFIX):
                try:
                    (self.output / path).unlink(missing_ok=True)
                except OSError as e:
                    log.warning("cannot remove leftover %s: %s", path, e.strerror or e)

    def _remove(self, paths: Sequence[str]) -> list[str]:
        removed = [p for p in paths if writer.remove(self.output / p)]
        for path in sorted({(self.output / p).parent for p in paths}, reverse=True):
            if path != self.output and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return removed

    def _pages(self, the_plan: Plan, *, opml: bool = True) -> int:
        """Write the index page and, when ``opml`` or it is missing, the OPML
        file (it lists feeds, not counts: it changes only with the set of
        feeds or the config, and either means ``opml``)."""
        catalog = build_catalog(self._site, the_plan, self.formats)
        newest = self._newest(the_plan)
        page = IndexPage(self._site).render(catalog, newest.published if newest else None)
        docs = {INDEX_PATH: page}
        if opml or writer.missing_or_empty(self.output / OPML_PATH):
            docs[OPML_PATH] = render_opml(self._site, catalog)
        return sum(writer.write_if_changed(self.output / p, d) for p, d in docs.items())

    def _newest(self, the_plan: Plan) -> Article | None:
        first = the_plan.ids(Selection())[:1]
        if not first:
            return None
        with self.db.connect() as conn:
            found = queries.load_by_id(conn, [token_id(first[0])])
        return next(iter(found.values()), None)

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
