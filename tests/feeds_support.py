"""Helpers for the feed tests: synthetic articles straight into the store, and
structural validators for RSS 2.0 (Best Practices Profile), Atom 1.0
(RFC 4287 MUSTs) and JSON Feed 1.1 (a JSON Schema of its required fields)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import atoma
import fastfeedparser
import feedparser
import jsonschema  # type: ignore[import-untyped]

from kabarfeed.feeds import jsonfeed
from kabarfeed.feeds import xml as feed_xml
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.selection import Selection
from kabarfeed.models import Article, Image
from kabarfeed.normalize import stable_key
from kabarfeed.store import Database
from kabarfeed.store.articles import Prepared, save_articles

ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} [+-]\d{4}$"
)
BASE = datetime(2025, 11, 16, 0, 0, tzinfo=UTC)

JSON_FEED_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string"},
        "home_page_url": {"type": "string", "pattern": "^https?://"},
        "feed_url": {"type": "string", "pattern": "^https?://"},
        "description": {"type": "string"},
        "language": {"type": "string"},
        "authors": {"type": "array", "items": {"$ref": "#/$defs/author"}},
        "hubs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "url"],
                "properties": {"type": {"type": "string"}, "url": {"type": "string"}},
            },
        },
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    },
    "$defs": {
        "author": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "name": {"type": "string"},
                "url": {"type": "string"},
                "avatar": {"type": "string"},
            },
        },
        "item": {
            "type": "object",
            "required": ["id"],
            "anyOf": [{"required": ["content_html"]}, {"required": ["content_text"]}],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "url": {"type": "string"},
                "title": {"type": "string"},
                "content_html": {"type": "string"},
                "content_text": {"type": "string"},
                "summary": {"type": "string"},
                "image": {"type": "string"},
                "date_published": {"type": "string", "pattern": RFC3339.pattern},
                "date_modified": {"type": "string", "pattern": RFC3339.pattern},
                "authors": {"type": "array", "items": {"$ref": "#/$defs/author"}},
                "tags": {"type": "array", "items": {"type": "string"}},
                "language": {"type": "string"},
                "attachments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["url", "mime_type"],
                        "properties": {
                            "url": {"type": "string"},
                            "mime_type": {"type": "string"},
                            "title": {"type": "string"},
                            "size_in_bytes": {"type": "integer"},
                        },
                    },
                },
            },
        },
    },
}


def make_article(n: int, **changes: Any) -> Article:
    """A plausible article number ``n`` (newer for higher ``n``)."""
    when = BASE + timedelta(minutes=n)
    article = Article(
        id=f"a{n:06d}",
        source="test",
        url=f"https://news.example.id/artikel/{n}",
        title=f"Berita nomor {n}",
        published=when,
        updated=when,
        first_seen=when,
        content_hash=stable_key("hash", str(n)),
        guid=None,
        author="Redaksi",
        summary=f"Ringkasan berita {n}.",
        content_html=f"<p>Isi berita {n}.</p>",
        image=Image(f"https://news.example.id/img/{n}.jpg", f"Foto {n} (Nusplus)"),
        regions=("balikpapan",),
        categories=("pemerintahan",),
        advertorial=False,
        language="id",
        local_tz="Asia/Makassar",
    )
    return replace(article, **changes)


def prepared(article: Article) -> Prepared:
    """A :class:`Prepared` for ``article`` (keys and revision from its fields)."""
    revision = stable_key(
        article.title,
        article.summary,
        article.content_html,
        ",".join(article.regions),
        ",".join(article.categories),
        str(article.advertorial),
        article.url,
        article.author,
    )
    guid_key = stable_key("guid", article.guid) if article.guid else None
    return Prepared(article, guid_key, stable_key(article.url), revision)


def store(db: Database, articles: list[Article], *, now: datetime | None = None) -> None:
    """Save ``articles`` through the store's bulk path."""
    with db.begin() as conn:
        save_articles(
            conn, [prepared(a) for a in articles], now=now or max(a.first_seen for a in articles)
        )


# ---------------------------------------------------------------- validators


def check_rss(data: bytes, self_url: str) -> ET.Element:
    """RSS 2.0 + Best Practices Profile points; returns the channel."""
    root = ET.fromstring(data)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    for name in ("title", "link", "description", "language", "lastBuildDate", "generator"):
        assert len(channel.findall(name)) == 1, name
    assert RFC822.match(channel.findtext("lastBuildDate", "")), channel.findtext("lastBuildDate")
    selfs = [e for e in channel.findall(f"{ATOM}link") if e.get("rel") == "self"]
    assert len(selfs) == 1 and selfs[0].get("href") == self_url
    assert selfs[0].get("type") == "application/rss+xml"
    for item in channel.findall("item"):
        assert len(item.findall("guid")) == 1
        guid = item.find("guid")
        assert guid is not None and guid.text
        if guid.get("isPermaLink") == "true":
            assert guid.text == item.findtext("link")
        assert item.findtext("title") and item.findtext("link")
        pub = item.findtext("pubDate", "")
        assert RFC822.match(pub), pub
        parsedate_to_datetime(pub)
        assert len(item.findall("enclosure")) <= 1
        for enc in item.findall("enclosure"):
            assert enc.get("url") and enc.get("type") and enc.get("length", "").isdigit()
        assert not item.findall("author"), "RSS author must be an email; use dc:creator"
    return channel


