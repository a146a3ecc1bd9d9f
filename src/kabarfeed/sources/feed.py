"""RSS/Atom feed source: parse a feed document and map its entries (feedparser).

* :func:`parse_feed` turns the bytes into a :class:`ParsedFeed` of
  :class:`RawArticle`; a document that is not a usable feed becomes
  :class:`ParseError`. Recoverable oddities are reported as warnings; a bad
  entry is rejected alone (:func:`map_entries`).
* Fetching (one bounded, conditional GET with a total deadline) lives in
  :mod:`kabarfeed.sources.fetch`; its names are re-exported here.

HTML is passed on as feedparser decodes it (relative URLs resolved, *not*
sanitised): the ingest stage owns the sanitising policy.
"""

from __future__ import annotations

import html
import io
import re
import time
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import feedparser

from kabarfeed.errors import ParseError
from kabarfeed.models import Image, RawArticle
from kabarfeed.sources.fetch import (
    ACCEPT,
    DEFAULT_LIMITS,
    FetchLimits,
    FetchResult,
    fetch,
    make_client,
)
from kabarfeed.sources.isolation import Rejected, isolate

__all__ = [
    "ACCEPT",
    "DEFAULT_LIMITS",
    "FetchLimits",
    "FetchResult",
    "MappedEntries",
    "ParsedFeed",
    "fetch",
    "make_client",
    "map_entries",
    "parse_date",
    "parse_feed",
    "repair_mojibake",
]

# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """Articles and channel metadata found in one feed document."""

    articles: tuple[RawArticle, ...]
    title: str | None = None
    language: str | None = None
    warnings: tuple[str, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    """Entries left out, each with its reason."""


@dataclass(frozen=True, slots=True)
class _Context:
    """What every entry of one document shares."""

    source: str
    url: str
    language: str | None
    author: str | None
    non_permalink_guids: frozenset[str] = field(default_factory=frozenset)


def parse_feed(
    data: bytes, *, source: str, url: str, content_type: str | None = None
) -> ParsedFeed:
    """Parse an RSS/Atom document into :class:`RawArticle` objects.

    ``url`` is where the document came from: it is the base for relative
    links and each article's ``origin``. ``content_type`` (the HTTP header)
    helps feedparser pick the character encoding.

    Raises:
        ParseError: the document declares DTD entities (XML bomb guard), or it
            is not a feed and no entry could be recovered from it.
    """
    _refuse_entity_declarations(data)
    result, warnings = _parse_document(data, url, content_type)
    feed = result["feed"]
    context = _Context(
        source=source,
        url=url,
        language=_language(_text(feed, "language")),
        # Atom entries inherit the feed's author; RSS managingEditor is no byline.
        author=_author(feed) if str(result.get("version", "")).startswith("atom") else None,
        non_permalink_guids=_non_permalink_guids(data),
    )
    mapped = _map(result["entries"], context)
    return ParsedFeed(
        articles=mapped.articles,
        title=_clean_text(_text(feed, "title")),
        language=context.language,
        warnings=tuple(warnings),
        rejected=mapped.rejected,
    )


@dataclass(frozen=True, slots=True)
class MappedEntries:
    """Entries mapped to articles, and those rejected with their reasons."""

    articles: tuple[RawArticle, ...] = ()
    rejected: tuple[Rejected, ...] = ()


def map_entries(entries: Any, *, source: str, url: str) -> MappedEntries:
    """Map feedparser ``entries`` (a list of dicts) to articles, one isolated item each.

    A bad entry (e.g. a date out of range) is rejected with its reason; the
    others are mapped. Never raises.
    """
    return _map(entries, _Context(source=source, url=url, language=None, author=None))


def _map(entries: Any, ctx: _Context) -> MappedEntries:
    articles: list[RawArticle] = []
    rejected: list[Rejected] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else [], start=1):
        result = isolate(f"{ctx.url} entry {index}", partial(_to_article, entry, ctx))
        if isinstance(result, Rejected):
            rejected.append(result)
        else:
            articles.append(result)
    return MappedEntries(tuple(articles), tuple(rejected))


def _feedparser(data: bytes, url: str, content_type: str | None) -> Any:
    # Without a Content-Type feedparser flags "bozo"; application/xml lets the
    # XML declaration / BOM decide the encoding, which is right for files too.
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    # A BytesIO, never bare bytes: feedparser would try a bytes value as a file name.
    return feedparser.parse(
        io.BytesIO(data), response_headers=headers, sanitize_html=False, resolve_relative_uris=True
    )


