"""Ingestion: sources -> normalise -> classify -> dedupe -> store.

Sources are read concurrently (``[ingest] concurrency`` at a time), each fetch
within one total deadline. One bad source never stops the run: its failure is
stored on its row (``last_error``, ``error_count``, ``next_fetch_at`` with
backoff) and logged, and nothing already stored is touched. One bad item never
costs its source (:mod:`kabarfeed.sources.isolation`): it is rejected with its
reason, kept on the source's row beside what was cut to fit the limits.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import httpx

from kabarfeed.classify import Signals, classify
from kabarfeed.config import Config, SourceConfig
from kabarfeed.errors import KabarfeedError, ParseError, SourceError
from kabarfeed.models import Article, Clock, Image, RawArticle, Taxonomy
from kabarfeed.normalize import (
    absolute_url,
    canonical_url,
    clean_text,
    content_hash,
    cut_html,
    cut_markup,
    decide_article_dates,
    first_image,
    sanitize_html,
    stable_key,
    truncate,
)
from kabarfeed.sources import directory, feed
from kabarfeed.sources import fetch as fetching
from kabarfeed.sources.isolation import Rejected, check_text, isolate
from kabarfeed.store import Database
from kabarfeed.store import articles as article_store
from kabarfeed.store import sources as source_store
from kabarfeed.textformat import find_dateline

log = logging.getLogger(__name__)
SUMMARY_CHARS = 500
LEAD_CHARS = 600


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """What one source contributed to a run."""

    source: str
    ok: bool
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: bool = False
    error: str | None = None
    warnings: tuple[str, ...] = ()
    changed_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The whole run: one outcome per source."""

    outcomes: tuple[SourceOutcome, ...] = ()

    @property
    def failed(self) -> int:
        """Sources that failed outright."""
        return sum(1 for o in self.outcomes if not o.ok)

    @property
    def succeeded(self) -> int:
        """Sources read (possibly with warnings)."""
        return sum(1 for o in self.outcomes if o.ok)

    def total(self, attr: str) -> int:
        """Sum of ``new``, ``updated`` or ``unchanged`` over sources."""
        return sum(int(getattr(o, attr)) for o in self.outcomes)

    @property
    def changed_ids(self) -> tuple[str, ...]:
        """Ids of articles inserted or edited in this run."""
        return tuple(i for o in self.outcomes for i in o.changed_ids)

    @property
    def all_failed(self) -> bool:
        """True when sources were attempted and none worked."""
        attempted = [o for o in self.outcomes if not o.skipped]
        return bool(attempted) and all(not o.ok for o in attempted)

    def summary(self) -> str:
        """One line for logs and non-interactive output."""
        return (
            f"sources ok {self.succeeded}, failed {self.failed}; articles new "
            f"{self.total('new')}, updated {self.total('updated')}, unchanged "
            f"{self.total('unchanged')}"
        )


# ---------------------------------------------------------------- pure part


def retry_delay(
    error_count: int, *, base: timedelta, maximum: timedelta, rand: Callable[[], float]
) -> timedelta:
    """Exponential backoff with +-20% jitter: base, 2*base, 4*base ... up to maximum."""
    raw = base.total_seconds() * (2 ** max(error_count - 1, 0))
    capped = min(raw, maximum.total_seconds())
    return timedelta(seconds=capped * (0.8 + 0.4 * rand()))


def next_regular_fetch(
    now: datetime, interval: timedelta, *, jitter: float, rand: Callable[[], float]
) -> datetime:
    """The next fetch for a healthy source: interval, spread by +-jitter."""
    spread = interval.total_seconds() * jitter * (2 * rand() - 1)
    return now + interval + timedelta(seconds=spread)


