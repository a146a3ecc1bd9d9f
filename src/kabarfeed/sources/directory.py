"""Directory source: article files (``.txt``, ``.md``, ``.json``) in a folder tree.

* ``*.txt`` — the plain-text CMS export, parsed by :mod:`kabarfeed.textformat`;
* ``*.md`` — Markdown with TOML (``+++``) or YAML (``---``) front matter;
* ``*.json`` — one object or a list of objects with the front-matter keys plus
  ``content_html`` (used as is) or ``body`` (Markdown).

Front-matter / JSON keys: ``title`` (required), ``date`` and ``updated`` (ISO
8601; naive values are in the source's default zone), ``author``, ``url``,
``guid``/``id``, ``summary``, ``regions``, ``categories``, ``tags``, ``image``
(URL or ``{url, caption}``), ``advertorial`` (bool), ``language``, ``breaking``
(bool: breaking news, alerting opted-in subscribers).

Every file is read independently: a bad file becomes a :class:`FileProblem`
and the others go on. Articles without a URL get a stable permalink
``{base_url}/artikel/{slug-of-file-stem}``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from markdown_it import MarkdownIt

from kabarfeed.errors import ParseError, SourceError
from kabarfeed.models import Image, RawArticle
from kabarfeed.sources.isolation import Rejected, check_text, isolate
from kabarfeed.textformat import ZONES, body_html, find_dateline, parse_text_article

__all__ = ["SUFFIXES", "DirectoryResult", "FileProblem", "read_directory", "slugify"]

SUFFIXES: tuple[str, ...] = (".txt", ".md", ".markdown", ".json")
"""File name suffixes (lower case) the directory source reads."""

_KNOWN_KEYS = frozenset(
    {
        "title",
        "date",
        "published",
        "updated",
        "author",
        "url",
        "guid",
        "id",
        "summary",
        "regions",
        "categories",
        "tags",
        "image",
        "advertorial",
        "breaking",
        "language",
        "content_html",
        "body",
    }
)
_FRONT_MATTER = re.compile(
    r"\A(?P<fence>\+\+\+|---)[ \t]*\n(?P<meta>.*?)\n(?:\+\+\+|---|\.\.\.)[ \t]*(?:\n|\Z)",
    re.DOTALL,
)
_HEADING = re.compile(r"\A\s*#[ \t]+(?P<title>[^\n]+?)[ \t#]*(?:\n|\Z)")
_FIRST_PARAGRAPH = re.compile(r"\A\s*(?P<para>.+?)(?:\n\s*\n|\Z)", re.DOTALL)
_FIRST_HTML_PARAGRAPH = re.compile(r"<p\b[^>]*>(?P<para>.*?)</p\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_TRUE = frozenset({"true", "yes", "ya", "1"})
_FALSE = frozenset({"false", "no", "tidak", "0"})

Meta = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A file (or one item of a JSON list) that could not be read."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class DirectoryResult:
    """What one scan of the directory produced."""

    articles: tuple[RawArticle, ...] = ()
    problems: tuple[FileProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class _Context:
    """Per-scan settings handed to the file parsers."""

    source: str
    zone: ZoneInfo
    default_tz: str
    base_url: str
    markdown: Callable[[str], str]
    max_bytes: int | None = None


@dataclass(slots=True)
class _Collector:
    """Accumulates articles and problems while scanning; rejects duplicate guids."""

    articles: list[RawArticle] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, article: RawArticle) -> None:
        """Keep ``article`` unless an earlier file already used its guid."""
        key = article.guid or article.url or ""
        first = self.owners.setdefault(key, article.origin)
        if first != article.origin and key:
            message = (
                f"{article.origin}: same guid/permalink {key!r} as {first}; "
                "give one of them a distinct 'url' or 'guid', or rename the file"
            )
            self.problems.append(FileProblem(article.origin, message))
            return
        self.articles.append(article)


def read_directory(
    source: str, path: Path, *, default_tz: str, base_url: str, max_bytes: int | None = None
) -> DirectoryResult:
    """Read every article file under ``path`` (recursively, sorted by path).

    ``source`` names the source on each article; ``default_tz`` (IANA name) is
    the zone of naive dates; ``base_url`` prefixes generated permalinks; a file
    larger than ``max_bytes`` is a problem, not read whole.
    Raises :class:`SourceError` when ``path`` is not a readable directory or
    ``default_tz`` is unknown; problems with single files are returned instead.
    """
    if not path.exists():
        raise SourceError(f"source {source!r}: article directory {path} does not exist")
    if not path.is_dir():
        raise SourceError(f"source {source!r}: {path} is not a directory")
    try:
        zone = ZoneInfo(default_tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise SourceError(f"source {source!r}: unknown time zone {default_tz!r}") from e
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    ctx = _Context(source, zone, default_tz, base_url.rstrip("/"), renderer.render, max_bytes)
    collector = _Collector()
    try:
        files = list(_article_files(path))
    except OSError as e:
        raise SourceError(f"source {source!r}: cannot list {path}: {e}") from e
    for file in files:
        _read_file(file, ctx, collector)
    return DirectoryResult(tuple(collector.articles), tuple(collector.problems))


def slugify(text: str) -> str:
    """Lower-case ASCII slug with hyphens (``"Rakor Akhir_2025"`` -> ``"rakor-akhir-2025"``).

    Text with no ASCII letters or digits gets a short stable hash instead.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug or hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