def _parse_document(data: bytes, url: str, content_type: str | None) -> tuple[Any, list[str]]:
    """Run feedparser, with a windows-1252 retry; return the result and its warnings."""
    try:
        result = _feedparser(data, url, content_type)
        if not result["entries"] and _fatal(result):
            retry = _feedparser(_recode_as_utf8(data), url, "application/xml; charset=utf-8")
            if retry["entries"]:
                return retry, [f"decoded as windows-1252 after: {_bozo_reason(result)}"]
    except Exception as e:  # feedparser is a foreign boundary: never leak its exceptions
        raise ParseError(f"cannot parse feed from {url}: {e}") from e
    if not result["entries"] and _fatal(result):
        raise ParseError(f"not a valid feed ({url}): {_bozo_reason(result)}")
    if not result["entries"] and not result.get("version"):
        raise ParseError(f"not an RSS or Atom feed: {url}")
    if result.get("bozo"):
        return result, [f"feed recovered from an error: {_bozo_reason(result)}"]
    return result, []


def _fatal(result: Any) -> bool:
    """Bozo for a reason worse than a mislabelled encoding or Content-Type."""
    exc = result.get("bozo_exception")
    minor = isinstance(exc, feedparser.ThingsNobodyCaresAboutButMe) and result.get("version")
    return bool(result.get("bozo")) and not minor


def _bozo_reason(result: Any) -> str:
    exc = result.get("bozo_exception")
    return str(exc) if exc is not None else "unknown error"


def _recode_as_utf8(data: bytes) -> bytes:
    """Decode as windows-1252 (Latin-1 for its holes), re-encode UTF-8, fix the declaration."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = _XML_DECL_ENCODING.sub(r"\1utf-8\2", text, count=1)
    return text.encode("utf-8")


_XML_DECL_ENCODING: Final = re.compile(r"""(<\?xml[^>]*?encoding\s*=\s*["'])[^"']*(["'])""")


# ----------------------------------------------------------------- XML bomb guard


def _refuse_entity_declarations(data: bytes) -> None:
    """Raise ParseError if the document's internal DTD subset declares an entity.

    Entity expansion ("billion laughs", external entities) is the classic XML
    bomb. Real feeds have no need for it, so any ``<!ENTITY`` in the prolog
    is refused before a parser sees the bytes.
    """
    if _prolog_declares_entity(_sniff_text(data)):
        raise ParseError("DTD entity declarations are not allowed")


def _sniff_text(data: bytes) -> str:
    """Enough of a decoding to see markup: UTF-16/32 by BOM or NUL pattern, else Latin-1."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    head = data[:4]
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if head.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    if head[:2] == b"<\x00":
        return data.decode("utf-16-le", errors="replace")
    if head[:2] == b"\x00<":
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")


def _prolog_declares_entity(text: str) -> bool:
    """Scan the prolog (comments, PIs, DOCTYPE) up to the root element."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace() or text[i] == "\ufeff":
            i += 1
        elif text.startswith("<?", i):
            i = _skip_past(text, i, "?>")
        elif text.startswith("<!--", i):
            i = _skip_past(text, i, "-->")
        elif text[i : i + 9].upper() == "<!DOCTYPE":
            return _doctype_declares_entity(text, i + 9)
        elif text[i] == "<":
            return False  # the root element: the prolog is over
        else:
            i += 1  # junk the parser will reject or skip; keep looking
    return False


def _skip_past(text: str, start: int, end: str) -> int:
    found = text.find(end, start + 2)
    return len(text) if found < 0 else found + len(end)


def _doctype_declares_entity(text: str, i: int) -> bool:
    """From inside ``<!DOCTYPE``: find the internal subset and look for ``<!ENTITY``."""
    n = len(text)
    while i < n and text[i] not in "[>":
        i = _skip_past(text, i - 1, text[i]) if text[i] in "\"'" else i + 1
    if i >= n or text[i] == ">":
        return False
    return _subset_declares_entity(text, i + 1)


def _subset_declares_entity(text: str, i: int) -> bool:
    """Walk the internal subset's declarations; unparseable input counts as suspicious."""
    n = len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text[i] == "]":
            return False
        elif text.startswith("<!--", i):
            i = _skip_past(text, i, "-->")
        elif text.startswith("<?", i):
            i = _skip_past(text, i, "?>")
        elif text.startswith("<!", i):
            if text[i + 2 : i + 8].upper() == "ENTITY":
                return True
            i = _skip_declaration(text, i + 2)
        elif text[i] == "%":
            i = _skip_past(text, i - 1, ";")
        else:
            return True
    return True


