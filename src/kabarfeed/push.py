"""The push use cases: a newsroom's CMS hands kabarfeed an article the moment
it publishes, edits or unpublishes it.

A pushed article is a JSON object in the shape of the directory source's JSON
import (``title``, ``content_html`` or Markdown ``body``, ``summary``, ``url``,
``guid``/``id``, ``published``/``date``, ``updated``, ``regions``,
``categories`` (or one ``category``), ``tags``, ``image``, ``author``,
``advertorial``, ``language``, ``breaking``). :func:`parse_payload` checks it
field by field (every problem is reported, not only the first) and turns it
into a :class:`~kabarfeed.models.RawArticle`; :func:`push_article` runs it
through the very :func:`kabarfeed.ingest.prepare` of ingest (caps, nh3
sanitising, classification) and stores it. The same push twice changes
nothing. :func:`unpublish` takes an article out of every feed and edition.

API tokens (:func:`add_token` and friends) are random, shown once, stored as
a SHA-256 digest, and each writes into one source only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from markdown_it import MarkdownIt
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from kabarfeed.config import Config, SourceConfig
from kabarfeed.errors import InputError, KabarfeedError, NotFoundError, ParseError, StoreError
from kabarfeed.ingest import FieldLimits, prepare
from kabarfeed.models import Article, Image, RawArticle
from kabarfeed.normalize import stable_key
from kabarfeed.store import Database, pushapi
from kabarfeed.store import articles as article_store
from kabarfeed.store.schema import articles

TOKEN_PREFIX = "kf_"  # noqa: S105 - the marker of a token, not a secret
MAX_LIST = 500
"""Most articles one ``GET /api/v1/articles`` answers with."""

_KNOWN = frozenset(
    {
        "title",
        "body",
        "content_html",
        "summary",
        "url",
        "guid",
        "id",
        "published",
        "date",
        "updated",
        "regions",
        "categories",
        "category",
        "tags",
        "image",
        "author",
        "advertorial",
        "language",
        "breaking",
    }
)
_TEXT_KEYS = ("title", "body", "content_html", "summary", "url", "guid", "id", "author")
_LIST_KEYS = ("regions", "categories", "tags")
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


class PayloadError(InputError):
    """A pushed article failed validation; ``errors`` lists every field's problem."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


class ConflictError(KabarfeedError):
    """The push names an item that another source already holds."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field's problem (``field`` is a JSON key, ``""`` for the whole body)."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Payload:
    """A valid pushed article: the raw article, and what ingest does not keep."""

    raw: RawArticle
    breaking: bool
    ignored: tuple[str, ...]
    """Unknown keys, ignored (a CMS plugin may send more than kabarfeed reads)."""


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What a push did: ``created``, ``updated`` or ``unchanged``, the stored
    article, and the notes ingest made (cuts, unknown keys, undated)."""

    status: str
    article: Article
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What kabarfeed holds of one source."""

    source: str
    articles: int
    newest_change: datetime | None
    unpublished: int


# ------------------------------------------------------------------ payload


class _Fields:
    """Reads a payload's fields, collecting every problem."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: list[FieldError] = []

    def fail(self, key: str, message: str) -> None:
        self.errors.append(FieldError(key, message))

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(key, f"must be a string, got {_kind(value)}")
            return None
        if isinstance(value, str) and ("\x00" in value or _has_surrogate(value)):
            self.fail(key, "holds a NUL character or an unpaired surrogate")
            return None
        return str(value).strip() or None

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of strings, got {_kind(value)}")
            return ()
        return tuple(s for s in (v.strip() for v in value) if s)

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.fail(key, f"must be true or false, got {_kind(value)}")
        return None

    def moment(self, key: str, zone: ZoneInfo) -> tuple[datetime | None, bool]:
        """An aware datetime (naive: in ``zone``) and whether it was written without a zone."""
        value = self.data.get(key)
        if value is None or value == "":
            return None, False
        if not isinstance(value, str):
            self.fail(key, f"must be an ISO 8601 date/time string, got {_kind(value)}")
            return None, False
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            self.fail(key, f"is not an ISO 8601 date/time: {value[:60]!r}")
            return None, False
        if isinstance(parsed, datetime) and parsed.tzinfo is not None:
            try:
                parsed.astimezone(UTC)
            except OverflowError:
                self.fail(key, "is out of range")
                return None, False
            return parsed, False
        if type(parsed) is date:  # pragma: no cover - fromisoformat gives datetimes
            parsed = datetime.combine(parsed, time(0, 0))
        return parsed.replace(tzinfo=zone), True

    def image(self) -> Image | None:
        value = self.data.get("image")
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return Image(url=value.strip())
        if isinstance(value, dict):
            url, caption = value.get("url"), value.get("caption")
            if not isinstance(url, str) or not url.strip():
                self.fail("image", "an image object needs a 'url' string")
                return None
            if caption is not None and not isinstance(caption, str):
                self.fail("image", "'caption' must be a string")
                return None
            return Image(url=url.strip(), caption=(caption or "").strip() or None)
        self.fail("image", f"must be a URL or an object with 'url', got {_kind(value)}")
        return None


