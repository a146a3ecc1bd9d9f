"""Pure normalisation of a :class:`RawArticle`: text, HTML, URLs and dates.

HTML is sanitised with an allow-list (nh3): no scripts, no event handlers, no
``javascript:`` URLs survive, and relative URLs become absolute.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "abbr": {"title"},
    "q": {"cite"},
    "blockquote": {"cite"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_ATTRS = frozenset({"href", "src", "cite"})
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid)$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u2028\u2029\ufeff]")
_TAG = re.compile(r"<[^>]*>")
_TRACKING_PIXEL = re.compile(
    r"<img[^>]*(?:width=[\"']?1[\"' ]|feeds\.feedburner|feedsportal|pixel)[^>]*>", re.IGNORECASE
)
FUTURE_TOLERANCE = timedelta(days=1)


def clean_text(value: str | None) -> str:
    """Plain text: tags dropped, entities decoded, control characters and
    runs of whitespace folded into single spaces."""
    if not value:
        return ""
    text = _TAG.sub(" ", value)
    for _ in range(2):  # double-escaped feeds: "&amp;amp;"
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    return " ".join(text.split())


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` at a word boundary to at most ``limit`` chars, adding an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,.;:-–—")
    return cut + "…"


def absolute_url(url: str | None, base: str | None) -> str | None:
    """``url`` resolved against ``base``; ``None`` for empty or unsafe schemes."""
    if not url or not url.strip():
        return None
    joined = urljoin(base or "", url.strip())
    scheme = urlsplit(joined).scheme.lower()
    return joined if scheme in URL_SCHEMES else None


def canonical_url(url: str) -> str:
    """The URL used for dedup: lower-case host, no fragment, no tracking params."""
    parts = urlsplit(url.strip())
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING_PARAMS.match(k)
    ]
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, urlencode(query), ""))


def sanitize_html(fragment: str | None, *, base_url: str | None) -> str:
    """Allow-listed HTML with absolute URLs; tracking pixels removed."""
    if not fragment:
        return ""
    fragment = _TRACKING_PIXEL.sub("", fragment)

    def fix_url(tag: str, attr: str, value: str) -> str | None:
        if attr in _URL_ATTRS:
            return absolute_url(value, base_url)
        return value

    cleaned = nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        attribute_filter=fix_url,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return _CONTROL.sub("", cleaned).strip()


def cut_markup(text: str, limit: int) -> str:
    """At most ``limit`` characters of text or HTML, never ending inside a tag or entity.

    The cut falls at the last word boundary (or tag end) before ``limit``; the
    result may still hold unclosed elements, which :func:`cut_html` closes.
    """
    if len(text) <= limit:
        return text
    head = text[: max(limit, 0)]
    if head.rfind("<") > head.rfind(">"):
        head = head[: head.rfind("<")]
    if head.rfind("&") > head.rfind(";"):
        head = head[: head.rfind("&")]
    boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind(">") + 1)
    if boundary > len(head) - 200:  # a word boundary nearby: do not split a word
        head = head[:boundary]
    return head


def cut_html(fragment: str, limit: int, *, base_url: str | None) -> str:
    """Sanitised HTML of at most ``limit`` characters: cut, then sanitised again.

    Cutting never leaves broken markup: the cut never splits a tag or entity,
    and the sanitiser closes the elements left open, with an ellipsis at the
    cut. Already short HTML is returned unchanged.
    """
    if len(fragment) <= limit:
        return fragment
    budget = limit - 1
    while budget > 0:
        cut = sanitize_html(cut_markup(fragment, budget).rstrip() + "…", base_url=base_url)
        if len(cut) <= limit:
            return cut
        budget -= len(cut) - limit + 16  # closing tags (and escapes) took the rest
    return ""


def first_image(fragment: str) -> str | None:
    """The ``src`` of the first ``<img>`` in already-sanitised HTML."""
    match = re.search(r"<img[^>]*\ssrc=\"([^\"]+)\"", fragment)
    return html.unescape(match[1]) if match else None


def to_utc(value: datetime | None) -> datetime | None:
    """Aware UTC, or ``None``. Naive values are refused by the caller earlier."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Dates:
    """What :func:`decide_article_dates` decided.

    ``from_clock`` is true when the article had no usable date and was dated
    ``now``: such a date is given once, at first sight, and kept afterwards.
    """

    published: datetime
    updated: datetime
    warnings: tuple[str, ...]
    from_clock: bool


def decide_dates(
    published: datetime | None, updated: datetime | None, *, now: datetime
) -> tuple[datetime, datetime, list[str]]:
    """Published/updated times in UTC, with warnings for missing or future dates.

    A missing publication date becomes the updated date or ``now``; a date more
    than a day in the future (bad upstream clock) is clamped to ``now``.
    """
    dates = decide_article_dates(published, updated, now=now)
    return dates.published, dates.updated, list(dates.warnings)


def decide_article_dates(
    published: datetime | None, updated: datetime | None, *, now: datetime
) -> Dates:
    """Like :func:`decide_dates`, also telling whether the date came from the clock."""
    warnings: list[str] = []
    from_clock = False
    pub, upd = to_utc(published), to_utc(updated)
    if pub is None:
        pub, from_clock = upd or now, upd is None
        warnings.append("no publication date; using " + ("updated date" if upd else "now"))
    if pub > now + FUTURE_TOLERANCE:
        warnings.append(f"publication date {pub.isoformat()} is in the future; using now")
        pub, from_clock = now, True
    if upd is None or upd < pub:
        upd = pub
    upd = min(upd, max(now, pub))
    return Dates(pub, upd, tuple(warnings), from_clock)


def stable_key(*parts: str | None) -> str:
    """A hex digest of the non-empty parts: the basis of ids and dedup keys."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode("utf-8"))
    return digest.hexdigest()


def content_hash(title: str, text: str) -> str:
    """A hash of what readers see (title and text), for edit and copy detection."""
    return stable_key(clean_text(title).casefold(), clean_text(text).casefold())