def _skip_declaration(text: str, i: int) -> int:
    """Index after the ``>`` closing a markup declaration, honouring quoted strings."""
    n = len(text)
    while i < n and text[i] != ">":
        i = _skip_past(text, i - 1, text[i]) if text[i] in "\"'" else i + 1
    return i + 1


# --------------------------------------------------------------- entry mapping


def _to_article(entry: Any, ctx: _Context) -> RawArticle:
    if not isinstance(entry, dict):
        raise ParseError(f"entry is {type(entry).__name__}, not a mapping")
    warnings: list[str] = []
    guid = (_text(entry, "id") or "").strip() or None
    title = _clean_text(_text(entry, "title"))
    if title is None:
        warnings.append("entry has no title")
    content_html = _best_content(entry)
    summary = _html_text(_text(entry, "summary"))
    return RawArticle(
        source=ctx.source,
        origin=ctx.url,
        title=title or "",
        guid=guid,
        url=_article_url(entry, guid, ctx),
        author=_author(entry) or ctx.author,
        published=_entry_date(entry, "published", warnings),
        updated=_entry_date(entry, "updated", warnings),
        summary=summary,
        content_html=content_html,
        image=_pick_image(entry, content_html, summary, ctx.url),
        categories=_categories(entry),
        language=_entry_language(entry) or ctx.language,
        warnings=tuple(warnings),
    )


def _text(obj: Any, key: str) -> str | None:
    """``obj[key]`` if it is a string (plain dict access: no feedparser key aliasing)."""
    value = dict.get(obj, key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def _dicts(obj: Any, key: str) -> list[dict[str, Any]]:
    value = dict.get(obj, key) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


# URLs ----------------------------------------------------------------------------

_REDIRECTOR_HOSTS: Final = ("feedsportal.com", "feedproxy.google.com", "feeds.feedburner.com")
_AD_HOSTS: Final = (
    "feedsportal.com", "feedburner.com", "doubleclick.net", "pixel.wp.com", "stats.wordpress.com",
)  # fmt: skip


def _article_url(entry: Any, guid: str | None, ctx: _Context) -> str | None:
    """The article's real URL: FeedBurner origLink, else a redirector's guid, else link."""
    link = _absolute(ctx.url, _text(entry, "link"))
    origlink = _absolute(ctx.url, _text(entry, "feedburner_origlink"))
    if origlink:
        return origlink
    if guid and guid in ctx.non_permalink_guids and _is_redirector(link):
        return _absolute(ctx.url, guid) or link
    return link


def _is_redirector(url: str | None) -> bool:
    if not url:
        return False
    return _on_host(url, _REDIRECTOR_HOSTS) or urlsplit(url).path.endswith("/story01.htm")


def _on_host(url: str, hosts: tuple[str, ...]) -> bool:
    """Whether ``url``'s host is one of ``hosts`` or a subdomain of one."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in hosts)


def _absolute(base: str, href: str | None) -> str | None:
    """``href`` resolved against ``base`` if the result is an http(s) URL."""
    if not href or not href.strip():
        return None
    try:
        url = urljoin(base, html.unescape(href.strip()))
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    return url if scheme in ("http", "https") else None


_NON_PERMALINK_GUID: Final = re.compile(
    rb"<guid\b[^>]*\bisPermaLink\s*=\s*[\"']false[\"'][^>]*>\s*(?:<!\[CDATA\[)?\s*([^<\]\s]+)",
    re.IGNORECASE,
)


def _non_permalink_guids(data: bytes) -> frozenset[str]:
    """Guids marked ``isPermaLink="false"`` (feedparser drops that attribute)."""
    return frozenset(
        html.unescape(m.group(1).decode("latin-1")) for m in _NON_PERMALINK_GUID.finditer(data)
    )


# Text ----------------------------------------------------------------------------

_TAG: Final = re.compile(r"<!--.*?-->|<[/!?]?[A-Za-z][^<>]*>", re.DOTALL)


def _clean_text(value: str | None) -> str | None:
    """Plain one-line text: tags stripped, entities unescaped, whitespace collapsed."""
    if value is None:
        return None
    text = html.unescape(_TAG.sub(" ", value))
    text = " ".join(repair_mojibake(text).split())
    return text or None


def _html_text(value: str | None) -> str | None:
    """HTML kept as given, only trimmed and mojibake-repaired; empty becomes ``None``."""
    if value is None or not value.strip():
        return None
    return repair_mojibake(value.strip())


def _best_content(entry: Any) -> str | None:
    """The longest HTML ``content`` (content:encoded / Atom content), else the longest."""
    contents = [c for c in _dicts(entry, "content") if isinstance(c.get("value"), str)]
    htmlish = [c for c in contents if "html" in str(c.get("type") or "")]
    pool = htmlish or contents
    if not pool:
        return None
    return _html_text(max(pool, key=lambda c: len(c["value"]))["value"])


def _language(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _entry_language(entry: Any) -> str | None:
    """An entry's own ``xml:lang`` (feedparser keeps it on the title's detail)."""
    return _language(_text(entry, "language")) or _language(
        _text(dict.get(entry, "title_detail"), "language")
    )


def _author(obj: Any) -> str | None:
    """The author's name (``author_detail.name`` over the raw ``email (Name)`` form)."""
    return _clean_text(_text(dict.get(obj, "author_detail"), "name")) or _clean_text(
        _text(obj, "author")
    )