def parse_payload(
    data: object, *, source: str, default_tz: str, guid: str | None = None
) -> Payload:
    """Validate a pushed JSON value into a :class:`Payload`. ``guid``: the
    one named by the URL (``PUT /articles/{guid}``), which the body may repeat
    but not contradict. Raises :class:`PayloadError` listing every problem."""
    if not isinstance(data, dict):
        raise PayloadError([FieldError("", f"expected a JSON object, got {_kind(data)}")])
    f = _Fields({str(k): v for k, v in data.items()})
    zone = ZoneInfo(default_tz)
    title = f.text("title")
    if "title" not in f.data or (title is None and not _failed(f, "title")):
        f.fail("title", "is required")
    content, body = f.text("content_html"), f.text("body")
    if content is None and body is None and not _failed(f, "content_html", "body"):
        f.fail("body", "one of 'body' (Markdown) or 'content_html' is required")
    given = f.text("guid") or f.text("id")
    if guid is not None and given is not None and given != guid:
        f.fail("guid", f"{given!r} differs from the guid in the URL, {guid!r}")
    url = f.text("url")
    the_guid = guid or given or url
    if the_guid is None and not _failed(f, "guid", "id", "url"):
        f.fail("guid", "a 'guid' or a 'url' is required (the guid makes pushes idempotent)")
    if url is not None and not url.startswith(("http://", "https://")):
        f.fail("url", "must be an absolute http:// or https:// URL")
    date_key = "published" if f.data.get("published") not in (None, "") else "date"
    published, floating = f.moment(date_key, zone)
    updated, _ = f.moment("updated", zone)
    categories = f.strings("categories")
    category = f.text("category")
    raw_fields = {
        "regions": f.strings("regions"),
        "tags": f.strings("tags"),
        "summary": f.text("summary"),
        "author": f.text("author"),
        "language": f.text("language"),
        "advertorial": f.flag("advertorial"),
        "image": f.image(),
    }
    breaking = f.flag("breaking")
    if f.errors:
        raise PayloadError(f.errors)
    assert title is not None and the_guid is not None
    html_content = content or _MARKDOWN.render(body or "")
    raw = RawArticle(
        source=source,
        origin=f"push:{source}:{the_guid}"[:300],
        title=" ".join(title.split()),
        guid=the_guid,
        url=url or the_guid,
        author=raw_fields["author"],  # type: ignore[arg-type]
        published=published,
        updated=updated,
        summary=raw_fields["summary"],  # type: ignore[arg-type]
        content_html=html_content,
        image=raw_fields["image"],  # type: ignore[arg-type]
        regions=raw_fields["regions"],  # type: ignore[arg-type]
        categories=(*categories, *([category] if category else [])),
        tags=raw_fields["tags"],  # type: ignore[arg-type]
        advertorial=raw_fields["advertorial"],  # type: ignore[arg-type]
        language=raw_fields["language"],  # type: ignore[arg-type]
        local_tz=default_tz,
        floating_time=floating,
    )
    ignored = tuple(sorted(set(f.data) - _KNOWN))
    return Payload(raw, bool(breaking), ignored)


