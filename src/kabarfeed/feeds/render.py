"""Turn a selection and its articles into RSS 2.0, Atom 1.0 and JSON Feed 1.1 bytes.

Pure: no clock, no I/O, so the same store gives the same bytes. RSS and
Atom come from feedgen, with these workarounds for feedgen 1.0.0:

- every date is set explicitly (unset dates default to "now");
- entries are appended in order (``add_entry`` prepends by default);
- feed links are added self first, alternate last (RSS uses the last link);
- Atom entry links lose every attribute but ``href`` (feedgen #135), so image
  enclosures, ``media:content``, ``dc:creator`` and the RSS ``rel="hub"`` link
  come from a small feedgen extension of our own instead;
- text is stripped of characters XML cannot carry (lxml raises on them).
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from lxml import etree  # type: ignore[import-untyped]

from kabarfeed import __version__
from kabarfeed.feeds.selection import ALL, Selection
from kabarfeed.feeds.strings import list_join, strings
from kabarfeed.models import Article, Image, Taxonomy

if TYPE_CHECKING:  # render workers never load the config (pydantic): see feeds.pool
    from kabarfeed.config import Config

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
MEDIA_NS = "http://search.yahoo.com/mrss/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)
"""``updated`` of a feed without entries: fixed, so empty feeds keep their bytes."""

MEDIA_TYPES: Mapping[str, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
_NOT_XML = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)


def xml_safe(text: str | None) -> str:
    """``text`` without characters XML 1.0 forbids or discourages (controls, lone
    surrogates, non-characters). Everything else, emoji and RTL included, stays."""
    return _NOT_XML.sub("", text) if text else ""


@dataclass(frozen=True, slots=True)
class Term:
    """One category of an entry: ``term`` (slug), ``label`` (name), ``scheme`` URL."""

    term: str
    label: str
    scheme: str


@dataclass(frozen=True, slots=True)
class FeedSite:
    """Everything rendering needs from the config, frozen."""

    title: str
    base_url: str
    language: str
    timezone: str
    taxonomy: Taxonomy
    full_content: bool = True
    hub: str = ""
    advertorial_label: str = "Advertorial"
    description: str = ""
    domain: str = "localhost"
    """The host name of ``base_url`` (for tag: URIs)."""
    known_terms: Mapping[tuple[str, str], Term] = field(init=False, repr=False, compare=False)
    """``(kind, slug)`` -> :class:`Term` for every region and category."""

    def __post_init__(self) -> None:
        known = {
            ("region", r.slug): Term(r.slug, xml_safe(r.name), self.scheme("region"))
            for r in self.taxonomy.regions
        }
        known.update(
            (("category", c.slug), Term(c.slug, xml_safe(c.name), self.scheme("category")))
            for c in self.taxonomy.categories
        )
        object.__setattr__(self, "known_terms", known)

    @classmethod
    def from_config(cls, config: Config) -> FeedSite:
        """The rendering view of ``config``."""
        return cls(
            title=xml_safe(config.site.title),
            base_url=config.site.base_url,
            language=config.site.language,
            timezone=config.site.timezone,
            taxonomy=config.taxonomy,
            full_content=config.feeds.full_content,
            hub=config.feeds.websub_hub,
            advertorial_label=xml_safe(config.digest.advertorial_label) or "Advertorial",
            description=xml_safe(config.site.description),
            domain=urlsplit(config.site.base_url).hostname or "localhost",
        )

    @property
    def home(self) -> str:
        """The site's front page URL."""
        return self.base_url + "/"

    def url(self, path: str) -> str:
        """The public URL of an output-relative ``path``."""
        return f"{self.base_url}/{path}"

    def scheme(self, kind: str) -> str:
        """The category scheme/domain URL for ``"region"``, ``"category"`` or ``"label"``."""
        return f"{self.base_url}/feeds/{kind}/"


@dataclass(frozen=True, slots=True)
class Describe:
    """Title and subtitle of one feed, in the site language."""

    title: str
    subtitle: str


def describe(site: FeedSite, selection: Selection) -> Describe:
    """Name the feed after its region/category, e.g. "Nusantara Plus: Balikpapan"."""
    text = strings(site.language)
    names = _names(site, selection)
    kind = selection.kind
    subtitle = text[f"{kind}_subtitle"].format(**names)
    region = None
    if kind == "region" and selection.region:
        region = site.taxonomy.region(selection.region)
    if region is not None:
        below = set(site.taxonomy.descendants(region.slug))
        children = [xml_safe(r.name) for r in site.taxonomy.regions if r.slug in below]
        if children:
            includes = text["region_includes"].format(children=list_join(children, site.language))
            subtitle = f"{subtitle} ({includes})"
    return Describe(feed_title(site, selection, names), subtitle)


