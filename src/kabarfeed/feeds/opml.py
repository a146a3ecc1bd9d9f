"""``feeds/index.opml``: every feed, grouped by region and category (OPML 2.0)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kabarfeed.feeds.catalog import Catalog, FeedInfo
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.strings import strings

OPML_PATH = "feeds/index.opml"
OPML_DOCS = "http://opml.org/spec2.opml"


def _feed(parent: ET.Element, site: FeedSite, feed: FeedInfo, text: str) -> None:
    ET.SubElement(
        parent,
        "outline",
        {
            "type": "rss",
            "text": text,
            "title": feed.title,
            "xmlUrl": feed.preferred.url,
            "htmlUrl": site.home,
        },
    )


def render_opml(site: FeedSite, catalog: Catalog) -> bytes:
    """The OPML document: the all feed, a folder per region, a folder of categories.

    Each region folder holds the region's own feed followed by its region x
    category feeds, so a reader import yields one folder per region.
    """
    text = strings(site.language)
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = text["page_title"].format(site=site.title)
    ET.SubElement(head, "ownerName").text = site.title
    ET.SubElement(head, "ownerId").text = site.home
    ET.SubElement(head, "docs").text = OPML_DOCS
    body = ET.SubElement(root, "body")
    _feed(body, site, catalog.all, text["all_feeds"])
    regions = ET.SubElement(body, "outline", text=text["regions"], title=text["regions"])
    for group in catalog.regions:
        folder = ET.SubElement(regions, "outline", text=group.feed.name, title=group.feed.name)
        _feed(folder, site, group.feed, group.feed.name)
        for pair in group.pairs:
            _feed(folder, site, pair, f"{group.feed.name} · {pair.name}")
    categories = ET.SubElement(body, "outline", text=text["categories"], title=text["categories"])
    for feed in catalog.categories:
        _feed(categories, site, feed, feed.name)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
