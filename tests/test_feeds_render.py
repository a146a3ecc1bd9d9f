"""Rendering one feed: validity in three formats, hostile content, determinism,
feedgen pitfalls, and golden files (regenerate with KABARFEED_REGEN_GOLDEN=1)."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from kabarfeed.config import Config
from kabarfeed.feeds.documents import Renderer, render
from kabarfeed.feeds.render import FeedSite, entry_id, xml_safe
from kabarfeed.feeds.selection import ALL, Selection
from kabarfeed.models import Image
from tests.feeds_support import (
    ATOM,
    check_atom,
    check_json,
    check_rss,
    independent_ids,
    make_article,
    render_whole,
)

GOLDEN = Path(__file__).parent / "golden" / "feeds"
FORMATS = ("rss", "atom", "json")
HOSTILE_TITLES = [
    "Harga <b>cabai</b> & bawang naik ]]> lagi",
    "Kontrol\x00\x01\x08\x0b\x0c\x1f\x7f karakter\ufffe\uffff",
    "Emoji 🎉🇮🇩 dan teks kanan-ke-kiri: مرحبا بالعالم \u202eabc\u202c",
    "Panjang " + "sangat " * 284,  # about 2,000 characters
    "&amp; &lt;script&gt;alert(1)&lt;/script&gt; \"quoted\" 'single'",
]


@pytest.fixture
def site(make_config: object) -> FeedSite:
    config: Config = make_config('[feeds]\nwebsub_hub = "https://hub.example.id/"\n')  # type: ignore[operator]
    return FeedSite.from_config(config)


def _articles() -> list:
    items = [
        make_article(
            3,
            guid="https://news.example.id/artikel/3",
            advertorial=True,
            regions=("balikpapan", "samarinda"),
            categories=("ekonomi",),
        ),
        make_article(
            2, author=None, image=Image("https://news.example.id/i/2.png", None, None, 12345)
        ),
        make_article(1, image=None, guid="local-guid-1", categories=()),
    ]
    return items


def _urls(site: FeedSite, selection: Selection) -> dict[str, str]:
    return {f: site.url(selection.path(f)) for f in FORMATS}


def _check_all(site: FeedSite, selection: Selection, docs: dict[str, bytes]) -> None:
    urls = _urls(site, selection)
    check_rss(docs["rss"], urls["rss"])
    check_atom(docs["atom"], urls["atom"])
    check_json(docs["json"], urls["json"])


def test_feeds_are_valid_and_parsers_agree(site: FeedSite) -> None:
    articles = _articles()
    selection = Selection(region="kalimantan-timur")
    docs = render(site, selection, articles, FORMATS)
    _check_all(site, selection, docs)
    expected = [(entry_id(site, a), a.title) for a in articles]
    for fmt in FORMATS:
        seen = independent_ids(fmt, docs[fmt])
        for parser, entries in seen.items():
            assert entries == expected, (fmt, parser)


def test_entry_details_survive_a_round_trip(site: FeedSite) -> None:
    articles = _articles()
    docs = render(site, ALL, articles, FORMATS)
    rss = feedparser.parse(docs["rss"])
    atom = feedparser.parse(docs["atom"])
    assert rss.feed.language == "id" and atom.feed.language == "id"
    links = {link.rel: link.href for link in atom.feed.links}
    assert links == {
        "self": site.url("feeds/all.atom"),
        "hub": "https://hub.example.id/",
        "alternate": site.home,
    }
    for parsed in (rss, atom):
        adv = parsed.entries[0]
        assert adv.link == articles[0].url
        assert adv.published_parsed[:6] == articles[0].published.utctimetuple()[:6]
        terms = {(t.term if parsed is atom else t.label or t.term) for t in adv.tags}
        assert {"Advertorial"} <= {t.get("label") or t.term for t in adv.tags}
        assert terms
        assert "Advertorial" in adv.content[0].value.split("</p>")[0]
        assert adv.author == "Redaksi"
    # one enclosure per image; the Atom entry keeps exactly one alternate link
    atom_entries = ET.fromstring(docs["atom"]).findall(f"{ATOM}entry")
    rels = [link.get("rel", "alternate") for link in atom_entries[1].findall(f"{ATOM}link")]
    assert rels == ["alternate", "enclosure"]
    enclosure = atom_entries[1].findall(f"{ATOM}link")[1]
    assert enclosure.get("type") == "image/png" and enclosure.get("length") == "12345"
    assert [link.get("rel", "alternate") for link in atom_entries[2].findall(f"{ATOM}link")] == [
        "alternate"
    ]


def test_rss_guid_permalink_and_hub(site: FeedSite) -> None:
    docs = render(site, ALL, _articles(), ["rss"])
    channel = ET.fromstring(docs["rss"]).find("channel")
    assert channel is not None
    guids = [item.find("guid") for item in channel.findall("item")]
    assert [g.get("isPermaLink") for g in guids if g is not None] == ["true", "false", "false"]
    assert guids[2] is not None and re.match(
        r"^tag:news\.example\.id,2025-11-16:a000001$", guids[2].text or ""
    )
    hubs = [e for e in channel.findall(f"{ATOM}link") if e.get("rel") == "hub"]
    assert [h.get("href") for h in hubs] == ["https://hub.example.id/"]
    assert channel.findtext("link") == site.home  # alternate was added last
    item = channel.findall("item")[0]
    domains = {c.get("domain"): c.text for c in item.findall("category")}
    assert domains[site.scheme("region")] in ("Balikpapan", "Samarinda")
    assert domains[site.scheme("category")] == "Ekonomi"
    assert domains[site.scheme("label")] == "Advertorial"
    creator = item.find("{http://purl.org/dc/elements/1.1/}creator")
    assert creator is not None and creator.text == "Redaksi"


def test_dates_come_from_entries_not_the_clock(site: FeedSite) -> None:
    articles = _articles()
    first = render(site, ALL, articles, FORMATS)
    again = render(site, ALL, list(articles), FORMATS)
    assert first == again
    atom = ET.fromstring(first["atom"])
    assert atom.findtext(f"{ATOM}updated") == "2025-11-16T08:03:00+08:00"  # newest entry
    rss = ET.fromstring(first["rss"]).find("channel")
    assert rss is not None and rss.findtext("lastBuildDate") == "Sun, 16 Nov 2025 08:03:00 +0800"
    empty = render(site, Selection(category="budaya"), [], FORMATS)
    assert empty == render(site, Selection(category="budaya"), [], FORMATS)
    _check_all(site, Selection(category="budaya"), empty)


def test_feed_updated_is_the_newest_entry_time_as_shown(site: FeedSite) -> None:
    """An article dated at ingestion (no date upstream) has microseconds; the
    entries show times to the second, and the feed's ``updated`` is the
    newest entry's, as shown."""
    articles = _articles()
    precise = articles[0].updated.replace(microsecond=123456) + timedelta(hours=1)
    newest = replace(articles[0], updated=precise)
    atom = ET.fromstring(render(site, ALL, [newest, *articles[1:]], ["atom"])["atom"])
    entry_times = [e.findtext(f"{ATOM}updated") for e in atom.findall(f"{ATOM}entry")]
    assert atom.findtext(f"{ATOM}updated") == max(entry_times, key=_instant)
    assert "." not in (atom.findtext(f"{ATOM}updated") or "")