def feed_title(site: FeedSite, selection: Selection, names: Mapping[str, str] | None = None) -> str:
    """The feed's title alone (see :func:`describe`)."""
    pattern = strings(site.language)[f"{selection.kind}_title"]
    return pattern.format(**(names or _names(site, selection)))


def _names(site: FeedSite, selection: Selection) -> dict[str, str]:
    """What feed titles and subtitles name: the site, the region, the category."""
    region = site.taxonomy.region(selection.region) if selection.region else None
    category = site.taxonomy.category(selection.category) if selection.category else None
    return {
        "site": site.title,
        "region": xml_safe(region.name) if region else (selection.region or ""),
        "category": xml_safe(category.name) if category else (selection.category or ""),
    }


# ---------------------------------------------------------------- entry values


def entry_id(site: FeedSite, article: Article) -> str:
    """The article's guid when it is a URL, else a stable ``tag:`` URI."""
    guid = (article.guid or "").strip()
    if guid.startswith(("http://", "https://")):
        return xml_safe(guid)
    day = article.first_seen.astimezone(UTC).strftime("%Y-%m-%d")
    return f"tag:{site.domain},{day}:{article.id}"


def image_type(image: Image) -> str:
    """The image's media type, guessed from its URL when the source did not say."""
    if image.type and "/" in image.type:
        return image.type.strip().lower()
    guessed, _ = mimetypes.guess_type(urlsplit(image.url).path)
    return guessed if guessed and guessed.startswith("image/") else "image/jpeg"


def local(site: FeedSite, article: Article, moment: datetime) -> datetime:
    """``moment`` in the article's (else the site's) zone, for readable offsets."""
    zone = ZoneInfo(article.local_tz or site.timezone)
    return moment.astimezone(zone).replace(microsecond=0)


def content_html(site: FeedSite, article: Article) -> str:
    """The full content, led by a visible label for advertorials."""
    body = xml_safe(article.content_html)
    if article.advertorial:
        return f"<p><strong>{_escape(site.advertorial_label)}</strong></p>\n{body}"
    return body


def summary_text(site: FeedSite, article: Article) -> str:
    """The plain-text summary, prefixed with the label for advertorials."""
    summary = xml_safe(article.summary)
    if article.advertorial:
        return f"[{site.advertorial_label}] {summary}".strip()
    return summary


def summary_html(summary: str) -> str:
    """The plain-text ``summary`` as HTML, for RSS ``<description>``: readers
    render that element as HTML, so text that reads ``<img onerror=...>``
    must reach them escaped, as text, never as markup."""
    return html.escape(summary, quote=False)


def terms(site: FeedSite, article: Article) -> tuple[Term, ...]:
    """Region and category terms (known to the taxonomy) plus the advertorial label."""
    known = site.known_terms
    out = [known[k] for k in (("region", s) for s in article.regions) if k in known]
    out += [known[k] for k in (("category", s) for s in article.categories) if k in known]
    if article.advertorial:
        out.append(Term("advertorial", site.advertorial_label, site.scheme("label")))
    return tuple(out)


def feed_updated(articles: Sequence[Article]) -> datetime:
    """The newest entry's ``updated`` (not the build time)."""
    return max((a.updated for a in articles), default=EMPTY_FEED_UPDATED)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True, slots=True)
class EntryValues:
    """What an article's entries show, worked out once for every format."""

    id: str
    title: str
    author: str
    summary: str
    content: str | None
    """The full content (``None``: summary only, by config or for want of content)."""
    published: datetime
    updated: datetime
    terms: tuple[Term, ...]
    image_type: str = ""
    caption: str = ""


def entry_values(site: FeedSite, article: Article) -> EntryValues:
    """The values of ``article``'s entries in ``site``'s feeds."""
    shown = site.full_content and bool(article.content_html)
    image = article.image
    return EntryValues(
        id=entry_id(site, article),
        title=xml_safe(article.title),
        author=xml_safe(article.author),
        summary=summary_text(site, article),
        content=content_html(site, article) if shown else None,
        published=local(site, article, article.published),
        updated=local(site, article, article.updated),
        terms=terms(site, article),
        image_type=image_type(image) if image else "",
        caption=xml_safe(image.caption) if image else "",
    )


