"""Real publisher feeds (see shared/realworld/feeds/SOURCES.md), served over loopback HTTP.

Every file goes through :func:`fetch` + :func:`parse_feed`; each file's
documented quirks are asserted below.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from kabarfeed.errors import ParseError
from kabarfeed.models import RawArticle
from kabarfeed.sources.feed import FetchLimits, ParsedFeed, fetch, make_client, parse_feed
from tests.conftest import REALWORLD_FEEDS
from tests.feedserver import serve

FEEDS_DIR = REALWORLD_FEEDS

FILES = sorted(p.name for p in FEEDS_DIR.iterdir() if p.suffix in {".xml", ".rss", ".atom"})
CONTENT_TYPES = {
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".xml": "text/xml",  # no charset: RFC 3023 would even say us-ascii
}
EXPECTED_COUNTS = {
    "antaranews-jambi-terkini-2022.xml": 20,
    "antaranews-terkini-2017.xml": 20,
    "detik-news-2017.xml": 10,
    "detik-news-feedsportal-2014.xml": 25,
    "heise-developer.atom": 15,
    "jn-pt-iso-8859-1.rss": 40,
    "techcrunch-wordpress-feedburner.xml": 20,
    "tempo-rss-2017-mojibake.xml": 50,
    "tempo-terkini-rss091-2017.xml": 30,
    "uol-noticias-latin1-nodecl.rss": 15,
    "viva-all-2017.xml": 200,
}
MOJIBAKE = ("â€", "Ã©", "Ã£", "Ã§", "Ã³")


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, ParsedFeed | ParseError]]:
    """Every sample, served from a local server, fetched and parsed once."""
    out: dict[str, ParsedFeed | ParseError] = {}
    limits = FetchLimits(timeout=5)
    with serve() as server, make_client(limits) as client:
        for name in FILES:
            path = FEEDS_DIR / name
            ctype = CONTENT_TYPES[path.suffix]
            server.add(f"/feeds/{name}", body=path.read_bytes(), content_type=ctype)
            fetched = fetch(client, server.url(f"/feeds/{name}"), limits=limits)
            try:
                out[name] = parse_feed(
                    fetched.content,
                    source=path.stem,
                    url=fetched.url,
                    content_type=fetched.content_type,
                )
            except ParseError as e:
                out[name] = e
    yield out


def feed(results: dict[str, ParsedFeed | ParseError], name: str) -> ParsedFeed:
    result = results[name]
    assert isinstance(result, ParsedFeed), f"{name}: {result}"
    return result


def texts(article: RawArticle) -> list[str]:
    return [t for t in (article.title, article.summary, article.content_html) if t]


def test_every_sample_is_known() -> None:
    assert set(FILES) == set(EXPECTED_COUNTS), "add the new sample's expectations here"


@pytest.mark.parametrize("name", FILES)
def test_sample_parses_with_expected_count(
    results: dict[str, ParsedFeed | ParseError], name: str
) -> None:
    assert len(feed(results, name).articles) == EXPECTED_COUNTS[name]


@pytest.mark.parametrize("name", FILES)
def test_articles_are_clean(results: dict[str, ParsedFeed | ParseError], name: str) -> None:
    for a in feed(results, name).articles:
        assert a.title, a
        assert a.title == a.title.strip()
        assert not set(a.title) & {"\n", "\r", "\t"}, a.title
        assert "<" not in a.title, a.title
        assert a.published is not None, a.title
        assert a.published.utcoffset() == timedelta(0)
        assert a.updated is None or a.updated.utcoffset() == timedelta(0)
        assert a.url is not None
        assert urlsplit(a.url).scheme in {"http", "https"}
        assert urlsplit(a.url).netloc
        assert a.image is None or urlsplit(a.image.url).scheme in {"http", "https"}
        assert a.origin.endswith(f"/feeds/{name}")
        assert a.warnings == ()
        for text in texts(a):
            assert "\ufffd" not in text, a.title
            assert not any(m in text for m in MOJIBAKE), text


def test_antaranews_2017_escaped_html_and_image(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "antaranews-terkini-2017.xml")
    assert f.language == "id"
    first = f.articles[0]
    assert first.published == datetime(2017, 4, 17, 2, 45, 21, tzinfo=UTC)  # +0700
    assert first.guid == first.url
    assert first.summary is not None
    assert first.summary.startswith("<img")  # entity-escaped HTML, unescaped once
    assert first.image is not None
    assert first.image.url == "http://img.antaranews.com/new/2017/04/thumb/20170417streaming.jpg"
    assert all(a.content_html is None for a in f.articles)


def test_antaranews_jambi_content_and_png_enclosure(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "antaranews-jambi-terkini-2022.xml")
    assert all(a.content_html and a.summary for a in f.articles)
    images = [a.image for a in f.articles if a.image]
    assert len(images) == 20
    assert all(i.length == 25000 for i in images)
    for image in images:  # type="image/jpeg" even for .png: the extension wins
        expected = "image/png" if image.url.endswith(".png") else "image/jpeg"
        assert image.type == expected
    assert any(i.type == "image/png" for i in images)


def test_detik_feedsportal_real_urls_from_guid(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "detik-news-feedsportal-2014.xml")
    for a in f.articles:
        assert a.url is not None
        assert urlsplit(a.url).hostname == "news.detik.com"
        assert a.url == a.guid
        assert a.published is not None
        assert a.published.year == 2014
    images = [a.image for a in f.articles if a.image]
    assert len(images) == 19  # only 19 items have a photo; the rest only ad images
    assert all("feedsportal" not in i.url for i in images)
    assert all(i.type == "image/jpeg" for i in images)  # "image/jpg" fixed


def test_detik_2017_document_order_and_enclosures(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "detik-news-2017.xml")
    assert f.language is None
    dates = [a.published for a in f.articles if a.published]
    assert dates != sorted(dates, reverse=True)  # kept in document order
    hosts = {urlsplit(a.url or "").hostname or "" for a in f.articles}
    assert len(hosts) > 3
    assert all(h.endswith(".detik.com") for h in hosts)
    for a in f.articles:
        assert a.image is not None
        assert (a.image.type, a.image.length) == ("image/jpeg", 10240)


def test_tempo_rss091_content_and_literal_offset(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "tempo-terkini-rss091-2017.xml")
    first = f.articles[0]
    assert first.content_html == first.summary
    # "+0100" is most likely WIB mislabelled; we keep what the feed says.
    assert first.published == datetime(2017, 4, 28, 0, 38, 2, tzinfo=UTC)


def test_tempo_mojibake_repaired_and_titles_trimmed(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "tempo-rss-2017-mojibake.xml")
    everything = "\n".join(t for a in f.articles for t in texts(a))
    assert "L’Oréal Paris" in everything
    assert "“Tapi pengakuan" in everything
    assert all(a.content_html and "<img" in a.content_html for a in f.articles)
    assert all(a.image is not None for a in f.articles)


def test_viva_enclosures_categories_and_mixed_description(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "viva-all-2017.xml")
    first = f.articles[0]
    assert first.title == "Jalur Pendakian Gunung Kelud via Tulungrejo"
    assert first.summary is not None
    assert first.summary.startswith("<img")  # the escaped-HTML part
    assert first.summary.endswith("Terkenal karena menjadi objek wisata.")  # the CDATA part
    assert first.categories == ("33",)
    assert first.author is None  # channel managingEditor is not a byline
    assert all(a.image and a.image.type == "image/jpeg" for a in f.articles)


def test_techcrunch_recovered_with_origlink(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "techcrunch-wordpress-feedburner.xml")
    assert any("declaration not at start" in w for w in f.warnings)
    first = f.articles[0]
    assert first.url == (
        "http://techcrunch.com/2011/11/02/angies-list-prices-ipo-at-11-to-13-per-share-valued-at-over-600m/"
    )
    assert first.title.startswith("Angie’s List Sets Price Range IPO")
    assert first.author == "Leena Rao"
    assert first.categories == ("TC", "angie's list")
    assert first.image is not None
    assert first.image.url.startswith("http://tctechcrunch2011.files.wordpress.com/")
    assert all(urlsplit(a.url or "").hostname == "techcrunch.com" for a in f.articles)
    assert all(a.content_html and a.author for a in f.articles)


def test_heise_atom(results: dict[str, ParsedFeed | ParseError]) -> None:
    f = feed(results, "heise-developer.atom")
    first = f.articles[0]
    assert all(a.author == "heise online" for a in f.articles)  # feed-level author
    assert first.published == datetime(2016, 2, 1, 16, 22, tzinfo=UTC)
    assert first.updated == datetime(2016, 2, 1, 16, 54, 50, tzinfo=UTC)
    assert first.guid == "http://heise.de/-3088438"
    assert first.content_html is not None
    assert first.content_html.startswith("<")
    assert "verfügbare" in (first.summary or "")


def test_jn_pt_latin1_and_origlink(results: dict[str, ParsedFeed | ParseError]) -> None:
    f = feed(results, "jn-pt-iso-8859-1.rss")
    assert f.title == "Jornal de Notícias - Últimas Notícias"
    assert f.language == "pt-pt"
    first = f.articles[0]
    assert first.title == "Mãe de utente é a nova presidente da Raríssimas"
    assert first.url == (
        "https://www.jn.pt/nacional/interior/sonia-laig-e-a-nova-presidente-da-rarissimas-9021600.html"
    )
    assert first.guid is None
    assert first.published == datetime(2018, 1, 3, 13, 47, tzinfo=UTC)  # "GMT\r\n   "
    assert all(urlsplit(a.url or "").hostname == "www.jn.pt" for a in f.articles)


def test_uol_latin1_without_declaration_and_portuguese_dates(
    results: dict[str, ParsedFeed | ParseError],
) -> None:
    f = feed(results, "uol-noticias-latin1-nodecl.rss")
    assert f.warnings
    assert "windows-1252" in f.warnings[0]
    assert f.language is None  # <language></language>
    first = f.articles[0]
    assert first.title == (
        "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"
    )
    assert first.published == datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)  # "Seg, 24 Set"
    assert first.url is not None
    assert first.url.startswith("https://noticias.uol.com.br/")  # CDATA link
    assert any(a.summary is None for a in f.articles)  # empty descriptions