@dataclass(frozen=True, slots=True)
class FieldLimits:
    """Caps applied to every article at ingest (``[ingest] max_*``)."""

    title: int = 1000
    author: int = 200
    summary: int = 10_000
    tags: int = 50
    tag: int = 100
    body: int = 1_000_000

    @classmethod
    def of(cls, config: Config) -> FieldLimits:
        """The limits of ``config``."""
        i = config.ingest
        return cls(
            i.max_title_chars,
            i.max_author_chars,
            i.max_summary_chars,
            i.max_tags,
            i.max_tag_chars,
            i.max_body_chars,
        )


@dataclass(frozen=True, slots=True)
class PreparedItem:
    """One article ready to store, its notes, and what was cut to fit the limits."""

    prepared: article_store.Prepared
    warnings: tuple[str, ...] = ()
    cut: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Capped:
    """A raw article within :class:`FieldLimits`, and what was cut."""

    raw: RawArticle
    cut: tuple[str, ...]


def _cap_text(name: str, value: str | None, limit: int, cut: list[str]) -> str | None:
    if value is None or len(value) <= limit:
        return value
    cut.append(f"{name} cut to {limit} characters (was {len(value)})")
    return truncate(value, limit)


def _cap_list(
    name: str, values: tuple[str, ...], limits: FieldLimits, cut: list[str]
) -> tuple[str, ...]:
    kept = tuple(v if len(v) <= limits.tag else v[: limits.tag] for v in values[: limits.tags])
    if len(values) > limits.tags:
        cut.append(f"{name}: kept the first {limits.tags} of {len(values)}")
    if any(len(v) > limits.tag for v in values[: limits.tags]):
        cut.append(f"{name}: entries cut to {limits.tag} characters")
    return kept


def cap_fields(raw: RawArticle, limits: FieldLimits) -> Capped:
    """``raw`` with every free-text field within ``limits`` (the body is cut later,
    once sanitised). Pure."""
    cut: list[str] = []
    head = raw.title[: limits.title * 4]  # markup and spaces fold away: read a little more
    title = clean_text(head)
    if len(title) > limits.title or len(head) < len(raw.title):
        cut.append(f"title cut to {limits.title} characters (was {len(raw.title)})")
        title = truncate(title, limits.title)
    summary = raw.summary
    if summary is not None and len(summary) > limits.summary:
        cut.append(f"summary cut to {limits.summary} characters (was {len(summary)})")
        summary = cut_markup(summary, limits.summary)
    content = raw.content_html
    if content is not None and len(content) > 4 * limits.body:
        content = cut_markup(content, 4 * limits.body)  # sanitised and cut exactly below
    capped = replace(
        raw,
        title=title,
        author=_cap_text("author", clean_text(raw.author) or None, limits.author, cut),
        summary=summary,
        content_html=content,
        tags=_cap_list("tags", raw.tags, limits, cut),
        categories=_cap_list("categories", raw.categories, limits, cut),
        regions=_cap_list("regions", raw.regions, limits, cut),
    )
    return Capped(capped, tuple(cut))


def _lead(content_html: str) -> str:
    return truncate(clean_text(content_html), LEAD_CHARS)


def _rezone(moment: datetime | None, zone: str | None) -> datetime | None:
    """The same wall-clock time in ``zone`` (for dates written without a zone)."""
    if moment is None or zone is None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(zone))


def _guid_key(raw: RawArticle) -> str | None:
    """Globally unique guids (URLs, tag: URIs) dedupe across sources; others
    only within their own source."""
    if not raw.guid:
        return None
    guid = raw.guid.strip()
    if guid.startswith(("http://", "https://", "tag:", "urn:")):
        return stable_key("guid", guid)
    return stable_key("guid", raw.source, guid)


_MAX_IMAGE_TYPE = 100  # the column's width
_MAX_IMAGE_LENGTH = 2**31 - 1  # a 32-bit integer column