# ---------------------------------------------------------------- feedgen


class _FeedExtension(BaseExtension):  # type: ignore[misc]
    """Namespaces for our entry extension, and ``atom:link rel="hub"`` in RSS."""

    hub: str = ""

    def extend_ns(self) -> dict[str, str]:
        return {"dc": DC_NS, "media": MEDIA_NS}

    def extend_rss(self, rss: Any) -> Any:
        if self.hub:
            xml_elem(f"{{{ATOM_NS}}}link", rss[0], href=self.hub, rel="hub")
        return rss


class _EntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """``dc:creator``, image enclosure and ``media:content`` with its caption;
    the RSS ``<description>`` as HTML (see :func:`summary_html`)."""

    creator: str = ""
    description: str = ""
    image: Image | None = None
    image_type: str = ""
    caption: str = ""

    def extend_rss(self, item: Any) -> Any:
        if self.description:
            item.find("description").text = self.description
        if self.creator:
            xml_elem(f"{{{DC_NS}}}creator", item).text = self.creator
        if self.image:
            attrs = {
                "url": self.image.url,
                "length": str(self.image.length or 0),
                "type": self.image_type,
            }
            xml_elem("enclosure", item, **attrs)
            self._media(item)
        return item

    def extend_atom(self, entry: Any) -> Any:
        if self.image:
            attrs = {"rel": "enclosure", "href": self.image.url, "type": self.image_type}
            if self.image.length:
                attrs["length"] = str(self.image.length)
            xml_elem("link", entry, **attrs)  # feedgen's Atom uses a default xmlns
            self._media(entry)
        return entry

    def _media(self, parent: Any) -> None:
        assert self.image is not None
        attrs = {"url": self.image.url, "type": self.image_type, "medium": "image"}
        if self.image.length:
            attrs["fileSize"] = str(self.image.length)
        media = xml_elem(f"{{{MEDIA_NS}}}content", parent, **attrs)
        if self.caption:
            desc = xml_elem(f"{{{MEDIA_NS}}}description", media, type="plain")
            desc.text = self.caption


def _feed_generator(
    site: FeedSite,
    selection: Selection,
    articles: Sequence[Article],
    *,
    updated: datetime | None = None,
) -> Any:
    """A generator with the feed's head set; ``updated`` defaults to the newest
    of ``articles``."""
    names = describe(site, selection)
    fg = FeedGenerator()
    fg.register_extension("kabarfeed", _FeedExtension, _EntryExtension)
    fg.kabarfeed.hub = site.hub
    fg.title(names.title)
    fg.subtitle(names.subtitle)
    fg.language(site.language)
    fg.author(name=site.title, uri=site.home)
    fg.generator("kabarfeed", version=__version__)
    # to the second, as the entries show their times: "the newest entry's time"
    moment = (updated or feed_updated(articles)).astimezone(ZoneInfo(site.timezone))
    moment = moment.replace(microsecond=0)
    fg.updated(moment)
    fg.pubDate(moment)
    return fg


def _links(site: FeedSite, fg: Any, selection: Selection, fmt: str) -> None:
    """Self first, hub, alternate last: RSS's channel link is the last one added."""
    fg.id(site.url(selection.path(fmt)))
    fg.link(href=site.url(selection.path(fmt)), rel="self", type=MEDIA_TYPES[fmt], replace=True)
    if site.hub:
        fg.link(href=site.hub, rel="hub")
    fg.link(href=site.home, rel="alternate", type="text/html")


def feed_entry(site: FeedSite, article: Article, values: EntryValues | None = None) -> Any:
    """A feedgen entry for ``article`` (``values``: its :func:`entry_values`)."""
    v = values or entry_values(site, article)
    fe = FeedEntry()
    fe.register_extension("kabarfeed", _EntryExtension)
    fe.guid(v.id, permalink=v.id == article.url)
    fe.title(v.title)
    fe.link(href=article.url)
    fe.published(v.published)
    fe.updated(v.updated)
    if v.author:
        fe.author(name=v.author)
    if v.summary:
        fe.summary(v.summary)
    if v.content is not None:
        fe.content(v.content, type="html")
    for t in v.terms:
        fe.category(term=t.term, label=t.label, scheme=t.scheme)
    ext = fe.kabarfeed
    ext.creator, ext.image = v.author, article.image
    ext.description = summary_html(v.summary)
    ext.image_type, ext.caption = v.image_type, v.caption
    return fe