# --- walking and decoding ---------------------------------------------------------


def _article_files(root: Path) -> Iterator[Path]:
    """Article files under ``root`` sorted by relative path, minus hidden/temp files."""
    found = [p for p in root.rglob("*") if _wanted(p.relative_to(root))]
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    return (p for p in found if p.is_file())


def _wanted(relative: Path) -> bool:
    """Whether a path (relative to the root) is an article file we read."""
    if any(part.startswith(".") for part in relative.parts):
        return False
    name = relative.name
    if name.startswith(("~", "#")) or name.endswith(("~", "#")):
        return False
    return relative.suffix.lower() in SUFFIXES  # also rules out .swp/.tmp/.bak


def _decode(data: bytes) -> tuple[str, tuple[str, ...]]:
    """UTF-8 (BOM allowed), else Windows-1252 with a warning."""
    try:
        return data.decode("utf-8-sig"), ()
    except UnicodeDecodeError as e:
        warning = f"not valid UTF-8 (byte {e.start}); decoded as Windows-1252"
        return data.decode("cp1252", errors="replace"), (warning,)


def _read_file(file: Path, ctx: _Context, out: _Collector) -> None:
    """Parse one file into ``out``; its failure becomes a problem, never an exception."""
    try:
        with file.open("rb") as fh:
            data = fh.read() if ctx.max_bytes is None else fh.read(ctx.max_bytes + 1)
    except OSError as e:
        out.problems.append(FileProblem(str(file), f"{file}: cannot read: {e.strerror or e}"))
        return
    if ctx.max_bytes is not None and len(data) > ctx.max_bytes:
        message = f"{file}: larger than {ctx.max_bytes} bytes ([ingest] max_bytes); not read"
        out.problems.append(FileProblem(str(file), message))
        return
    result = isolate(str(file), lambda: _parse_file(file, data, ctx, out))
    if isinstance(result, Rejected):
        out.problems.append(FileProblem(str(file), _prefixed(file, result.reason)))


def _parse_file(file: Path, data: bytes, ctx: _Context, out: _Collector) -> None:
    """Decode and parse one file by its suffix (JSON list items are isolated inside)."""
    text, warnings = _decode(data)
    suffix = file.suffix.lower()
    if suffix == ".txt":
        out.add(_from_text(file, text, warnings, ctx))
    elif suffix == ".json":
        _from_json(file, text, warnings, ctx, out)
    else:
        out.add(_from_markdown(file, text, warnings, ctx))