def _image(raw: RawArticle, content: str, base: str, caption_chars: int) -> Image | None:
    if raw.image and raw.image.url:
        url = absolute_url(raw.image.url, base)
        if url:
            caption = truncate(clean_text(raw.image.caption), caption_chars) or None
            kind = (
                raw.image.type
                if raw.image.type and len(raw.image.type) <= _MAX_IMAGE_TYPE
                else None
            )
            length = raw.image.length if (raw.image.length or 0) <= _MAX_IMAGE_LENGTH else None
            return Image(url, caption, kind, length)
    found = first_image(content)
    return Image(found) if found else None


def prepare(
    raw: RawArticle,
    *,
    source: SourceConfig,
    taxonomy: Taxonomy,
    language: str,
    default_tz: str,
    now: datetime,
    limits: FieldLimits = FieldLimits(),
) -> PreparedItem:
    """Normalise, cap and classify one raw article. Pure; raises ParseError when
    the article has no usable title or link, or holds text that cannot be stored."""
    check_text(raw.origin, _text_fields(raw), nul=False)
    capped = cap_fields(raw, limits)
    raw, cut = capped.raw, list(capped.cut)
    title = raw.title
    url = absolute_url(raw.url, raw.origin if "://" in raw.origin else None)
    if not title:
        raise ParseError(f"{raw.origin}: an item has no title")
    if not url:
        raise ParseError(f"{raw.origin}: item {title[:60]!r} has no usable link")
    content = sanitize_html(raw.content_html or raw.summary, base_url=url)
    if len(content) > limits.body:
        cut.append(f"body cut to {limits.body} characters (was {len(content)})")
        content = cut_html(content, limits.body, base_url=url)
    summary = truncate(clean_text(raw.summary or content), SUMMARY_CHARS)
    lead = _lead(content)
    dateline = None if raw.dateline_city else find_dateline(lead)
    signals = Signals(
        title=title,
        lead=lead,
        dateline_city=raw.dateline_city or (dateline.city if dateline else None),
        explicit_regions=raw.regions,
        explicit_categories=raw.categories,
        tags=raw.tags,
        explicit_advertorial=raw.advertorial,
        source_region=source.region,
        source_category=source.category,
    )
    decided = classify(taxonomy, signals)
    region_tz = next((r.timezone for r in taxonomy.regions if r.slug in decided.regions[:1]), None)
    floating = raw.floating_time and region_tz is not None
    dates = decide_article_dates(
        _rezone(raw.published, region_tz) if floating else raw.published,
        _rezone(raw.updated, region_tz) if floating else raw.updated,
        now=now,
    )
    chash = content_hash(title, content or summary)
    article = Article(
        id=stable_key("article", raw.source, raw.guid or canonical_url(url))[:24],
        source=raw.source,
        url=url,
        title=title,
        published=dates.published,
        updated=dates.updated,
        first_seen=now,
        content_hash=chash,
        guid=raw.guid,
        author=raw.author,
        summary=summary,
        content_html=content,
        image=_image(raw, content, url, limits.title),
        regions=decided.regions,
        categories=decided.categories,
        advertorial=decided.advertorial,
        language=(raw.language or language).lower()[:16],
        local_tz=(region_tz if floating else raw.local_tz) or region_tz or default_tz,
    )
    check_text(raw.origin, _stored_text(article))
    revision = stable_key(
        article.url,
        article.title,
        article.author,
        article.summary,
        article.content_html,
        repr(article.image),
        ",".join(article.regions),
        ",".join(article.categories),
        str(article.advertorial),
        # a date the clock gave (no usable one upstream) is no edit: it is given once
        "dated at first sight" if dates.from_clock else article.published.isoformat(),
    )
    prepared = article_store.Prepared(
        article,
        _guid_key(raw),
        stable_key(canonical_url(url)),
        revision,
        dated_by_clock=dates.from_clock,
    )
    return PreparedItem(prepared, (*raw.warnings, *dates.warnings), tuple(cut))