def _instant(text: str | None) -> datetime:
    return datetime.fromisoformat(text or "")


@pytest.mark.parametrize("title", HOSTILE_TITLES, ids=range(len(HOSTILE_TITLES)))
def test_hostile_content_stays_well_formed(site: FeedSite, title: str) -> None:
    article = make_article(
        7,
        title=title,
        author=title[:200],
        summary=title,
        guid=title,
        content_html=f"<p>{title}</p><p>]]></p><script>x</script>",
        image=Image("https://news.example.id/img/7.jpg", title),
    )
    docs = render(site, ALL, [article], FORMATS)
    for fmt in ("rss", "atom"):
        parser = xml.parsers.expat.ParserCreate()
        parser.Parse(docs[fmt], True)  # raises on anything not well-formed
    _check_all(site, ALL, docs)
    clean = xml_safe(title)
    for fmt in FORMATS:
        for parser_name, entries in independent_ids(fmt, docs[fmt]).items():
            assert [t.strip() for _, t in entries] == [clean.strip()], (fmt, parser_name)
    assert json.loads(docs["json"])["items"][0]["title"] == clean


def test_summary_only_mode(make_config: object) -> None:
    config: Config = make_config("[feeds]\nfull_content = false\n")  # type: ignore[operator]
    site = FeedSite.from_config(config)
    article = make_article(5, advertorial=True)
    docs = render(site, ALL, [article], FORMATS)
    _check_all(site, ALL, docs)
    atom = ET.fromstring(docs["atom"])
    entry = atom.find(f"{ATOM}entry")
    assert entry is not None and entry.find(f"{ATOM}content") is None
    assert entry.findtext(f"{ATOM}summary", "").startswith("[Advertorial] ")
    assert b"content:encoded" not in docs["rss"]
    item = json.loads(docs["json"])["items"][0]
    assert "content_html" not in item and item["content_text"].startswith("[Advertorial]")