def _prefixed(file: Path, message: str) -> str:
    """``message`` starting with the file name (added if missing)."""
    return message if message.startswith(str(file)) else f"{file}: {message}"


# --- .txt -------------------------------------------------------------------------------


def _from_text(file: Path, text: str, warnings: tuple[str, ...], ctx: _Context) -> RawArticle:
    """A RawArticle from the plain-text export (caption dropped, no image)."""
    parsed = parse_text_article(text, origin=str(file), default_tz=ctx.default_tz)
    url = _permalink(ctx, file)
    city = parsed.dateline_city
    return RawArticle(
        source=ctx.source,
        origin=str(file),
        title=parsed.title,
        guid=url,
        url=url,
        author=parsed.author,
        published=parsed.published,
        local_tz=parsed.local_tz or ctx.default_tz,
        content_html=body_html(parsed),
        summary=None,
        image=None,
        tags=parsed.tags,
        dateline_city=_title_case(city) if city else None,
        advertorial=parsed.advertorial,
        warnings=(*(f"{file}: {w}" for w in warnings), *parsed.warnings),
    )


def _title_case(city: str) -> str:
    """``"TANJUNG REDEB"`` -> ``"Tanjung Redeb"``."""
    return " ".join(word.capitalize() for word in city.split())


def _permalink(ctx: _Context, file: Path, item: str | None = None) -> str:
    """Stable URL for an article without one: from the file stem (and item title)."""
    slug = slugify(file.stem)
    if item is not None:
        slug = f"{slug}-{slugify(item)}"
    return f"{ctx.base_url}/artikel/{slug}"


# --- .md ---------------------------------------------------------------------------------


def _from_markdown(file: Path, text: str, warnings: tuple[str, ...], ctx: _Context) -> RawArticle:
    """A RawArticle from Markdown with TOML/YAML front matter."""
    meta, body = _split_front_matter(text, file)
    if "title" not in meta:
        heading = _HEADING.match(body)
        if heading is None:
            raise ParseError(f"{file}: no 'title' in the front matter and no '# heading'")
        meta = {**meta, "title": heading.group("title")}
        body = body[heading.end() :]
    if not body.strip():
        raise ParseError(f"{file}: the Markdown body is empty")
    content = ctx.markdown(body)
    city = _dateline_city(body)
    return _article(_Origin(file), meta, content, city, warnings=warnings, ctx=ctx)


