"""Feeds and emails never carry live markup (issue 22 §2).

Whatever an article's body holds (Markdown, HTML, a CMS ``.txt`` file, an
upstream feed's description, escaped once or twice), every field a reader
renders as HTML holds nothing outside the sanitiser's allow-list: the RSS
``<description>`` and ``content:encoded``, Atom ``content``/``summary`` of
type html, JSON Feed ``content_html``, and the digest email's HTML part
(whose own markup is the template's: it must be the same markup as for a
harmless twin of the article). Articles go through the real readers and
:func:`ingest.prepare`, then the real renderers.
"""

from __future__ import annotations

import email
import json
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from digest_support import subscriber
from kabarfeed.config import Config, SourceConfig
from kabarfeed.digest.render import DigestRenderer, EditionInput
from kabarfeed.feeds.documents import render
from kabarfeed.feeds.render import FeedSite
from kabarfeed.feeds.selection import ALL
from kabarfeed.ingest import prepare
from kabarfeed.models import Article, RawArticle
from kabarfeed.normalize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES
from kabarfeed.sources.directory import read_directory
from kabarfeed.sources.feed import parse_feed

NOW = datetime(2025, 11, 17, 0, 30, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
HOSTILE = [
    "Halo <img src=x onerror=alert(document.domain)>",
    "<script>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&amp;lt;script&amp;gt;alert(2)&amp;lt;/script&amp;gt;",
    "&#60;svg onload=alert(3)&#62;",
    '<a href="javascript:alert(4)">klik</a>',
    '<a href="  JaVaScRiPt:alert(5)">klik</a>',
    "<iframe src=//evil.example></iframe>",
    '<p onclick="x()" style="color:red">paragraf</p>',
    "<style>body{display:none}</style>",
    "<!-- komentar --><![CDATA[ x ]]>",
    "\"kutip\" & 'tunggal' <b>tebal</b> <em>miring</em>",
    "[tautan](javascript:alert(6)) ![gambar](x onerror=alert(7))",
    "<object data=x></object><embed src=x><form action=x><input name=y>",
]
WORDS = st.sampled_from(["Warga", "Balikpapan", "berita", "&", "<", ">", '"', "'", "*", "#"])
PIECES = st.one_of(st.sampled_from(HOSTILE), WORDS, st.text(max_size=12))
BODY = st.lists(PIECES, min_size=1, max_size=6).map(" ".join)
KINDS = ("markdown", "cms_text", "html", "description", "description_escaped")


class _Markup(HTMLParser):
    """Every start tag with its attributes, and anything that is not an element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.other.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.other.append(f"<![{data}]>")


def markup(fragment: str, *, document: bool = False) -> _Markup:
    parser = _Markup()
    parser.feed(fragment)
    parser.close()
    if document:  # the email's <!DOCTYPE html>
        parser.other = [o for o in parser.other if o.lower() != "<!doctype html>"]
    return parser


def violations(fragment: str) -> list[str]:
    """What in ``fragment`` (HTML) the sanitiser's allow-list does not allow."""
    found = markup(fragment)
    out = list(found.other)
    for tag, attrs in found.tags:
        if tag not in ALLOWED_TAGS:
            out.append(f"<{tag}>")
            continue
        allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ({"rel"} if tag == "a" else set())
        for name, value in attrs:
            if name not in allowed:
                out.append(f"<{tag} {name}>")
            elif name in ("href", "src", "cite") and not _safe_url(value or ""):
                out.append(f"<{tag} {name}={value!r}>")
    return out


def _safe_url(url: str) -> bool:
    """Relative, or an allowed scheme as a browser reads it (it drops tabs,
    newlines and leading controls)."""
    squeezed = "".join(c for c in url if c > " " and c != "\x7f")
    scheme = urlsplit(squeezed).scheme.lower()
    return scheme == "" or scheme in URL_SCHEMES


# ---------------------------------------------------------------- articles


def _markdown(body: str, root: Path) -> RawArticle:
    text = f'+++\ntitle = "Judul"\ndate = 2025-11-16T08:00:00+08:00\n+++\n\n{body}\n'
    (root / "artikel.md").write_text(text, encoding="utf-8")
    return _read_one(root)


def _cms_text(body: str, root: Path) -> RawArticle:
    text = (
        "Judul Berita\n\nOleh Redaksi pada 14 Nov 2025, 06:30 WITA\n\n"
        f"NUSANTARAPLUS, BALIKPAPAN – {body}\n\nParagraf kedua: {body}\n"
    )
    (root / "artikel.txt").write_text(text, encoding="utf-8")
    return _read_one(root)


def _read_one(root: Path) -> RawArticle:
    result = read_directory("redaksi", root, default_tz="Asia/Makassar", base_url="https://x.id")
    assert not result.problems, result.problems
    (article,) = result.articles
    return article


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _rss(item: str) -> RawArticle:
    doc = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>Hulu</title><link>https://hulu.example.id/</link>"
        f"<item><title>Judul</title><link>https://hulu.example.id/1</link>{item}</item>"
        "</channel></rss>"
    )
    parsed = parse_feed(doc.encode(), source="hulu", url="https://hulu.example.id/feed")
    (article,) = parsed.articles
    return article