def _failed(f: _Fields, *keys: str) -> bool:
    return any(e.field in keys for e in f.errors)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


# ------------------------------------------------------------------ use cases


def article_id(source: str, guid: str) -> str:
    """The id ingest gives the item ``guid`` of ``source``."""
    return stable_key("article", source, guid)[:24]


def push_article(
    config: Config, db: Database, source: SourceConfig, payload: Payload, *, now: datetime
) -> PushOutcome:
    """Store a pushed article through ingest's own preparation (caps, nh3,
    classification). Idempotent: the same push again is ``unchanged``; an
    unpublished guid pushed again is published again.

    Raises :class:`ParseError` (no usable title or link after cleaning) and
    :class:`ConflictError` (another source holds the same item)."""
    item = prepare(
        payload.raw,
        source=source,
        taxonomy=config.taxonomy,
        language=config.site.language,
        default_tz=config.site.timezone,
        now=now,
        limits=FieldLimits.of(config),
    )
    prepared = item.prepared
    try:
        counts, stored = _save(db, prepared, now)
    except StoreError as e:
        if not isinstance(e.__cause__, IntegrityError | OperationalError):
            raise
        # the same item pushed at the same moment by another request: its row
        # landed first (PostgreSQL: a unique key; SQLite: a write on a stale
        # snapshot); once more, this push finds it and is a no-op
        counts, stored = _save(db, prepared, now)
    if stored is None:
        raise ConflictError(
            f"guid {payload.raw.guid!r}: the same item or content is already stored "
            "from another source"
        )
    status = "created" if counts.new else "updated" if counts.updated else "unchanged"
    notes = (*item.warnings, *item.cut, *(f"unknown key {k!r} ignored" for k in payload.ignored))
    if payload.breaking:
        from kabarfeed.delivery.breaking import enqueue_alerts

        queued = enqueue_alerts(config, db, [stored], now)
        notes = (*notes, f"breaking: {queued} alert(s) queued")
    return PushOutcome(status, stored, notes)


def _save(
    db: Database, prepared: article_store.Prepared, now: datetime
) -> tuple[article_store.SaveCounts, Article | None]:
    """Store ``prepared`` in one transaction (lifting its tombstones); what
    happened and the stored article of its id."""
    with db.begin() as conn:
        pushapi.unburied(conn, _keys_of(prepared))
        counts = article_store.save_articles(conn, [prepared], now=now)
        return counts, article_store.get_article(conn, prepared.article.id)


def _keys_of(prepared: article_store.Prepared) -> list[str]:
    keys = [f"u{prepared.url_key[:63]}", f"h{prepared.article.content_hash[:63]}"]
    if prepared.guid_key:
        keys.append(f"g{prepared.guid_key[:63]}")
    return keys


def get_pushed(db: Database, source: str, guid: str) -> Article:
    """The stored article ``guid`` of ``source``. Raises :class:`NotFoundError`
    (unknown) or :class:`UnpublishedError` (unpublished)."""
    ident = article_id(source, guid)
    with db.connect() as conn:
        found = article_store.get_article(conn, ident)
        if found is not None and found.source == source:
            return found
        gone = pushapi.tombstone_of(conn, ident)
    if gone is not None:
        raise UnpublishedError(f"article {guid!r} was unpublished at {gone.isoformat()}")
    raise NotFoundError(f"no article with guid {guid!r} in source {source!r}")


class UnpublishedError(NotFoundError):
    """The article existed and was unpublished."""