# ---------------------------------------------------------------- JSON Feed


def _json_item(site: FeedSite, article: Article, v: EntryValues) -> dict[str, Any]:
    item: dict[str, Any] = {"id": v.id, "url": article.url, "title": v.title}
    if v.content is not None:
        item["content_html"] = v.content
    else:
        item["content_text"] = v.summary
    if v.summary:
        item["summary"] = v.summary
    if article.image:
        item["image"] = article.image.url
    item["date_published"] = v.published.isoformat()
    item["date_modified"] = v.updated.isoformat()
    if article.author:
        item["authors"] = [{"name": v.author}]
    if v.terms:
        item["tags"] = [t.label for t in v.terms]
    item["language"] = article.language
    if article.image:
        item["attachments"] = [_attachment(article.image, v)]
    item["_kabarfeed"] = {
        "regions": list(article.regions),
        "categories": list(article.categories),
        "advertorial": article.advertorial,
    }
    return item


def _attachment(image: Image, v: EntryValues) -> dict[str, Any]:
    out: dict[str, Any] = {"url": image.url, "mime_type": v.image_type}
    if v.caption:
        out["title"] = v.caption
    if image.length:
        out["size_in_bytes"] = image.length
    return out


def json_item(site: FeedSite, article: Article, values: EntryValues | None = None) -> str:
    """One JSON Feed item, serialised (items are joined into documents as is)."""
    item = _json_item(site, article, values or entry_values(site, article))
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def json_document(site: FeedSite, selection: Selection, items: Sequence[str]) -> bytes:
    """A JSON Feed 1.1 document from serialised items (UTF-8, fixed key order)."""
    names = describe(site, selection)
    doc: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": names.title,
        "home_page_url": site.home,
        "feed_url": site.url(selection.path("json")),
        "description": names.subtitle,
        "authors": [{"name": site.title, "url": site.home}],
        "language": site.language,
    }
    if site.hub:
        doc["hubs"] = [{"type": "WebSub", "url": site.hub}]
    head = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return f'{head[:-1]},"items":[{",".join(items)}]}}\n'.encode()


_CLOSE = {"rss": b"  </channel>\n</rss>", "atom": b"</feed>"}
"""Where entries go in a pretty-printed feedgen document: before these bytes."""


def _xml(fg: Any, fmt: str) -> bytes:
    return bytes(fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True))


def splice(head: bytes, fmt: str, entries: Sequence[bytes]) -> bytes:
    """Insert serialised ``entries`` into ``head``, a document without entries
    (for JSON Feed, :func:`json_document` without items; its items are
    comma-separated).

    lxml's pretty printer indents an element by its depth alone, so an entry
    serialised once at its depth (see :class:`_EntryWriter`) has the very bytes
    it would have inside any document of the same site. A run of consecutive
    entries (see :func:`kept_entries`) splices like one entry.
    """
    if fmt == "json":
        cut = len(head) - len(_JSON_END)
        return b"".join((head[:cut], b",".join(entries), head[cut:]))
    cut = head.rindex(_CLOSE[fmt])
    return b"".join((head[:cut], *entries, head[cut:]))


def kept_entries(data: bytes, fmt: str, count: int, total: int | None = None) -> bytes | None:
    """The first ``count`` (> 0) entries of a document :func:`splice` made, as
    one run of bytes to splice into another document of the same site;
    ``None`` when ``data`` holds fewer or is not such a document. ``total``:
    how many entries it holds, when known for certain (the build state
    records it with the document's check value); the end of the run is then
    looked for from whichever end of the document is nearer.

    A feed that only gains new articles keeps a run of its previous items:
    cutting that run out of the previous file costs a few searches, where
    splitting it into entries and joining them again costs a slice each.
    """
    if fmt == "json":
        begin = data.find(_JSON_ITEMS) + len(_JSON_ITEMS)
        end = len(data) - len(_JSON_END)
        if begin < len(_JSON_ITEMS) or not data.endswith(_JSON_END) or begin >= end:
            return None
        # items are separated by _JSON_NEXT, whose first byte closes an item
        gaps = None if total is None else total - 1
        cut = _boundary(data, _JSON_NEXT, begin, end, count - 1, gaps)
        return None if cut < 0 else data[begin : cut + 1 if cut < end else end]
    end = data.rfind(_CLOSE[fmt])
    begin = data.find(_ENTRY_START[fmt], 0, end) if end >= 0 else -1
    if begin < 0:
        return None
    # each entry begins after its marker's newline and ends with a newline
    cut = _boundary(data, _ENTRY_START[fmt], begin, end, count, total)
    return None if cut < 0 else data[begin + 1 : cut + 1 if cut < end else end]