def raw_article(kind: str, body: str, root: Path) -> RawArticle:
    """An article whose body is ``body``, read the way its kind is read."""
    if kind == "markdown":
        return _markdown(body, root)
    if kind == "cms_text":
        return _cms_text(body, root)
    if kind == "html":  # an upstream body: HTML as the feed carries it
        return _rss(f"<content:encoded>{_xml_text(body)}</content:encoded>")
    if kind == "description":  # an upstream description (HTML), no body
        return _rss(f"<description>{_xml_text(body)}</description>")
    # the same, escaped once more (a description meant as text)
    return _rss(f"<description>{_xml_text(_xml_text(body))}</description>")


def article_of(raw: RawArticle, config: Config) -> Article:
    source = SourceConfig(name=raw.source, kind="feed", url="https://hulu.example.id/feed")
    result = prepare(
        raw,
        source=source,
        taxonomy=config.taxonomy,
        language="id",
        default_tz="Asia/Makassar",
        now=NOW,
    )
    # a PreparedItem (ingest with field limits), or a (Prepared, warnings) pair before
    prepared = getattr(result, "prepared", None) or result[0]  # type: ignore[index]
    return replace(prepared.article, regions=("balikpapan",), categories=("ekonomi",))


# ---------------------------------------------------------------- fields


def feed_html_fields(documents: dict[str, bytes]) -> list[tuple[str, str]]:
    """Every field of the three documents a reader renders as HTML."""
    out: list[tuple[str, str]] = []
    for item in ET.fromstring(documents["rss"]).iter("item"):
        for name in ("description", CONTENT):
            out += [(f"rss {name}", e.text or "") for e in item.iter(name)]
    for entry in ET.fromstring(documents["atom"]).iter(f"{ATOM}entry"):
        for name in ("content", "summary"):
            for e in entry.iter(f"{ATOM}{name}"):
                assert e.get("type") in (None, "text", "html"), e.get("type")
                if e.get("type") == "html":
                    out.append((f"atom {name}", e.text or ""))
    for item in json.loads(documents["json"])["items"]:
        if "content_html" in item:
            out.append(("json content_html", item["content_html"]))
    return out


def email_html(renderer: DigestRenderer, article: Article) -> str:
    edition = EditionInput(subscriber(1), date(2025, 11, 17), (article,), 1)
    msg = email.message_from_bytes(renderer.render_one(edition).data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def structure(document: str) -> list[tuple[str, tuple[str, ...]]]:
    parsed = markup(document, document=True)
    assert not parsed.other, parsed.other
    return [(tag, tuple(sorted(name for name, _ in attrs))) for tag, attrs in parsed.tags]


def harmless(article: Article) -> Article:
    """``article`` with every text a reader sees replaced by a plain word."""
    return replace(
        article,
        title="x",
        summary="x" if article.summary else "",
        author="x" if article.author else None,
    )


# ---------------------------------------------------------------- tests


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(
        '[digest]\nfrom_address = "redaksi@news.example.id"\n', site='secret = "test-secret"'
    )


def test_the_checker_sees_live_markup() -> None:
    assert violations('<p>a <b>b</b> <a href="https://x.id/" rel="noopener">c</a></p>') == []
    assert violations("<img src=x onerror=alert(1)>") == ["<img onerror>"]
    assert violations('<a href="javascript:alert(1)">x</a>') != []
    assert violations("&lt;script&gt;") == []
    assert violations("<script>x</script>") == ["<script>"]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("markdown", "Halo <img src=x onerror=alert(document.domain)>"),
        ("description_escaped", "<script>alert(1)</script>"),
        ("cms_text", "Halo <img src=x onerror=alert(document.domain)>"),
        ("description", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ],
)
def test_escaped_text_reaches_the_rss_description_as_text(
    config: Config, kind: str, body: str
) -> None:
    """The reported cases: text that reads like markup stays text."""
    with tempfile.TemporaryDirectory() as folder:
        article = article_of(raw_article(kind, body, Path(folder)), config)
    assert "<" in article.summary  # the summary is plain text that reads like markup
    documents = render(FeedSite.from_config(config), ALL, [article], ("rss", "atom", "json"))
    fields = dict(feed_html_fields(documents))
    assert violations(fields["rss description"]) == []
    assert "&lt;" in fields["rss description"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(KINDS), body=BODY, advertorial=st.booleans(), full=st.booleans())
def test_no_field_rendered_as_html_holds_live_markup(
    config: Config, kind: str, body: str, advertorial: bool, full: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        try:
            raw = raw_article(kind, body, Path(folder))
        except AssertionError:  # no article came out of it (e.g. nothing but blanks)
            reject()
    article = replace(article_of(raw, config), advertorial=advertorial)
    site = replace(FeedSite.from_config(config), full_content=full)
    documents = render(site, ALL, [article], ("rss", "atom", "json"))
    for name, value in feed_html_fields(documents):
        assert violations(value) == [], (name, value)
    renderer = DigestRenderer(config, clock=lambda: NOW)
    assert structure(email_html(renderer, article)) == structure(
        email_html(renderer, harmless(article))
    )
