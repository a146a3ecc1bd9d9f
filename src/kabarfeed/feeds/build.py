"""The incremental feed builder: store -> plan -> render what changed -> files.

One build:

1. reads a light index of every article (id, revision, regions, categories)
   and plans every feed: its article count and newest ``items`` tokens;
2. renders only the feeds whose tokens differ from the last build's (a new,
   edited, reclassified or dropped article changes them), whose file is
   missing, or all of them on ``full`` or when the render fingerprint (config,
   taxonomy, version) changed;
3. writes each document atomically with a ``.gz`` sibling, leaving identical
   bytes untouched, and removes feeds that no longer exist;
4. records the build state (``feed_builds``) and a marker (``state``) in one
   transaction, then pings the WebSub hub for the feeds that changed.

When nothing changed since the marker, step 1 is skipped entirely.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import feedgen.version
import httpx

from kabarfeed import __version__
from kabarfeed.config import Config
from kabarfeed.feeds import queries, writer
from kabarfeed.feeds.catalog import build_catalog
from kabarfeed.feeds.index import INDEX_PATH, IndexPage
from kabarfeed.feeds.opml import OPML_PATH, render_opml
from kabarfeed.feeds.render import FeedSite, Renderer
from kabarfeed.feeds.selection import FORMATS, Plan, Selection, plan
from kabarfeed.models import Article, Clock
from kabarfeed.store import Database

log = logging.getLogger(__name__)
BATCH = 64
"""Selections rendered per article-loading round (bounds memory)."""
LOCK_NAME = ".kabarfeed-build.lock"
PING_BATCH = 50
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
    exists: Callable[[str], bool],
) -> tuple[Selection, ...]:
    """Selections whose documents must be rendered this build."""
    out = []
    for selection in the_plan.selections:
        items = the_plan.ids(selection)
        for fmt in formats:
            path = selection.path(fmt)
            stored = builds.get(path)
            if full or stored is None or stored.items != items or not exists(path):
                out.append(selection)
                break
    return tuple(out)


def to_remove(the_plan: Plan, formats: Sequence[str], known: Collection[str]) -> tuple[str, ...]:
    """Known feed paths that the plan no longer publishes (gone from config,
    format disabled, region x category pair without articles)."""
    wanted = {s.path(f) for s in the_plan.selections for f in formats}
    return tuple(sorted(p for p in known if p not in wanted))


def _article_id(token: str) -> str:
    return token.split(":", 1)[0]


def content_hash(data: bytes) -> str:
    """The hash recorded for a written document (BLAKE2b-256: fast, GIL-free)."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def _write(path: Path, data: bytes) -> tuple[bool, str]:
    """Worker: write ``data`` unless unchanged; whether written, and its hash."""
    return writer.write_if_changed(path, data), content_hash(data)


# ---------------------------------------------------------------- I/O


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
        self._ping([self._site.url(p) for p in report.written_paths])
        return report

    def _build(self, full: bool) -> BuildReport:
        now = self.clock()
        fp = fingerprint(self.config)
        with self.db.connect() as conn:
            marker = queries.load_marker(conn)
            head = queries.store_version(conn)
            builds = queries.load_builds(conn)
            full = full or marker is None or marker.fingerprint != fp
            if not full and self._up_to_date(marker, head, builds):
                return BuildReport(unchanged=len(builds))
            the_plan = plan(
                self.config.taxonomy, queries.index_rows(conn), items=self.config.feeds.items
            )
        stale = to_remove(the_plan, self.formats, set(builds) | set(self._scan()))
        selections = to_render(
            the_plan, builds, self.formats, full=full, exists=lambda p: (self.output / p).is_file()
        )
        written, saved = self._render_all(the_plan, selections)
        removed = self._remove(stale)
        pages = self._pages(the_plan)
        with self.db.begin() as conn:
            queries.save_builds(conn, saved, stale, now=now)
            queries.save_marker(conn, queries.Marker(now, head, fp))
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

    def _up_to_date(
        self, marker: queries.Marker | None, head: object, builds: Mapping[str, queries.StoredBuild]
    ) -> bool:
        if marker is None or marker.head != head or not builds:
            return False
        pages = (INDEX_PATH, OPML_PATH)
        return all((self.output / p).is_file() for p in (*builds, *pages))

    def _render_all(
        self, the_plan: Plan, selections: Sequence[Selection]
    ) -> tuple[list[str], list[queries.StoredBuild]]:
        """Render in this thread (feedgen is not thread-safe); compare, write and
        gzip in two worker threads (file I/O and zlib release the GIL)."""
        pending: list[tuple[str, tuple[str, ...], Future[tuple[bool, str]]]] = []
        renderer = Renderer(self._site)
        cache: dict[str, Article] = {}
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="kf-write") as pool:
            for start in range(0, len(selections), BATCH):
                batch = selections[start : start + BATCH]
                cache = self._load(the_plan, batch, cache)
                done = len(pending)
                for selection in batch:
                    tokens = the_plan.ids(selection)
                    items = [cache[_article_id(t)] for t in tokens if _article_id(t) in cache]
                    for fmt, data in renderer.render(selection, items, self.formats).items():
                        path = selection.path(fmt)
                        job = pool.submit(_write, self.output / path, data)
                        pending.append((path, tokens, job))
                for *_, job in pending[:done]:
                    job.result()  # at most two batches of documents in memory
        saved = [queries.StoredBuild(p, job.result()[1], tokens) for p, tokens, job in pending]
        return [path for path, _, job in pending if job.result()[0]], saved

    def _load(
        self, the_plan: Plan, batch: Sequence[Selection], cache: dict[str, Article]
    ) -> dict[str, Article]:
        """Articles of ``batch``: kept ones from ``cache``, the rest from the store."""
        ids = {_article_id(t) for s in batch for t in the_plan.ids(s)}
        kept = {i: cache[i] for i in ids if i in cache}
        with self.db.connect() as conn:
            kept.update(queries.load_by_id(conn, ids - kept.keys()))
        return kept

    def _scan(self) -> Iterator[str]:
        """Feed documents (and orphaned ``.gz`` siblings) present under ``feeds/``."""
        root = self.output / "feeds"
        if not root.is_dir():
            return
        for path in root.rglob("*"):
            name = path.name[:-3] if path.name.endswith(".gz") else path.name
            if Path(name).suffix in FEED_SUFFIXES and not name.startswith("."):
                yield path.with_name(name).relative_to(self.output).as_posix()

    def _remove(self, paths: Sequence[str]) -> list[str]:
        removed = [p for p in paths if writer.remove(self.output / p)]
        for path in sorted({(self.output / p).parent for p in paths}, reverse=True):
            if path != self.output and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return removed

    def _pages(self, the_plan: Plan) -> int:
        catalog = build_catalog(self._site, the_plan, self.formats)
        newest = self._newest(the_plan)
        page = IndexPage(self._site).render(catalog, newest.published if newest else None)
        docs = {INDEX_PATH: page, OPML_PATH: render_opml(self._site, catalog)}
        return sum(writer.write_if_changed(self.output / p, d) for p, d in docs.items())

    def _newest(self, the_plan: Plan) -> Article | None:
        first = the_plan.ids(Selection())[:1]
        if not first:
            return None
        with self.db.connect() as conn:
            found = queries.load_by_id(conn, [first[0].split(":", 1)[0]])
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