def _boundary(data: bytes, marker: bytes, begin: int, end: int, n: int, total: int | None) -> int:
    """Where the ``n``-th occurrence (from 0) of ``marker`` in ``data[begin:end]``
    begins, ``end`` when there are exactly ``n``, -1 when fewer; ``total``:
    how many there are, when known."""
    if total is not None and n >= total:
        return end if n == total else -1
    if total is not None and total - n < n:  # nearer the end: count back from it
        at = end
        for _ in range(total - n):
            at = data.rfind(marker, begin, at)
            if at < 0:
                return -1
        return at
    at = begin - 1
    for _ in range(n + 1):
        at = data.find(marker, at + 1, end)
        if at < 0:
            return end if _ == n else -1
    return at


_ENTRY_START = {"rss": b"\n    <item>\n", "atom": b"\n  <entry>\n"}
_JSON_ITEMS = b',"items":['
_JSON_NEXT = b'},{"id":'
_JSON_END = b"]}\n"


def split_entries(data: bytes, fmt: str) -> list[bytes] | None:
    """The serialised entries of a document :func:`splice` (or
    :func:`json_document`) made, in order; ``None`` if ``data`` is not one.

    The markers cannot occur inside an entry: markup in text and attribute
    values is escaped, and so are quotes in JSON strings.
    """
    if fmt == "json":
        return _split_json(data)
    try:
        end = data.rindex(_CLOSE[fmt])
    except ValueError:
        return None
    marker = _ENTRY_START[fmt]
    starts = []
    at = data.find(marker)
    while 0 <= at < end:
        starts.append(at + 1)
        at = data.find(marker, at + 1)
    bounds = [*starts, end]
    return [data[a:b] for a, b in pairwise(bounds)]


def _split_json(data: bytes) -> list[bytes] | None:
    start = data.find(_JSON_ITEMS)
    if start < 0 or not data.endswith(_JSON_END):
        return None
    body = data[start + len(_JSON_ITEMS) : -3]
    if not body:
        return []
    parts = body.split(_JSON_NEXT)
    last = len(parts) - 1
    return [
        (b"" if i == 0 else b'{"id":') + part + (b"" if i == last else b"}")
        for i, part in enumerate(parts)
    ]


class _EntryWriter:
    """Serialises feedgen entries exactly as they appear inside a document.

    A probe document with the site's namespaces (from feedgen itself) holds
    one entry at a time at its real depth; the entry's lines are cut out of
    the probe's pretty-printed bytes.
    """

    def __init__(self, site: FeedSite) -> None:
        fg = _feed_generator(site, ALL, ())
        self._probes: dict[str, tuple[Any, Any]] = {}
        for fmt in ("rss", "atom"):
            _links(site, fg, ALL, fmt)
            root = fg._create_rss()[0] if fmt == "rss" else fg._create_atom()[0]
            container = root[0] if fmt == "rss" else root
            for child in list(container):
                container.remove(child)
            self._probes[fmt] = root, container

    def write(self, entry: Any, fmt: str) -> bytes:
        """One entry's lines (indented, newline-terminated) in format ``fmt``."""
        root, container = self._probes[fmt]
        element = entry.rss_entry() if fmt == "rss" else entry.atom_entry()
        container.append(element)
        try:
            data = bytes(etree.tostring(root, pretty_print=True, encoding="UTF-8"))
        finally:
            container.remove(element)
        start = data.index(b">\n", data.index(b"<channel>" if fmt == "rss" else b"<feed")) + 2
        return data[start : data.rindex(_CLOSE[fmt])]


@dataclass(frozen=True, slots=True)
class _Parts:
    """One article rendered for every feed it appears in."""

    updated: datetime
    entries: Mapping[str, bytes]
    """Serialised entries by format (the JSON item as UTF-8)."""