def _text_fields(raw: RawArticle) -> dict[str, object]:
    """The text a source handed over, by field name (for :func:`check_text`)."""
    image = raw.image
    return {
        "title": raw.title,
        "guid": raw.guid,
        "url": raw.url,
        "author": raw.author,
        "summary": raw.summary,
        "content": raw.content_html,
        "image": (image.url, image.caption, image.type) if image else None,
        "regions": raw.regions,
        "categories": raw.categories,
        "tags": raw.tags,
        "dateline": raw.dateline_city,
        "language": raw.language,
        "local_tz": raw.local_tz,
    }


def _stored_text(article: Article) -> dict[str, object]:
    """The text columns of ``article`` (NUL and lone surrogates are refused there)."""
    image = article.image
    return {
        "title": article.title,
        "guid": article.guid,
        "url": article.url,
        "author": article.author,
        "summary": article.summary,
        "content": article.content_html,
        "image": (image.url, image.caption, image.type) if image else None,
        "language": article.language,
        "local_tz": article.local_tz,
    }


# ---------------------------------------------------------------- I/O part


@dataclass(frozen=True, slots=True)
class _Read:
    """What reading one source gave: articles and problems, or why it failed."""

    source: SourceConfig
    state: source_store.SourceState | None
    now: datetime
    raws: tuple[RawArticle, ...] = ()
    problems: tuple[str, ...] = ()
    """Source-level warnings (e.g. a feed recovered from broken XML)."""
    rejected: tuple[str, ...] = ()
    """Items the source could not read (files, entries), each with its reason."""
    validators: tuple[str | None, str | None] = (None, None)
    skipped: bool = False
    error: str | None = None


