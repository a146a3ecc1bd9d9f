"""RSS 2.0 and Atom 1.0 documents through feedgen, with these workarounds
for feedgen 1.0.0:

- every date is set explicitly (unset dates default to "now");
- entries are appended in order (``add_entry`` prepends by default);
- feed links are added self first, alternate last (RSS uses the last link);
- Atom entry links lose every attribute but ``href`` (feedgen #135), so image
  enclosures, ``media:content``, ``dc:creator`` and the RSS ``rel="hub"`` link
  come from a small feedgen extension of our own instead.

An entry can also be serialised on its own (:class:`EntryWriter`) and joined
into a document head (:func:`splice`): lxml's pretty printer indents an
element by its depth alone, so the bytes are those of the whole document.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from lxml import etree  # type: ignore[import-untyped]

from kabarfeed import __version__
from kabarfeed.feeds.render import (
    MEDIA_TYPES,
    EntryValues,
    FeedSite,
    describe,
    entry_values,
    feed_updated,
    summary_html,
)
from kabarfeed.feeds.selection import ALL, Selection
from kabarfeed.models import Article, Image

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
MEDIA_NS = "http://search.yahoo.com/mrss/"


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


_CLOSE = {"rss": b"  </channel>\n</rss>", "atom": b"</feed>"}
"""Where entries go in a pretty-printed feedgen document: before these bytes."""


def _xml(fg: Any, fmt: str) -> bytes:
    return bytes(fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True))


def head(site: FeedSite, selection: Selection, updated: datetime, fmt: str) -> bytes:
    """One feed's document in ``fmt`` without entries, dated ``updated``."""
    fg = _feed_generator(site, selection, (), updated=updated)
    _links(site, fg, selection, fmt)
    return _xml(fg, fmt)


def splice(head: bytes, fmt: str, entries: Sequence[bytes]) -> bytes:
    """``head`` (see :func:`head`) with serialised ``entries`` (see
    :class:`EntryWriter`) inserted where feedgen puts entries."""
    cut = head.rindex(_CLOSE[fmt])
    return b"".join((head[:cut], *entries, head[cut:]))


class EntryWriter:
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
