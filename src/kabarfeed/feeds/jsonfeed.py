"""JSON Feed 1.1 items and documents (UTF-8, fixed key order)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kabarfeed.feeds.render import EntryValues, FeedSite, describe, entry_values
from kabarfeed.feeds.selection import Selection
from kabarfeed.models import Article, Image

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


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


def json_item(site: FeedSite, article: Article, values: EntryValues | None = None) -> bytes:
    """One JSON Feed item, serialised as UTF-8 (joined into documents as is)."""
    item = _json_item(site, article, values or entry_values(site, article))
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()


def json_document(site: FeedSite, selection: Selection, items: Sequence[bytes]) -> bytes:
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
    return b"".join((head[:-1].encode(), b',"items":[', b",".join(items), b"]}\n"))
