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

import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from kabarfeed import __version__
from kabarfeed.config import Config
from kabarfeed.feeds.selection import Selection
from kabarfeed.feeds.strings import list_join, strings
from kabarfeed.models import Article, Image, Taxonomy

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
    region = site.taxonomy.region(selection.region) if selection.region else None
    category = site.taxonomy.category(selection.category) if selection.category else None
    names = {
        "site": site.title,
        "region": xml_safe(region.name) if region else (selection.region or ""),
        "category": xml_safe(category.name) if category else (selection.category or ""),
    }
    kind = selection.kind
    title = text[f"{kind}_title"].format(**names)
    subtitle = text[f"{kind}_subtitle"].format(**names)
    if kind == "region" and region is not None:
        children = [
            xml_safe(r.name)
            for r in site.taxonomy.regions
            if r.slug in site.taxonomy.descendants(region.slug)
        ]
        if children:
            includes = text["region_includes"].format(children=list_join(children, site.language))
            subtitle = f"{subtitle} ({includes})"
    return Describe(title, subtitle)


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


@dataclass(frozen=True, slots=True)
class Term:
    """One category of an entry: ``term`` (slug), ``label`` (name), ``scheme`` URL."""

    term: str
    label: str
    scheme: str


def terms(site: FeedSite, article: Article) -> tuple[Term, ...]:
    """Region and category terms (known to the taxonomy) plus the advertorial label."""
    out: list[Term] = []
    for slug in article.regions:
        region = site.taxonomy.region(slug)
        if region:
            out.append(Term(slug, xml_safe(region.name), site.scheme("region")))
    for slug in article.categories:
        category = site.taxonomy.category(slug)
        if category:
            out.append(Term(slug, xml_safe(category.name), site.scheme("category")))
    if article.advertorial:
        out.append(Term("advertorial", site.advertorial_label, site.scheme("label")))
    return tuple(out)


def feed_updated(articles: Sequence[Article]) -> datetime:
    """The newest entry's ``updated`` (not the build time)."""
    return max((a.updated for a in articles), default=EMPTY_FEED_UPDATED)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
    """``dc:creator``, image enclosure and ``media:content`` with its caption."""

    creator: str = ""
    image: Image | None = None

    def extend_rss(self, item: Any) -> Any:
        if self.creator:
            xml_elem(f"{{{DC_NS}}}creator", item).text = self.creator
        if self.image:
            attrs = {
                "url": self.image.url,
                "length": str(self.image.length or 0),
                "type": image_type(self.image),
            }
            xml_elem("enclosure", item, **attrs)
            self._media(item)
        return item

    def extend_atom(self, entry: Any) -> Any:
        if self.image:
            attrs = {"rel": "enclosure", "href": self.image.url, "type": image_type(self.image)}
            if self.image.length:
                attrs["length"] = str(self.image.length)
            xml_elem("link", entry, **attrs)  # feedgen's Atom uses a default xmlns
            self._media(entry)
        return entry

    def _media(self, parent: Any) -> None:
        assert self.image is not None
        attrs = {"url": self.image.url, "type": image_type(self.image), "medium": "image"}
        if self.image.length:
            attrs["fileSize"] = str(self.image.length)
        media = xml_elem(f"{{{MEDIA_NS}}}content", parent, **attrs)
        caption = xml_safe(self.image.caption)
        if caption:
            desc = xml_elem(f"{{{MEDIA_NS}}}description", media, type="plain")
            desc.text = caption


def _feed_generator(site: FeedSite, selection: Selection, articles: Sequence[Article]) -> Any:
    names = describe(site, selection)
    fg = FeedGenerator()
    fg.register_extension("kabarfeed", _FeedExtension, _EntryExtension)
    fg.kabarfeed.hub = site.hub
    fg.title(names.title)
    fg.subtitle(names.subtitle)
    fg.language(site.language)
    fg.author(name=site.title, uri=site.home)
    fg.generator("kabarfeed", version=__version__)
    updated = feed_updated(articles).astimezone(ZoneInfo(site.timezone))
    fg.updated(updated)
    fg.pubDate(updated)
    return fg


def _links(site: FeedSite, fg: Any, selection: Selection, fmt: str) -> None:
    """Self first, hub, alternate last: RSS's channel link is the last one added."""
    fg.id(site.url(selection.path(fmt)))
    fg.link(href=site.url(selection.path(fmt)), rel="self", type=MEDIA_TYPES[fmt], replace=True)
    if site.hub:
        fg.link(href=site.hub, rel="hub")
    fg.link(href=site.home, rel="alternate", type="text/html")