def _split_front_matter(text: str, file: Path) -> tuple[dict[str, Any], str]:
    """(front matter as a dict, Markdown body). No front matter gives ``{}``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    match = _FRONT_MATTER.match(text)
    if match is None:
        if text.startswith(("+++", "---")):
            raise ParseError(f"{file}: front matter opened with {text[:3]!r} is never closed")
        return {}, text
    raw = match.group("meta")
    try:
        meta: object = tomllib.loads(raw) if match.group("fence") == "+++" else yaml.safe_load(raw)
    except tomllib.TOMLDecodeError as e:
        raise ParseError(f"{file}: invalid TOML front matter: {e}") from e
    except yaml.YAMLError as e:
        raise ParseError(f"{file}: invalid YAML front matter: {_one_line(e)}") from e
    except (ValueError, RecursionError) as e:  # e.g. over-long integers, deep nesting
        message = f"{file}: invalid front matter: {_one_line(e) or type(e).__name__}"
        raise ParseError(message) from e
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ParseError(f"{file}: front matter must be a table of keys, not {_kind(meta)}")
    check_text(f"{file}: front matter", meta, nul=False)
    return {str(k): v for k, v in meta.items()}, text[match.end() :]


def _dateline_city(markdown: str) -> str | None:
    """The city of a ``OUTLET, CITY – `` dateline opening the Markdown body."""
    match = _FIRST_PARAGRAPH.match(markdown)
    dateline = find_dateline(" ".join(match.group("para").split())) if match else None
    return _title_case(dateline.city.strip("*_")) if dateline else None


def _html_dateline_city(content_html: str) -> str | None:
    """The dateline city of the first ``<p>`` of ready-made HTML."""
    match = _FIRST_HTML_PARAGRAPH.search(content_html)
    if match is None:
        return None
    return _dateline_city(html.unescape(_TAG.sub("", match.group("para"))))


# --- .json --------------------------------------------------------------------------------


def _from_json(
    file: Path, text: str, warnings: tuple[str, ...], ctx: _Context, out: _Collector
) -> None:
    """Articles from a JSON object or list; each bad item is its own problem."""
    try:
        data: object = json.loads(text)
    except json.JSONDecodeError as e:
        message = f"{file}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        raise ParseError(message) from e
    except (ValueError, RecursionError) as e:  # e.g. over-long integers, deep nesting
        raise ParseError(f"{file}: invalid JSON: {_one_line(e) or type(e).__name__}") from e
    if isinstance(data, dict):
        out.add(_json_item(_Origin(file), data, warnings, ctx))
        return
    if not isinstance(data, list):
        raise ParseError(f"{file}: expected an object or a list of objects, got {_kind(data)}")
    if not data:
        raise ParseError(f"{file}: the list of articles is empty")
    for number, item in enumerate(data, 1):
        origin = _Origin(file, number)
        step = partial(_json_item, origin, item, warnings, ctx)
        result = isolate(str(origin), step)
        if isinstance(result, RawArticle):
            out.add(result)
        else:
            out.problems.append(FileProblem(str(origin), str(result)))


def _json_item(
    origin: _Origin, item: object, warnings: tuple[str, ...], ctx: _Context
) -> RawArticle:
    """One JSON object as a RawArticle (``content_html`` wins over ``body``)."""
    if not isinstance(item, dict):
        raise ParseError(f"{origin}: expected an object, got {_kind(item)}")
    check_text(str(origin), item, nul=False)
    meta = {str(k): v for k, v in item.items()}
    html_value = _opt_str(meta, "content_html", origin)
    body = _opt_str(meta, "body", origin)
    if html_value:
        content, city = html_value, _html_dateline_city(html_value)
    elif body:
        content, city = ctx.markdown(body), _dateline_city(body)
    else:
        raise ParseError(f"{origin}: needs a non-empty 'content_html' or 'body'")
    return _article(origin, meta, content, city, warnings=warnings, ctx=ctx)


# --- shared metadata handling -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where an article came from: a file, or item ``number`` (1-based) of a JSON list."""

    file: Path
    number: int | None = None

    def __str__(self) -> str:
        return str(self.file) if self.number is None else f"{self.file}[{self.number}]"


def _article(
    origin: _Origin,
    meta: Meta,
    content: str,
    city: str | None,
    *,
    warnings: tuple[str, ...],
    ctx: _Context,
) -> RawArticle:
    """Build a RawArticle from validated metadata (Markdown front matter or JSON).

    Without a ``url``, the permalink comes from the file stem; items of a JSON
    list add their title's slug so that each gets its own.
    """
    title = _opt_str(meta, "title", origin)
    if not title:
        raise ParseError(f"{origin}: missing 'title'")
    notes = [f"{origin}: {w}" for w in warnings]
    notes.extend(f"{origin}: unknown key {k!r} ignored" for k in sorted(set(meta) - _KNOWN_KEYS))
    date_key = "date" if meta.get("date") not in (None, "") else "published"
    published = _date(meta, date_key, origin, ctx)
    floating = published is not None and _written_without_zone(meta.get(date_key))
    if published is None:
        notes.append(f"{origin}: no 'date'; publication date unknown")
    url = _opt_str(meta, "url", origin)
    guid = _opt_str(meta, "guid", origin) or _opt_str(meta, "id", origin)
    if not url:
        url = _permalink(ctx, origin.file, None if origin.number is None else title)
    return RawArticle(
        source=ctx.source,
        origin=str(origin),
        title=" ".join(title.split()),
        guid=guid or url,
        url=url,
        author=_opt_str(meta, "author", origin),
        published=published,
        updated=_date(meta, "updated", origin, ctx),
        summary=_opt_str(meta, "summary", origin),
        content_html=content,
        image=_image(meta, origin),
        regions=_str_list(meta, "regions", origin),
        categories=_str_list(meta, "categories", origin),
        tags=_str_list(meta, "tags", origin),
        dateline_city=city,
        advertorial=_opt_bool(meta, "advertorial", origin),
        breaking=bool(_opt_bool(meta, "breaking", origin)),
        language=_opt_str(meta, "language", origin),
        local_tz=_local_tz(published, ctx.default_tz),
        warnings=tuple(notes),
        floating_time=floating,
    )