@dataclass
class Ingestor:
    """Runs ingestion for configured sources against one database.

    Holds no configuration of its own beyond what it is given; build a new one
    after a config reload.
    """

    config: Config
    db: Database
    clock: Clock
    client: httpx.Client | None = None
    rand: Callable[[], float] = field(default=random.random)

    def run(
        self,
        only: Sequence[str] | None = None,
        *,
        due_only: bool = False,
        progress: Callable[[SourceOutcome], None] | None = None,
    ) -> IngestReport:
        """Ingest every enabled source (or those named), ``[ingest] concurrency``
        at a time; outcomes come in configuration order, ``progress`` is called
        as each source finishes."""
        selected = [s for s in self.config.sources if s.enabled and (not only or s.name in only)]
        with self._shared_client():
            outcomes = self._run_all(selected, due_only, progress)
        return IngestReport(tuple(outcomes))

    def _run_all(
        self,
        selected: Sequence[SourceConfig],
        due_only: bool,
        progress: Callable[[SourceOutcome], None] | None,
    ) -> list[SourceOutcome]:
        workers = max(1, min(self.config.ingest.concurrency, len(selected)))
        outcomes: list[SourceOutcome] = []
        with ThreadPoolExecutor(workers, thread_name_prefix="kabarfeed-ingest") as pool:
            reading = [pool.submit(self._collect, source, due_only) for source in selected]
            # Stored in configuration order, as one after another would: the first
            # source listed owns an article that several sources carry.
            for future in reading:
                outcome = self._finish(future.result())  # _collect never raises
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
        return outcomes

    @contextmanager
    def _shared_client(self) -> Iterator[None]:
        """One HTTP client (connection pool, TLS context) for a whole run."""
        if self.client is not None:
            yield
            return
        self.client = fetching.make_client(self._limits())
        try:
            yield
        finally:
            self.client.close()
            self.client = None

    def _limits(self) -> fetching.FetchLimits:
        return fetching.FetchLimits(
            timeout=self.config.ingest.timeout.total_seconds(),
            max_bytes=self.config.ingest.max_bytes,
            max_redirects=self.config.ingest.max_redirects,
        )

    def run_source(self, source: SourceConfig, *, due_only: bool = False) -> SourceOutcome:
        """Ingest one source; every failure is recorded on its row, never raised."""
        return self._finish(self._collect(source, due_only))

    def _collect(self, source: SourceConfig, due_only: bool) -> _Read:
        """Read (or fetch and parse) one source: the part of a run done concurrently."""
        now = self.clock()
        location = str(source.path) if source.kind == "directory" else (source.url or "")
        try:
            with self.db.begin() as conn:
                source_store.ensure_source(conn, source.name, source.kind, location, now=now)
                state = source_store.get_source(conn, source.name)
        except Exception as e:  # the database: reported, the run goes on
            log.exception("cannot read the state of source %s", source.name)
            return _Read(source, None, now, error=f"cannot read source state: {e}")
        if due_only and state and state.next_fetch_at and state.next_fetch_at > now:
            return _Read(source, state, now, skipped=True)
        try:
            return self._read(source, state, now)
        except KabarfeedError as e:
            return _Read(source, state, now, error=str(e))
        except Exception as e:  # one source must never abort the run
            log.exception("unexpected error ingesting source %s", source.name)
            return _Read(source, state, now, error=f"internal error: {type(e).__name__}: {e}")

    def _finish(self, read: _Read) -> SourceOutcome:
        """Store what :meth:`_collect` read, or record why it failed."""
        source, state, now = read.source, read.state, read.now
        if read.skipped:
            return SourceOutcome(source.name, ok=True, skipped=True)
        try:
            if read.error is not None:
                return self._fail(source, state, now, read.error)
            return self._done(read)
        except KabarfeedError as e:
            return self._fail(source, state, now, str(e))
        except Exception as e:  # one source must never abort the run
            log.exception("unexpected error storing source %s", source.name)
            return self._fail(source, state, now, f"internal error: {type(e).__name__}: {e}")

    def _fail(
        self,
        source: SourceConfig,
        state: source_store.SourceState | None,
        now: datetime,
        message: str,
    ) -> SourceOutcome:
        count = (state.error_count if state else 0) + 1
        delay = retry_delay(
            count,
            base=self.config.ingest.retry_base,
            maximum=max(self.config.ingest.retry_max, source.interval),
            rand=self.rand,
        )
        with self.db.begin() as conn:
            source_store.record_failure(
                conn, source.name, message, now=now, next_fetch_at=now + delay
            )
        log.warning(
            "source %s failed (%d in a row, retry in %s): %s",
            source.name,
            count,
            _human(delay),
            message,
            extra={"source": source.name},
        )
        return SourceOutcome(source.name, ok=False, error=message)

    def _read(
        self, source: SourceConfig, state: source_store.SourceState | None, now: datetime
    ) -> _Read:
        if source.kind == "directory":
            raws, unread = self._read_directory(source)
            return _Read(source, state, now, tuple(raws), rejected=tuple(unread))
        fetched = self._fetch_feed(source, state)
        if fetched is None:  # not modified
            kept = (state.etag, state.last_modified) if state else (None, None)
            return _Read(source, state, now, validators=kept)
        parsed, validators = fetched
        rejected = tuple(str(r) for r in parsed.rejected)
        return _Read(source, state, now, parsed.articles, parsed.warnings, rejected, validators)

    def _read_directory(self, source: SourceConfig) -> tuple[list[RawArticle], list[str]]:
        assert source.path is not None
        result = directory.read_directory(
            source.name,
            source.path,
            default_tz=self.config.site.timezone,
            base_url=self.config.site.base_url,
            max_bytes=self.config.ingest.max_bytes,
        )
        problems = [p.message for p in result.problems]
        if problems and not result.articles:
            raise SourceError("; ".join(problems[:5]) + _more(problems, 5))
        return list(result.articles), problems

    def _fetch_feed(
        self, source: SourceConfig, state: source_store.SourceState | None
    ) -> tuple[feed.ParsedFeed, tuple[str | None, str | None]] | None:
        assert source.url is not None
        limits = self._limits()
        with self._shared_client():
            assert self.client is not None
            result = fetching.fetch(
                self.client,
                source.url,
                etag=state.etag if state else None,
                last_modified=state.last_modified if state else None,
                limits=limits,
            )
        if result.status == "not_modified":
            return None
        parsed = feed.parse_feed(
            result.content, source=source.name, url=result.url, content_type=result.content_type
        )
        return parsed, (result.etag, result.last_modified)

    def _done(self, read: _Read) -> SourceOutcome:
        source, now, validators = read.source, read.now, read.validators
        problems = list(read.problems)
        prepared: list[article_store.Prepared] = []
        warnings = list(problems)
        rejected: list[str] = list(read.rejected)
        cut: list[str] = []
        limits = FieldLimits.of(self.config)
        breaking: list[str] = []
        for raw in read.raws:
            result = isolate(raw.origin, partial(self._prepare, raw, source, now, limits))
            if isinstance(result, Rejected):
                rejected.append(str(result))
                continue
            prepared.append(result.prepared)
            if raw.breaking:
                breaking.append(result.prepared.article.id)
            warnings.extend(_from(raw.origin, w) for w in result.warnings)
            cut.extend(_from(raw.origin, c) for c in result.cut)
        next_fetch = next_regular_fetch(
            now, source.interval, jitter=self.config.ingest.interval_jitter, rand=self.rand
        )
        status = source_status(problems, rejected, cut)
        with self.db.begin() as conn:
            counts = article_store.save_articles(conn, prepared, now=now)
            source_store.record_success(
                conn,
                source.name,
                now=now,
                next_fetch_at=next_fetch,
                etag=validators[0],
                last_modified=validators[1],
                warning=status,
            )
        if breaking:
            self._alert(breaking, now)
        for r in rejected:
            log.warning(
                "source %s: item rejected: %s", source.name, r, extra={"source": source.name}
            )
        for w in [*warnings, *cut]:
            log.warning("source %s: %s", source.name, w, extra={"source": source.name})
        return SourceOutcome(
            source.name,
            True,
            counts.new,
            counts.updated,
            counts.unchanged,
            warnings=(*(f"item rejected: {r}" for r in rejected), *cut, *warnings),
            changed_ids=counts.changed_ids,
        )

    def _alert(self, article_ids: Sequence[str], now: datetime) -> None:
        """Queue breaking alerts for the stored ``breaking`` articles (an
        article already alerted is not alerted again)."""
        from kabarfeed.delivery.breaking import enqueue_alerts

        with self.db.connect() as conn:
            stored = article_store.load_articles(conn, ids=list(article_ids))
        queued = enqueue_alerts(self.config, self.db, stored, now)
        if queued:
            log.info("breaking news: %d alert(s) queued", queued)

    def _prepare(
        self, raw: RawArticle, source: SourceConfig, now: datetime, limits: FieldLimits
    ) -> PreparedItem:
        return prepare(
            raw,
            source=source,
            taxonomy=self.config.taxonomy,
            language=self.config.site.language,
            default_tz=self.config.site.timezone,
            now=now,
            limits=limits,
        )


def source_status(
    problems: Sequence[str], rejected: Sequence[str], cut: Sequence[str]
) -> str | None:
    """The warning kept on a source that worked: what it could not read, which
    items were rejected and why, and what was cut to fit the limits (first five
    of each)."""
    parts = []
    if problems:
        parts.append("; ".join(problems[:5]) + _more(problems, 5))
    if rejected:
        parts.append(
            f"{len(rejected)} item(s) rejected: " + "; ".join(rejected[:5]) + _more(rejected, 5)
        )
    if cut:
        parts.append(f"{len(cut)} field(s) cut: " + "; ".join(cut[:5]) + _more(cut, 5))
    return " | ".join(parts) or None


def _from(origin: str, message: str) -> str:
    """``message`` starting with the item's origin (added if missing)."""
    return message if message.startswith(origin) else f"{origin}: {message}"


def _more(items: Sequence[str], shown: int) -> str:
    return f" (+{len(items) - shown} more)" if len(items) > shown else ""


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"