class _ReusableEntry(FeedEntry):  # type: ignore[misc]
    """A feedgen entry that builds its RSS item and Atom entry elements once.

    Documents are serialised one after the other, so the same element can be
    moved from the last document's tree into the next one (lxml reconciles
    namespaces on the move) instead of being rebuilt for every feed.
    """

    def __init__(self) -> None:
        super().__init__()
        self._kf_elements: dict[str, Any] = {}

    def rss_entry(self, extensions: bool = True) -> Any:
        found = self._kf_elements.get("rss")
        if found is None:
            found = self._kf_elements["rss"] = super().rss_entry(extensions)
        return found

    def atom_entry(self, extensions: bool = True) -> Any:
        found = self._kf_elements.get("atom")
        if found is None:
            found = self._kf_elements["atom"] = super().atom_entry(extensions)
        return found


def feed_entry(site: FeedSite, article: Article) -> Any:
    """A feedgen entry for ``article``, reusable in any number of feeds."""
    fe = _ReusableEntry()
    fe.register_extension("kabarfeed", _EntryExtension)
    ident = entry_id(site, article)
    fe.guid(ident, permalink=ident == article.url)
    fe.title(xml_safe(article.title))
    fe.link(href=article.url)
    fe.published(local(site, article, article.published))
    fe.updated(local(site, article, article.updated))
    author = xml_safe(article.author)
    if author:
        fe.author(name=author)
    summary = summary_text(site, article)
    if summary:
        fe.summary(summary)
    if site.full_content and article.content_html:
        fe.content(content_html(site, article), type="html")
    for t in terms(site, article):
        fe.category(term=t.term, label=t.label, scheme=t.scheme)
    fe.kabarfeed.creator = author
    fe.kabarfeed.image = article.image
    return fe


# ---------------------------------------------------------------- JSON Feed


def _json_item(site: FeedSite, article: Article) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry_id(site, article),
        "url": article.url,
        "title": xml_safe(article.title),
    }
    if site.full_content and article.content_html:
        item["content_html"] = content_html(site, article)
    else:
        item["content_text"] = summary_text(site, article)
    summary = summary_text(site, article)
    if summary:
        item["summary"] = summary
    if article.image:
        item["image"] = article.image.url
    item["date_published"] = local(site, article, article.published).isoformat()
    item["date_modified"] = local(site, article, article.updated).isoformat()
    if article.author:
        item["authors"] = [{"name": xml_safe(article.author)}]
    found = terms(site, article)
    if found:
        item["tags"] = [t.label for t in found]
    item["language"] = article.language
    if article.image:
        item["attachments"] = [_attachment(article.image)]
    item["_kabarfeed"] = {
        "regions": list(article.regions),
        "categories": list(article.categories),
        "advertorial": article.advertorial,
    }
    return item


def _attachment(image: Image) -> dict[str, Any]:
    out: dict[str, Any] = {"url": image.url, "mime_type": image_type(image)}
    caption = xml_safe(image.caption)
    if caption:
        out["title"] = caption
    if image.length:
        out["size_in_bytes"] = image.length
    return out


def json_item(site: FeedSite, article: Article) -> str:
    """One JSON Feed item, serialised (items are joined into documents as is)."""
    return json.dumps(_json_item(site, article), ensure_ascii=False, separators=(",", ":"))


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


class Renderer:
    """Renders feeds of one site, building each article's entry once per build.

    An article appears in several feeds (all, its city, its province, its
    categories, the pairs): its feedgen entry and JSON item are made once and
    reused. Create one per build; not thread-safe (feedgen switches the process
    locale while formatting RSS dates).
    """

    def __init__(self, site: FeedSite, *, max_cached: int = 50_000) -> None:
        self.site = site
        self.max_cached = max_cached
        self._entries: dict[str, Any] = {}
        self._items: dict[str, str] = {}

    def render(
        self, selection: Selection, articles: Sequence[Article], formats: Sequence[str]
    ) -> dict[str, bytes]:
        """Every requested format of one feed; ``articles`` newest first."""
        if len(self._entries) > self.max_cached:
            self._entries.clear()
            self._items.clear()
        out: dict[str, bytes] = {}
        xml_formats = [f for f in formats if f in ("rss", "atom")]
        if xml_formats:
            fg = _feed_generator(self.site, selection, articles)
            for article in articles:
                fg.add_entry(self._entry(article), order="append")
            for fmt in xml_formats:
                _links(self.site, fg, selection, fmt)
                raw = fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True)
                out[fmt] = bytes(raw)
        if "json" in formats:
            out["json"] = json_document(self.site, selection, [self._item(a) for a in articles])
        return out

    def _entry(self, article: Article) -> Any:
        found = self._entries.get(article.id)
        if found is None:
            found = self._entries[article.id] = feed_entry(self.site, article)
        return found

    def _item(self, article: Article) -> str:
        found = self._items.get(article.id)
        if found is None:
            found = self._items[article.id] = json_item(self.site, article)
        return found


def render(
    site: FeedSite, selection: Selection, articles: Sequence[Article], formats: Sequence[str]
) -> dict[str, bytes]:
    """Every requested format of one feed: ``{"rss": b"...", "atom": ..., "json": ...}``."""
    return Renderer(site).render(selection, articles, formats)
