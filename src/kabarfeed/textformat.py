"""Parser for the plain-text article export (the "seed format").

A newsroom CMS exports one article per ``.txt`` file, top to bottom::

    Title line

    Oleh <author> pada <D Mon YYYY>, <HH:MM> <WIB|WITA|WIT>
    optional tag/keyword line(s)

    Photo caption ending with a credit. (Nusplus)

    OUTLET, CITY – First body paragraph ...

    ... last paragraph. (Jun/ Red/ ADV)

    Tinggalkan Komentar

:func:`parse_text_article` is pure and tolerant: odd header lines never cost
body text, they produce a warning instead. It raises :class:`ParseError` only
when there is no title or no body at all.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kabarfeed.errors import ParseError

__all__ = [
    "BOILERPLATE_ANYWHERE",
    "BOILERPLATE_TRAILING",
    "MONTHS",
    "ZONES",
    "Dateline",
    "ParsedText",
    "body_html",
    "find_dateline",
    "parse_text_article",
]

ZONES: dict[str, str] = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
"""Indonesian zone abbreviations (UTC+7, +8, +9) -> IANA zone names."""

MONTHS: dict[str, int] = {
    "jan": 1,
    "januari": 1,
    "feb": 2,
    "februari": 2,
    "mar": 3,
    "maret": 3,
    "apr": 4,
    "april": 4,
    "mei": 5,
    "jun": 6,
    "juni": 6,
    "jul": 7,
    "juli": 7,
    "agu": 8,
    "agt": 8,
    "ags": 8,
    "agustus": 8,
    "sep": 9,
    "sept": 9,
    "september": 9,
    "okt": 10,
    "oktober": 10,
    "nov": 11,
    "november": 11,
    "des": 12,
    "desember": 12,
}
"""Indonesian month names and abbreviations (lower case) -> month number."""

BOILERPLATE_TRAILING: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"tinggalkan\s+(?:komentar|balasan)\b.*",
        r"(?:\d+\s+)?komentar\s*:?",
        r"bagikan(?:\s+(?:artikel|berita)(?:\s+ini)?)?\s*:?",
        r"share(?:\s+this)?\s*:?",
        r"(?:suka|like)\s+(?:ini|this)\s*:?",
        r"(?:berita|artikel|baca)\s+(?:terkait|lainnya)\s*:?",
        r"(?:facebook|twitter|x|whatsapp|telegram|linkedin|e-?mail|print|cetak)",
        r"(?:your\s+email\s+address|alamat\s+email\s+anda)\b.*",
    )
)
"""Whole lines dropped from the end of an article (site furniture)."""

BOILERPLATE_ANYWHERE: tuple[re.Pattern[str], ...] = (
    re.compile(r"baca\s+juga\s*[:.\-–—]?(?:\s.*)?", re.IGNORECASE),
)
"""Whole lines dropped wherever they appear (cross-links inside the body)."""

_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_BYLINE_START = re.compile(r"oleh\s*[:\-]?\s+", re.IGNORECASE)
_BYLINE = re.compile(
    r"""oleh\s*[:\-]?\s+(?P<author>.+?)\s+pada\s+
        (?:(?P<dayname>[a-z']+)\s*,?\s+)?
        (?P<day>\d{1,2})\s+(?P<month>[a-z]+)\.?\s+(?P<year>\d{4})
        \s*[,|]?\s*(?:pukul\s+|jam\s+)?
        (?P<hour>\d{1,2})[:.](?P<minute>\d{2})
        (?:\s*(?P<zone>WITA|WIB|WIT)\b)?""",
    re.IGNORECASE | re.VERBOSE,
)
_AUTHOR_ONLY = re.compile(r"oleh\s*[:\-]?\s+(?P<author>.+?)(?:\s+pada\b.*)?$", re.IGNORECASE)
_CREDIT = re.compile(r"^(?P<text>.*?)\s*\((?P<credit>[^()/]{1,40})\)\s*$", re.DOTALL)
_SIGNOFF = re.compile(
    r"\(\s*(?P<group>[a-z][a-z.]{0,9}(?:\s*/\s*[a-z][a-z.]{0,9})*)\s*\)\s*$", re.IGNORECASE
)
_DASH = re.compile(r"\s*[–—-]+\s*")
_SENTENCE_END = '.!?…"”’:;,)'
_PARAGRAPH_END = '.!?…"”’)'
_DATELINE_MAX = 60
_DATELINE_SEARCH_BLOCKS = 4
_TAG_MAX_CHARS = 80
_MIN_YEAR, _MAX_YEAR = 1900, 2999
_TAG_MAX_WORDS = 10


@dataclass(frozen=True, slots=True)
class Dateline:
    """A body dateline ``OUTLET, CITY – `` split into its parts."""

    outlet: str
    city: str
    rest: str


@dataclass(frozen=True, slots=True)
class ParsedText:
    """One article parsed from the plain-text export."""

    title: str
    author: str | None = None
    published: datetime | None = None
    local_tz: str | None = None
    tags: tuple[str, ...] = ()
    caption: str | None = None
    caption_credit: str | None = None
    outlet: str | None = None
    dateline_city: str | None = None
    paragraphs: tuple[str, ...] = ()
    signoff: tuple[str, ...] = ()
    advertorial: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Byline:
    author: str | None
    published: datetime | None
    local_tz: str | None
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Header:
    title: str
    byline: _Byline | None
    tags: tuple[str, ...]
    rest: tuple[str, ...]


def parse_text_article(
    text: str, *, origin: str = "<text>", default_tz: str | None = None
) -> ParsedText:
    """Parse one article in the plain-text export format.

    ``origin`` names the input in warnings and errors. ``default_tz`` (an IANA
    name) is used only when a byline has a date but no WIB/WITA/WIT zone.
    Raises :class:`ParseError` when there is no title or no body at all.
    """
    lines = _clean_lines(text)
    header = _split_header(lines, origin)
    warnings: list[str] = []
    byline = header.byline
    if byline is None:
        warnings.append(f"{origin}: no byline ('Oleh … pada …'); publication date unknown")
        byline = _Byline(None, None, None, ())
    elif byline.local_tz is not None or default_tz is None:
        warnings.extend(f"{origin}: {w}" for w in byline.warnings)
    else:
        byline = _apply_default_tz(byline, default_tz, origin, warnings)
    blocks = _paragraphs(header.rest)
    tags = header.tags
    if not blocks and tags:
        warnings.append(f"{origin}: only short lines after the header; kept them as body")
        blocks, tags = list(tags), ()
    if not blocks:
        raise ParseError(f"{origin}: no body text after the header")
    return _assemble(header.title, byline, tags, blocks, origin=origin, warnings=warnings)


def body_html(parsed: ParsedText) -> str:
    """The body as HTML: one escaped ``<p>`` per paragraph."""
    return "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in parsed.paragraphs)


def find_dateline(paragraph: str) -> Dateline | None:
    """Split a leading ``OUTLET, CITY – `` dateline off ``paragraph``.

    The separator may be an en dash, em dash or hyphen, with or without spaces.
    Only a short (< 60 chars), mostly upper-case ``WORD(S), CITY`` prefix counts.
    """
    for match in _DASH.finditer(paragraph, 0, _DATELINE_MAX + 4):
        prefix = paragraph[: match.start()].strip()
        rest = paragraph[match.end() :].strip()
        if len(prefix) >= _DATELINE_MAX or not rest or "," not in prefix:
            continue
        outlet, _, city = prefix.rpartition(",")
        outlet, city = outlet.strip(), city.strip()
        if outlet and city and _mostly_upper(prefix) and _is_name(city):
            return Dateline(outlet=outlet, city=city, rest=rest)
    return None


# --- lines and header ---------------------------------------------------------


def _clean_lines(text: str) -> list[str]:
    """Normalise newlines/BOM/invisible chars and drop boilerplate lines."""
    text = _INVISIBLE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    lines = [ln for ln in lines if not _matches(BOILERPLATE_ANYWHERE, ln)]
    while lines and (not lines[-1].strip() or _matches(BOILERPLATE_TRAILING, lines[-1])):
        lines.pop()
    return lines


def _matches(patterns: tuple[re.Pattern[str], ...], line: str) -> bool:
    """Whether the whole (space-normalised) line matches one of ``patterns``."""
    squeezed = " ".join(line.split())
    return any(p.fullmatch(squeezed) for p in patterns)


def _split_header(lines: list[str], origin: str) -> _Header:
    """Take title, byline and tag lines off the top; the rest is body."""
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    if not nonblank:
        raise ParseError(f"{origin}: empty article (no title)")
    title = " ".join(lines[nonblank[0]].split())
    if _BYLINE_START.match(title):
        raise ParseError(f"{origin}: no title (the first line is the byline)")
    byline: _Byline | None = None
    tags: list[str] = []
    index = nonblank[0] + 1
    while index < len(lines):
        line = " ".join(lines[index].split())
        if not line:
            index += 1
        elif byline is None and _BYLINE_START.match(line):
            byline = _parse_byline(line)
            index += 1
        elif _is_tag_line(line):
            tags.append(line)
            index += 1
        else:
            break
    return _Header(title, byline, tuple(tags), tuple(lines[index:]))


def _is_tag_line(line: str) -> bool:
    """A short keyword line: few words, no sentence punctuation, no credit."""
    return (
        len(line) <= _TAG_MAX_CHARS
        and len(line.split()) <= _TAG_MAX_WORDS
        and line[-1] not in _SENTENCE_END
        and find_dateline(line) is None
    )


def _parse_byline(line: str) -> _Byline:
    """Read author, date and zone from an ``Oleh …`` line."""
    match = _BYLINE.match(line)
    if match is None:
        author = _AUTHOR_ONLY.match(line)
        name = author.group("author").strip() if author else None
        return _Byline(name or None, None, None, (f"byline date not understood: {line!r}",))
    author_name = match.group("author").strip()
    month = MONTHS.get(match.group("month").lower())
    if month is None:
        warning = f"unknown month {match.group('month')!r} in byline {line!r}"
        return _Byline(author_name, None, None, (warning,))
    zone_abbr = (match.group("zone") or "").upper()
    try:
        naive = datetime(
            int(match.group("year")),
            month,
            int(match.group("day")),
            int(match.group("hour")),
            int(match.group("minute")),
        )
    except ValueError:
        naive = None
    if naive is None or not _MIN_YEAR <= naive.year <= _MAX_YEAR:
        return _Byline(author_name, None, None, (f"impossible date in byline {line!r}",))
    if not zone_abbr:
        warning = f"byline has no time zone (WIB/WITA/WIT): {line!r}"
        return _Byline(author_name, naive, None, (warning,))
    zone = ZONES[zone_abbr]
    return _Byline(author_name, naive.replace(tzinfo=ZoneInfo(zone)), zone, ())


def _apply_default_tz(byline: _Byline, default_tz: str, origin: str, out: list[str]) -> _Byline:
    """Give a zone-less byline date the default zone (with a warning)."""
    naive = byline.published
    if naive is None or naive.tzinfo is not None:
        out.extend(f"{origin}: {w}" for w in byline.warnings)
        return byline
    try:
        zone = ZoneInfo(default_tz)
    except (ZoneInfoNotFoundError, ValueError):
        out.append(f"{origin}: byline has no zone and default zone {default_tz!r} is unknown")
        return _Byline(byline.author, None, None, ())
    out.append(f"{origin}: byline has no time zone; assumed {default_tz}")
    return _Byline(byline.author, naive.replace(tzinfo=zone), default_tz, ())


# --- body -----------------------------------------------------------------------


def _paragraphs(lines: tuple[str, ...]) -> list[str]:
    """Group body lines into paragraphs with normalised spaces.

    Blank lines separate paragraphs. Inside a block, a line that ends a
    sentence also ends its paragraph; otherwise the next line continues it
    (hard-wrapped text).
    """
    out: list[str] = []
    current: list[str] = []
    for raw in (*lines, ""):
        line = " ".join(raw.split())
        if line:
            current.append(line)
        if current and (not line or line[-1] in _PARAGRAPH_END):
            out.append(" ".join(current))
            current = []
    return out


def _assemble(
    title: str,
    byline: _Byline,
    tags: tuple[str, ...],
    blocks: list[str],
    *,
    origin: str,
    warnings: list[str],
) -> ParsedText:
    """Find caption, dateline and sign-off in the body blocks."""
    limit = min(len(blocks), _DATELINE_SEARCH_BLOCKS)
    at = next((i for i in range(limit) if find_dateline(blocks[i])), None)
    dateline = None if at is None else find_dateline(blocks[at])
    if at is None or dateline is None:
        warnings.append(f"{origin}: no dateline ('OUTLET, CITY – ') at the start of the body")
        caption, credit, blocks = _take_caption(blocks, min(1, len(blocks) - 1))
    else:
        blocks[at] = dateline.rest
        caption, credit, blocks = _take_caption(blocks, at)
        extra = at - (caption is not None)
        if extra:
            warnings.append(f"{origin}: kept {extra} paragraph(s) found before the dateline")
    signoff, blocks = _take_signoff(blocks)
    if not blocks:
        raise ParseError(f"{origin}: no body text besides the sign-off")
    return ParsedText(
        title=title,
        author=byline.author,
        published=byline.published if byline.local_tz else None,
        local_tz=byline.local_tz,
        tags=tags,
        caption=caption,
        caption_credit=credit,
        outlet=dateline.outlet if dateline else None,
        dateline_city=dateline.city if dateline else None,
        paragraphs=tuple(blocks),
        signoff=signoff,
        advertorial=any(s.upper() == "ADV" for s in signoff),
        warnings=tuple(warnings),
    )


def _take_caption(blocks: list[str], limit: int) -> tuple[str | None, str | None, list[str]]:
    """Remove the photo caption: the first of ``blocks[:limit]`` ending in ``(Credit)``.

    ``limit`` is the dateline paragraph's index; without a dateline only the
    first block may be the caption, and never when it is the only block.
    """
    for i in range(max(limit, 0)):
        credited = _CREDIT.match(blocks[i])
        if credited and credited.group("text"):
            caption, credit = credited.group("text"), credited.group("credit").strip()
            return caption, credit, [*blocks[:i], *blocks[i + 1 :]]
    return None, None, blocks


def _take_signoff(blocks: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Remove the trailing ``(Jun/ Red/ ADV)`` group from the last paragraph."""
    match = _SIGNOFF.search(blocks[-1])
    if match is None:
        return (), blocks
    initials = tuple(part.strip() for part in match.group("group").split("/"))
    remainder = blocks[-1][: match.start()].rstrip()
    kept = [*blocks[:-1], remainder] if remainder else blocks[:-1]
    return initials, kept


def _mostly_upper(text: str) -> bool:
    """At least 70 % of the letters are upper case."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isupper() for c in letters) >= 0.7 * len(letters)


def _is_name(city: str) -> bool:
    """A plausible place name: 1-4 words of letters (and . ' -)."""
    words = city.split()
    return 0 < len(words) <= 4 and all(re.fullmatch(r"[^\W\d_][\w.'\-]*", w) for w in words)