def _written_without_zone(value: object) -> bool:
    """Whether a front-matter date names no zone or offset (a plain date counts)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return False
    if isinstance(value, datetime):
        return value.tzinfo is None
    return isinstance(value, date)


def _local_tz(published: datetime | None, default_tz: str) -> str:
    """The article's zone: ``default_tz`` unless the date's offset says WIB/WITA/WIT."""
    if published is None:
        return default_tz
    offset = published.utcoffset()
    if offset == _offset(default_tz, published):
        return default_tz
    return next((name for name in ZONES.values() if _offset(name, published) == offset), default_tz)


def _offset(zone: str, moment: datetime) -> timedelta | None:
    """UTC offset of ``zone`` at ``moment`` (``None`` at the edges of time)."""
    try:
        return moment.astimezone(ZoneInfo(zone)).utcoffset()
    except OverflowError:
        return None


def _opt_str(meta: Meta, key: str, where: _Origin) -> str | None:
    """A string value (numbers are accepted as text); ``None`` when absent/empty."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ParseError(f"{where}: '{key}' must be text, got {_kind(value)}")
    text = str(value).strip()
    return text or None


def _str_list(meta: Meta, key: str, where: _Origin) -> tuple[str, ...]:
    """A list of strings; a single string may hold comma-separated items."""
    value = meta.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise ParseError(f"{where}: '{key}' must be a list of strings, got {_kind(value)}")
    return tuple(s for s in (str(v).strip() for v in value) if s)


def _opt_bool(meta: Meta, key: str, where: _Origin) -> bool | None:
    """A boolean (``true``/``false``, also as text); ``None`` when absent."""
    value = meta.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ParseError(f"{where}: '{key}' must be true or false, got {value!r}")


def _date(meta: Meta, key: str, where: _Origin, ctx: _Context) -> datetime | None:
    """An aware datetime from ISO 8601 text or a TOML/YAML date; naive -> default zone."""
    value = meta.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as e:
            message = f"{where}: '{key}' is not an ISO 8601 date/time: {value!r}"
            raise ParseError(message) from e
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=ctx.zone)
    elif isinstance(value, date):
        aware = datetime.combine(value, time(0, 0), tzinfo=ctx.zone)
    else:
        raise ParseError(f"{where}: '{key}' must be an ISO 8601 date/time, got {_kind(value)}")
    try:
        aware.astimezone(UTC)
    except OverflowError as e:
        raise ParseError(f"{where}: '{key}' is out of range: {aware.isoformat()}") from e
    return aware


def _image(meta: Meta, where: _Origin) -> Image | None:
    """The lead image: a URL string or a table ``{url, caption}``."""
    value = meta.get("image")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return Image(url=value.strip())
    if isinstance(value, dict):
        url = _opt_str(value, "url", where)
        if not url:
            raise ParseError(f"{where}: 'image' table needs a 'url'")
        return Image(url=url, caption=_opt_str(value, "caption", where))
    raise ParseError(f"{where}: 'image' must be a URL or a table with 'url', got {_kind(value)}")


def _kind(value: object) -> str:
    """A short, human name for a value's type in error messages."""
    names = {dict: "a table", list: "a list", str: "text", bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _one_line(error: Exception) -> str:
    """An exception's message on a single line."""
    return " ".join(str(error).split())