def _categories(entry: Any) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for tag in _dicts(entry, "tags"):
        term = tag.get("term")
        if not isinstance(term, str):
            continue
        cleaned = _clean_text(term.replace("\\'", "'").replace('\\"', '"'))
        if cleaned and cleaned.casefold() not in seen:
            seen.add(cleaned.casefold())
            out.append(cleaned)
    return tuple(out)


# Mojibake --------------------------------------------------------------------------

# Characters that windows-1252 (or Latin-1, for its five holes) maps to one byte >= 0x80.
_CP1252_HIGH: Final = (
    "\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
_MOJIBAKE_RUN: Final = re.compile(f"[{_CP1252_HIGH}]{{2,}}")
_MOJIBAKE_HINT: Final = re.compile("[\u00c2-\u00df\u00e0-\u00ef][\u0080-\u00bf\u0152-\u2122]")


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as windows-1252 (``Lâ€™OrÃ©al`` -> ``L’Oréal``).

    Only runs of such characters that re-encode to *valid* UTF-8 are changed,
    so genuine accented text (``simulações``) is left alone.
    """
    if not _MOJIBAKE_HINT.search(text):
        return text
    return _MOJIBAKE_RUN.sub(_repair_run, text)


def _repair_run(match: re.Match[str]) -> str:
    run = match.group(0)
    raw = bytearray()
    for char in run:
        try:
            raw += char.encode("cp1252")
        except UnicodeEncodeError:
            raw.append(ord(char))  # U+0080..U+009F: a byte cp1252 leaves undefined
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return run


# Dates ---------------------------------------------------------------------------

_DATE_WORDS: Final = types.MappingProxyType(
    {
        # Portuguese days and months
        "seg": "Mon", "ter": "Tue", "qua": "Wed", "qui": "Thu", "sex": "Fri",
        "sáb": "Sat", "dom": "Sun",
        "fev": "Feb", "abr": "Apr", "mai": "May", "ago": "Aug", "set": "Sep",
        "out": "Oct", "dez": "Dec",
        # Indonesian days and months
        "sen": "Mon", "sel": "Tue", "rab": "Wed", "kam": "Thu", "jum": "Fri",
        "sab": "Sat", "min": "Sun",
        "mei": "May", "agu": "Aug", "agt": "Aug", "okt": "Oct", "des": "Dec",
        # Indonesian time zones
        "wib": "+0700", "wita": "+0800", "wit": "+0900",
    }
)  # fmt: skip
_ENGLISH_MONTHS: Final = frozenset(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
)
_WORD: Final = re.compile(r"[^\W\d_]+")


def _entry_date(entry: Any, key: str, warnings: list[str]) -> datetime | None:
    """``published``/``updated`` as aware UTC, from feedparser or the raw string."""
    parsed = dict.get(entry, f"{key}_parsed")
    raw = _text(entry, key)
    if isinstance(parsed, time.struct_time):
        try:
            return datetime(*parsed[:6], tzinfo=UTC)
        except (ValueError, OverflowError) as e:
            raise ParseError(f"{key} date {(raw or '').strip()!r} is out of range") from e
    if not raw or not raw.strip():
        return None
    try:
        value = parse_date(raw)
    except OverflowError as e:
        raise ParseError(f"{key} date {raw.strip()!r} is out of range") from e
    if value is None:
        warnings.append(f"unparseable {key} date {raw.strip()!r}")
    return value


def parse_date(raw: str) -> datetime | None:
    """Parse an RFC 822 / ISO 8601 date, also with Portuguese or Indonesian names.

    Returns an aware UTC datetime (naive values are taken as UTC), or ``None``.
    Raises :class:`OverflowError` for a valid date that UTC cannot hold
    (``31 Dec 9999 23:59 -1200``).
    """
    text = " ".join(raw.split())
    for candidate in (text, _WORD.sub(_translate_word, text)):
        value = _rfc822(candidate) or _iso8601(candidate)
        if value is not None:
            return value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)
    return None


def _translate_word(match: re.Match[str]) -> str:
    """``Set``/``Setembro``/``Agustus`` -> ``Sep``/``Aug``; ``WIB`` -> ``+0700``."""
    word = match.group(0)
    key = word.casefold()
    if key in _DATE_WORDS:
        return _DATE_WORDS[key]
    if len(key) > 3 and key[:3] in _DATE_WORDS:
        return _DATE_WORDS[key[:3]]
    if len(key) > 3 and key[:3] in _ENGLISH_MONTHS:
        return key[:3].title()
    return word


def _rfc822(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _iso8601(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


# Images --------------------------------------------------------------------------

_IMAGE_TYPES: Final = types.MappingProxyType(
    {
        "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg", "png": "image/png",
        "gif": "image/gif", "webp": "image/webp", "avif": "image/avif", "svg": "image/svg+xml",
        "bmp": "image/bmp",
    }
)  # fmt: skip
_TYPE_ALIASES: Final = types.MappingProxyType(
    {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
)
_IMG_TAG: Final = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ATTR: Final = re.compile(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)""")