def test_english_site_titles(make_config: object) -> None:
    config: Config = make_config()  # type: ignore[operator]
    site = replace(FeedSite.from_config(config), language="en")
    docs = render(site, Selection("kalimantan-timur", "pemerintahan"), [], ["atom"])
    feed = ET.fromstring(docs["atom"])
    assert feed.findtext(f"{ATOM}subtitle") == (
        "Pemerintahan news from Kalimantan Timur by Nusantara Plus"
    )
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"


def _normalise(text: str) -> str:
    text = re.sub(r'version="[^"]+"', 'version="X"', text)
    return text


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(site: FeedSite, fmt: str) -> None:
    docs = render(site, Selection(region="kalimantan-timur"), _articles(), [fmt])
    text = _normalise(docs[fmt].decode("utf-8"))
    golden = GOLDEN / f"kalimantan-timur.{fmt}"
    if os.environ.get("KABARFEED_REGEN_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_joined_documents_equal_whole_feedgen_documents(site: FeedSite) -> None:
    """Entries serialised once and joined into each document give the bytes
    feedgen gives for the whole document, hostile content included, for any
    subset of the rendered articles and with or without a format."""
    articles = _articles() + [
        make_article(10 + i, title=title, content_html=f"<p>{title}</p>", author=title)
        for i, title in enumerate(HOSTILE_TITLES)
    ]
    for formats in (FORMATS, ("atom", "json"), ("rss",)):
        renderer = Renderer(site, formats)
        renderer.add({a.id: a for a in articles})
        for selection in (
            ALL,
            Selection(region="kalimantan-timur"),
            Selection("balikpapan", "ekonomi"),
        ):
            for chosen in (articles, articles[2:5], articles[::-2], []):
                docs = renderer.documents(selection, [a.id for a in chosen])
                assert docs == render_whole(site, selection, chosen, formats)


def test_the_renderer_forgets_changed_articles_and_keeps_the_last_rendered(
    site: FeedSite,
) -> None:
    articles = _articles()
    renderer = Renderer(site, FORMATS)
    renderer.add({f"{a.id}:r1": a for a in articles})
    renderer.forget({articles[0].id})  # edited, same revision: its entry is stale
    assert renderer.missing(f"{a.id}:r1" for a in articles) == [f"{articles[0].id}:r1"]
    renderer.shrink(2)
    assert renderer.missing(f"{a.id}:r1" for a in articles[-2:]) == []
    assert len(renderer.missing(f"{a.id}:r1" for a in articles)) == len(articles) - 2
    renderer.shrink(0)
    assert renderer.missing(f"{a.id}:r1" for a in articles[-1:]) == [f"{articles[-1].id}:r1"]