def unpublish(db: Database, source: str, guid: str, *, now: datetime) -> bool:
    """Take the article ``guid`` of ``source`` out of every feed, edition and
    archive page. ``True`` when it was published, ``False`` when it already
    was unpublished; :class:`NotFoundError` when kabarfeed never had it."""
    ident = article_id(source, guid)
    with db.begin() as conn:
        if pushapi.bury(conn, ident, now=now):
            return True
        if pushapi.tombstone_of(conn, ident) is not None:
            return False
    raise NotFoundError(f"no article with guid {guid!r} in source {source!r}")


def articles_since(
    db: Database, source: str, since: datetime | None, *, limit: int = MAX_LIST
) -> list[Article]:
    """The source's articles changed (pushed, ingested or edited) after
    ``since``, oldest change first, at most ``limit``."""
    query = select(articles.c.id).where(articles.c.source == source)
    if since is not None:
        query = query.where(articles.c.changed_at > since)
    query = query.order_by(articles.c.changed_at, articles.c.id).limit(limit)
    with db.connect() as conn:
        ids = list(conn.execute(query).scalars())
        found = {a.id: a for a in article_store.load_articles(conn, ids=ids)} if ids else {}
    return [found[i] for i in ids if i in found]


def source_status(db: Database, source: str) -> SourceStatus:
    """Counts for ``GET /api/v1/status``."""
    with db.connect() as conn:
        count, newest = conn.execute(
            select(func.count(), func.max(articles.c.changed_at)).where(articles.c.source == source)
        ).one()
        gone = _unpublished_count(conn, source)
    return SourceStatus(source, int(count), newest, gone)


def _unpublished_count(conn: Connection, source: str) -> int:
    t = pushapi.article_tombstones
    query = select(func.count(t.c.article_id.distinct())).where(t.c.source == source)
    return int(conn.execute(query).scalar_one())


# ------------------------------------------------------------------ tokens


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just made: ``secret`` is shown once and never stored."""

    row: pushapi.TokenRow
    secret: str


def hash_token(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def add_token(config: Config, db: Database, name: str, source: str, *, now: datetime) -> NewToken:
    """Make a token for ``source`` (a configured source). Raises
    :class:`InputError` for an unknown source, a bad or taken name."""
    if config.source(source) is None:
        known = ", ".join(s.name for s in config.sources) or "none configured"
        raise InputError(f"unknown source {source!r} (sources: {known})")
    if not name or len(name) > 100 or not name.isprintable():
        raise InputError("a token name is 1 to 100 printable characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with db.begin() as conn:
            row = pushapi.add_token(
                conn,
                name=name,
                source=source,
                token_hash=hash_token(secret),
                prefix=secret[:10],
                now=now,
            )
    except StoreError as e:
        if isinstance(e.__cause__, IntegrityError):
            raise InputError(f"a token named {name!r} already exists") from e
        raise
    return NewToken(row, secret)


def list_tokens(db: Database) -> list[pushapi.TokenRow]:
    """Every token (names, sources, prefixes; never a secret)."""
    with db.connect() as conn:
        return pushapi.list_tokens(conn)


def remove_token(db: Database, name: str) -> None:
    """Revoke the token ``name`` at once. Raises :class:`NotFoundError`."""
    with db.begin() as conn:
        if not pushapi.remove_token(conn, name):
            raise NotFoundError(f"no API token named {name!r}")


def authenticate(db: Database, secret: str, *, now: datetime) -> pushapi.TokenRow | None:
    """The token ``secret`` is, or ``None``; records its use."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    with db.begin() as conn:
        row = pushapi.find_token_by_hash(conn, hash_token(secret))
        if row is not None:
            pushapi.touch_token(conn, row.id, now)
    return row


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<hex HMAC-SHA256 of body with secret>``
    (compared in constant time)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


__all__ = [
    "ConflictError",
    "FieldError",
    "NewToken",
    "ParseError",
    "Payload",
    "PayloadError",
    "PushOutcome",
    "SourceStatus",
    "UnpublishedError",
    "add_token",
    "articles_since",
    "authenticate",
    "get_pushed",
    "list_tokens",
    "parse_payload",
    "push_article",
    "remove_token",
    "signature_ok",
    "source_status",
    "unpublish",
]