def _pick_image(
    entry: Any, content_html: str | None, summary: str | None, base: str
) -> Image | None:
    """Lead image: media:content/thumbnail, then an image enclosure, then the first ``<img>``.

    An enclosure on a feed redirector (Feedsportal, long dead) only comes last.
    """
    enclosure = _enclosure_image(entry, base)
    direct = enclosure if enclosure is not None and not _is_redirector(enclosure.url) else None
    return (
        _media_image(entry, base)
        or direct
        or _inline_image(content_html, base)
        or _inline_image(summary, base)
        or enclosure
    )


def _media_image(entry: Any, base: str) -> Image | None:
    candidates = [(m, False) for m in _dicts(entry, "media_content")]
    candidates += [(m, True) for m in _dicts(entry, "media_thumbnail")]
    for media, is_thumbnail in candidates:
        url = _absolute(base, media.get("url"))
        declared = str(media.get("type") or "").lower()
        medium = str(media.get("medium") or "").lower()
        is_image = is_thumbnail or medium == "image" or declared.startswith("image/")
        if url and (is_image or (not medium and not declared and _extension_type(url))):
            return Image(
                url, type=_image_type(declared, url), length=_length(media.get("filesize"))
            )
    return None


def _enclosure_image(entry: Any, base: str) -> Image | None:
    for link in _dicts(entry, "links"):
        if link.get("rel") != "enclosure":
            continue
        url = _absolute(base, link.get("href"))
        declared = str(link.get("type") or "").strip().lower()
        if url and (declared.startswith("image/") or (not declared and _extension_type(url))):
            return Image(url, type=_image_type(declared, url), length=_length(link.get("length")))
    return None


def _inline_image(markup: str | None, base: str) -> Image | None:
    """First ``<img src>`` that is neither a 1x1 pixel nor served by an ad/tracking host."""
    for tag in _IMG_TAG.findall(markup or ""):
        attrs = {k.lower(): v.strip("\"'") for k, v in _ATTR.findall(tag)}
        if attrs.get("width") in ("0", "1") or attrs.get("height") in ("0", "1"):
            continue
        url = _absolute(base, attrs.get("src"))
        if url and not _on_host(url, _AD_HOSTS):
            return Image(url, type=_extension_type(url))
    return None


def _image_type(declared: str, url: str) -> str | None:
    """Declared type, normalised; the URL's extension wins when it names another image type."""
    declared = _TYPE_ALIASES.get(declared, declared)
    guessed = _extension_type(url)
    if guessed and guessed != declared:
        return guessed
    return declared or None


def _extension_type(url: str) -> str | None:
    path = urlsplit(url).path
    _, dot, ext = path.rpartition(".")
    return _IMAGE_TYPES.get(ext.lower()) if dot and "/" not in ext else None


def _length(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and int(text) > 0 else None