class Renderer:
    """Renders feeds of one site, rendering each article's entry once per build.

    An article appears in several feeds (all, its city, its province, its
    categories, the pairs): its RSS item, Atom entry and JSON item are
    serialised once and spliced into every document that carries it, so a
    document costs its head plus a join. Create one per build; not
    thread-safe (feedgen switches the process locale while formatting RSS
    dates).
    """

    def __init__(self, site: FeedSite, *, max_cached: int = 50_000) -> None:
        self.site = site
        self.max_cached = max_cached
        self._parts: dict[str, _Parts] = {}
        self._writer = _EntryWriter(site)

    def has(self, article_id: str) -> bool:
        """Whether ``article_id`` is rendered already (its row need not be loaded)."""
        return article_id in self._parts

    def trim(self, keep: Collection[str]) -> None:
        """Forget rendered entries but those of ``keep`` once over ``max_cached``."""
        if len(self._parts) > self.max_cached:
            self._parts = {k: v for k, v in self._parts.items() if k in keep}

    def seed(self, article_id: str, updated: datetime, entries: Mapping[str, bytes]) -> None:
        """Take an article's entries as an earlier build serialised them (``entries``
        by format, from :func:`split_entries`) instead of rendering them again."""
        self._parts[article_id] = _Parts(updated, entries)

    def add(self, articles: Iterable[Article], formats: Sequence[str]) -> None:
        """Render the entries of ``articles`` not rendered yet."""
        for article in articles:
            if article.id not in self._parts:
                parts = self.entries(article, formats)
                self.seed(article.id, article.updated, parts)

    def entries(self, article: Article, formats: Sequence[str]) -> dict[str, bytes]:
        """``article``'s serialised entries by format (the JSON item as UTF-8),
        as :meth:`seed` takes them; not kept."""
        out: dict[str, bytes] = {}
        values = entry_values(self.site, article)
        xml_formats = [f for f in formats if f in ("rss", "atom")]
        if xml_formats:
            entry = feed_entry(self.site, article, values)
            for fmt in xml_formats:
                out[fmt] = self._writer.write(entry, fmt)
        if "json" in formats:
            out["json"] = json_item(self.site, article, values).encode()
        return out

    def updated(self, article_id: str) -> datetime:
        """A rendered article's ``updated`` time."""
        return self._parts[article_id].updated

    def entry(self, article_id: str, fmt: str) -> bytes:
        """A rendered article's entry in format ``fmt``."""
        return self._parts[article_id].entries[fmt]

    def render_ids(
        self, selection: Selection, ids: Sequence[str], formats: Sequence[str]
    ) -> dict[str, bytes]:
        """Every requested format of one feed from already rendered articles
        (see :meth:`add`); ``ids`` newest first."""
        parts = [self._parts[i] for i in ids]
        updated = max((p.updated for p in parts), default=EMPTY_FEED_UPDATED)
        heads = self.heads(selection, updated, formats)
        return {f: splice(head, f, [p.entries[f] for p in parts]) for f, head in heads.items()}

    def heads(
        self, selection: Selection, updated: datetime, formats: Sequence[str]
    ) -> dict[str, bytes]:
        """Every requested format of one feed without entries (to :func:`splice`
        them in), dated ``updated``: the newest ``updated`` of its entries."""
        out: dict[str, bytes] = {}
        xml_formats = [f for f in formats if f in ("rss", "atom")]
        if xml_formats:
            fg = _feed_generator(self.site, selection, (), updated=updated)
            for fmt in xml_formats:
                _links(self.site, fg, selection, fmt)
                out[fmt] = _xml(fg, fmt)
        if "json" in formats:
            out["json"] = json_document(self.site, selection, [])
        return out

    def render(
        self, selection: Selection, articles: Sequence[Article], formats: Sequence[str]
    ) -> dict[str, bytes]:
        """Every requested format of one feed; ``articles`` newest first."""
        self.add(articles, formats)
        return self.render_ids(selection, [a.id for a in articles], formats)


def render_whole(
    site: FeedSite, selection: Selection, articles: Sequence[Article], formats: Sequence[str]
) -> dict[str, bytes]:
    """The same documents as :class:`Renderer`, the plain feedgen way: every
    entry added to the generator and the whole document serialised. Slower;
    the reference the spliced documents are checked against."""
    out: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "json":
            items = [json_item(site, a) for a in articles]
            out[fmt] = json_document(site, selection, items)
            continue
        fg = _feed_generator(site, selection, articles)
        for article in articles:
            fg.add_entry(feed_entry(site, article), order="append")
        _links(site, fg, selection, fmt)
        out[fmt] = _xml(fg, fmt)
    return out


def render(
    site: FeedSite, selection: Selection, articles: Sequence[Article], formats: Sequence[str]
) -> dict[str, bytes]:
    """Every requested format of one feed: ``{"rss": b"...", "atom": ..., "json": ...}``."""
    return Renderer(site).render(selection, articles, formats)