def _check_atom_node(node: ET.Element, *, entry: bool) -> None:
    for name in ("id", "title", "updated"):
        assert len(node.findall(f"{ATOM}{name}")) == 1, f"exactly one {name}"
    assert RFC3339.match(node.findtext(f"{ATOM}updated", ""))
    for published in node.findall(f"{ATOM}published"):
        assert RFC3339.match(published.text or "")
    alternates = Counter(
        (link.get("type"), link.get("hreflang"))
        for link in node.findall(f"{ATOM}link")
        if link.get("rel", "alternate") == "alternate"
    )
    assert all(n == 1 for n in alternates.values()), f"duplicate alternate links {alternates}"
    if entry and node.find(f"{ATOM}content") is None:
        assert alternates, "an entry without content needs an alternate link"
    for link in node.findall(f"{ATOM}link"):
        assert link.get("href")
    for author in node.findall(f"{ATOM}author"):
        assert author.findtext(f"{ATOM}name")
    for cat in node.findall(f"{ATOM}category"):
        assert cat.get("term")


def check_atom(data: bytes, self_url: str) -> ET.Element:
    """Every RFC 4287 MUST we can check structurally; returns the feed element."""
    feed = ET.fromstring(data)
    assert feed.tag == f"{ATOM}feed"
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang")
    _check_atom_node(feed, entry=False)
    selfs = [e for e in feed.findall(f"{ATOM}link") if e.get("rel") == "self"]
    assert len(selfs) == 1 and selfs[0].get("href") == self_url
    feed_author = feed.find(f"{ATOM}author") is not None
    for entry in feed.findall(f"{ATOM}entry"):
        _check_atom_node(entry, entry=True)
        assert feed_author or entry.find(f"{ATOM}author") is not None
    ids = [e.findtext(f"{ATOM}id") for e in feed.findall(f"{ATOM}entry")]
    assert len(ids) == len(set(ids))
    return feed


def check_json(data: bytes, feed_url: str) -> dict[str, Any]:
    """JSON Feed 1.1 schema plus the feed URL; returns the document."""
    doc: dict[str, Any] = json.loads(data)
    jsonschema.validate(doc, JSON_FEED_SCHEMA)
    assert doc["feed_url"] == feed_url
    ids = [i["id"] for i in doc["items"]]
    assert len(ids) == len(set(ids))
    return doc


def independent_ids(fmt: str, data: bytes) -> dict[str, list[tuple[str, str]]]:
    """(id, title) of every entry as feedparser (json for JSON Feed: feedparser 6
    has no JSON Feed support), atoma and fastfeedparser see it."""
    out: dict[str, list[tuple[str, str]]] = {}
    if fmt == "json":
        out["json"] = [(i["id"], i["title"]) for i in json.loads(data)["items"]]
    else:
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        out["feedparser"] = [(e.id, e.title) for e in parsed.entries]
    if fmt == "rss":
        rss = atoma.parse_rss_bytes(data)
        out["atoma"] = [(i.guid, i.title) for i in rss.items]
    elif fmt == "atom":
        atom = atoma.parse_atom_bytes(data)
        out["atoma"] = [(e.id_, e.title.value) for e in atom.entries]
    else:
        jf = atoma.parse_json_feed_bytes(data)
        out["atoma"] = [(i.id_, i.title) for i in jf.items]
    fast = fastfeedparser.parse(data)
    out["fastfeedparser"] = [(e["id"], e["title"]) for e in fast["entries"]]
    return out


# ---------------------------------------------------------------- reference


def render_whole(
    site: FeedSite, selection: Selection, articles: Sequence[Article], formats: Sequence[str]
) -> dict[str, bytes]:
    """The documents of one feed the plain feedgen way: every entry added to
    the generator and the whole document serialised (the reference the
    builder's joined entries are checked against)."""
    out: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "json":
            items = [jsonfeed.json_item(site, a) for a in articles]
            out[fmt] = jsonfeed.json_document(site, selection, items)
            continue
        fg = feed_xml._feed_generator(site, selection, articles)
        for article in articles:
            fg.add_entry(feed_xml.feed_entry(site, article), order="append")
        feed_xml._links(site, fg, selection, fmt)
        out[fmt] = feed_xml._xml(fg, fmt)
    return out
