"""Feed source: fetching over real loopback HTTP, and mapping RSS/Atom entries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from kabarfeed.errors import FetchError, ParseError
from kabarfeed.models import Image
from kabarfeed.sources.feed import (
    ACCEPT,
    FetchLimits,
    fetch,
    make_client,
    parse_date,
    parse_feed,
    repair_mojibake,
)
from tests.feedserver import FeedServer, serve

FAST = FetchLimits(timeout=0.5, max_bytes=1024 * 1024, max_redirects=3)
RSS_MIN = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with serve() as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(FAST) as c:
        yield c


# --------------------------------------------------------------------------- fetch


def test_conditional_get_with_etag(server: FeedServer, client: httpx.Client) -> None:
    server.add("/etag.xml", body=RSS_MIN, etag='"v1"', content_type="application/rss+xml")
    first = fetch(client, server.url("/etag.xml"), limits=FAST)
    assert first.status == "ok"
    assert first.content == RSS_MIN
    assert first.etag == '"v1"'
    assert first.content_type == "application/rss+xml"
    assert ("content-type", "application/rss+xml") in first.headers

    second = fetch(client, server.url("/etag.xml"), etag=first.etag, limits=FAST)
    assert second.status == "not_modified"
    assert second.content == b""
    assert second.etag == '"v1"'
    assert server.hits("/etag.xml")[-1].headers["If-None-Match"] == '"v1"'


def test_conditional_get_with_last_modified(server: FeedServer, client: httpx.Client) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.add("/lm.xml", body=RSS_MIN, last_modified=stamp)
    first = fetch(client, server.url("/lm.xml"), limits=FAST)
    assert (first.status, first.last_modified, first.etag) == ("ok", stamp, None)
    second = fetch(client, server.url("/lm.xml"), last_modified=stamp, limits=FAST)
    assert second.status == "not_modified"
    assert second.last_modified == stamp
    assert server.hits("/lm.xml")[-1].headers["If-Modified-Since"] == stamp


def test_client_sends_user_agent_and_accept(server: FeedServer, client: httpx.Client) -> None:
    server.add("/ua.xml", body=RSS_MIN)
    fetch(client, server.url("/ua.xml"), limits=FAST)
    sent = server.hits("/ua.xml")[-1].headers
    assert sent["User-Agent"].startswith("kabarfeed/")
    assert sent["Accept"] == ACCEPT


def test_http_error_status(server: FeedServer, client: httpx.Client) -> None:
    server.add("/boom.xml", status=500, body=b"oops", content_type="text/plain")
    with pytest.raises(FetchError, match=r"HTTP 500 from http://127\.0\.0\.1:\d+/boom\.xml"):
        fetch(client, server.url("/boom.xml"), limits=FAST)


def test_retry_after_is_given_as_hint(server: FeedServer, client: httpx.Client) -> None:
    server.add("/busy.xml", status=503, headers={"Retry-After": "120"})
    with pytest.raises(FetchError) as info:
        fetch(client, server.url("/busy.xml"), limits=FAST)
    assert info.value.hint == "server asks to retry after 120"


def test_slow_headers_time_out_quickly(server: FeedServer, client: httpx.Client) -> None:
    server.add("/slow.xml", body=RSS_MIN, delay=3)
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 0\.5s") as info:
        fetch(client, server.url("/slow.xml"), limits=FAST)
    assert time.monotonic() - start < 2
    assert isinstance(info.value.__cause__, httpx.TimeoutException)


def test_dribbling_body_hits_the_total_deadline(server: FeedServer, client: httpx.Client) -> None:
    # Every chunk arrives within the read timeout, but the whole would take 4 s.
    server.add("/drip.xml", body=b"x" * 20, chunk_size=1, dribble=0.2)
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 0\.5s"):
        fetch(client, server.url("/drip.xml"), limits=FAST)
    assert time.monotonic() - start < 2


def test_oversize_streamed_body_is_abandoned(server: FeedServer, client: httpx.Client) -> None:
    size = 50 * 1024 * 1024
    route = server.add("/huge.xml", stream_bytes=size, declare_length=False)
    with pytest.raises(FetchError, match="response larger than 1 MiB"):
        fetch(client, server.url("/huge.xml"), limits=FAST)
    time.sleep(0.1)
    assert route.sent < size // 2


def test_oversize_declared_length_is_refused_before_reading(
    server: FeedServer, client: httpx.Client
) -> None:
    route = server.add("/big.xml", stream_bytes=50 * 1024 * 1024)
    with pytest.raises(FetchError, match=r"response larger than 1 MiB .*Content-Length 50 MiB"):
        fetch(client, server.url("/big.xml"), limits=FAST)
    time.sleep(0.1)
    assert route.sent < 25 * 1024 * 1024


def test_default_limits_message() -> None:
    assert FetchLimits().max_bytes == 10 * 1024 * 1024
    assert FetchLimits().timeout == 20
    with pytest.raises(ValueError, match="invalid fetch limits"):
        FetchLimits(timeout=0)


def test_redirect_chain_is_followed(server: FeedServer, client: httpx.Client) -> None:
    server.add("/final.xml", body=RSS_MIN)
    server.redirect("/r2", "/final.xml", status=301)
    server.redirect("/r1", server.url("/r2"))
    result = fetch(client, server.url("/r1"), limits=FAST)
    assert result.url == server.url("/final.xml")
    assert result.content == RSS_MIN


def test_redirect_loop_fails(server: FeedServer, client: httpx.Client) -> None:
    server.redirect("/loop-a", "/loop-b")
    server.redirect("/loop-b", "/loop-a")
    with pytest.raises(FetchError, match=r"too many redirects \(more than 3\)"):
        fetch(client, server.url("/loop-a"), limits=FAST)
    assert len(server.hits("/loop-a")) + len(server.hits("/loop-b")) == 4


def test_redirect_to_file_url_is_refused(server: FeedServer, client: httpx.Client) -> None:
    server.redirect("/to-file", "file:///etc/passwd")
    with pytest.raises(FetchError, match="unsupported URL"):
        fetch(client, server.url("/to-file"), limits=FAST)


def test_connection_refused_is_a_fetch_error(client: httpx.Client) -> None:
    with serve() as s:
        url = s.url("/gone.xml")
    with pytest.raises(FetchError, match="cannot fetch") as info:
        fetch(client, url, limits=FAST)
    assert isinstance(info.value.__cause__, httpx.HTTPError)


def test_file_url(tmp_path: Path, client: httpx.Client) -> None:
    path = tmp_path / "local feed.xml"
    path.write_bytes(RSS_MIN)
    result = fetch(client, path.as_uri(), limits=FAST)
    assert (result.status, result.content, result.url) == ("ok", RSS_MIN, path.as_uri())
    again = fetch(client, path.as_uri(), etag=result.etag, limits=FAST)
    assert again.status == "not_modified"


def test_file_url_errors(tmp_path: Path, client: httpx.Client) -> None:
    with pytest.raises(FetchError, match="cannot read"):
        fetch(client, (tmp_path / "missing.xml").as_uri(), limits=FAST)
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * (FAST.max_bytes + 1))
    with pytest.raises(FetchError, match="response larger than 1 MiB"):
        fetch(client, big.as_uri(), limits=FAST)


# --------------------------------------------------------------------------- parse

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel>
  <title>Kabar  Balikpapan</title><link>https://kabar.example/</link><language>id</language>
  <item>
    <title>
      Rakor &lt;b&gt;akhir&lt;/b&gt;   tahun &amp;amp; evaluasi
    </title>
    <link>/berita/rakor-akhir-tahun</link>
    <guid isPermaLink="false">kabar-123</guid>
    <dc:creator>Juniar</dc:creator>
    <pubDate>Mon, 30 Dec 2024 09:15:00 +0800</pubDate>
    <description>&lt;p&gt;Ringkasan&lt;/p&gt;</description>
    <content:encoded><![CDATA[<p>Isi <img src="/img/inline.jpg"> lengkap</p>]]></content:encoded>
    <category>Pemerintahan</category><category> Balikpapan </category>
    <category>pemerintahan</category>
    <enclosure url="https://cdn.example/foto.png" type="image/jpg" length="25000"/>
  </item>
  <item>
    <title>Dengan media</title>
    <link>https://kabar.example/berita/2</link>
    <media:content url="https://cdn.example/video.mp4" medium="video"/>
    <media:content url="https://cdn.example/lead.jpg" medium="image" fileSize="1234"/>
    <enclosure url="https://cdn.example/other.jpg" type="image/jpeg"/>
  </item>
  <item>
    <title>Gambar di isi</title>
    <link>https://kabar.example/berita/3</link>
    <description><![CDATA[<img src="https://px.example/t.gif" width="1" height="1">
      <img src='relative/foto.webp'> teks]]></description>
  </item>
</channel></rss>"""


def test_rss_items_are_mapped() -> None:
    feed = parse_feed(RSS, source="kabar", url="https://kabar.example/rss/all.xml")
    assert (feed.title, feed.language, feed.warnings) == ("Kabar Balikpapan", "id", ())
    first, second, third = feed.articles
    assert first.title == "Rakor akhir tahun & evaluasi"
    assert first.url == "https://kabar.example/berita/rakor-akhir-tahun"
    assert first.guid == "kabar-123"
    assert first.author == "Juniar"
    assert first.published == datetime(2024, 12, 30, 1, 15, tzinfo=UTC)
    assert first.summary == "<p>Ringkasan</p>"
    assert first.content_html is not None
    assert 'src="https://kabar.example/img/inline.jpg"' in first.content_html
    assert first.categories == ("Pemerintahan", "Balikpapan")
    assert first.image == Image("https://cdn.example/foto.png", type="image/png", length=25000)
    assert (first.source, first.origin, first.language) == (
        "kabar",
        "https://kabar.example/rss/all.xml",
        "id",
    )
    assert second.image == Image("https://cdn.example/lead.jpg", type="image/jpeg", length=1234)
    assert third.image == Image(
        "https://kabar.example/rss/relative/foto.webp", type="image/webp", length=None
    )


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de">
  <title type="html">Heise &amp;lt;dev&amp;gt;</title>
  <author><name>heise online</name></author>
  <id>urn:x</id><updated>2016-02-01T17:54:50+01:00</updated>
  <entry>
    <title type="text">WildFly 10</title>
    <id>http://heise.de/-3088438</id>
    <link rel="alternate" href="meldung/wildfly.html"/>
    <published>2016-02-01T17:22:00+01:00</published>
    <updated>2016-02-01T17:54:50+01:00</updated>
    <summary type="html">kurz</summary>
    <content type="html"><![CDATA[  <p>lang <b>und</b> ausf\xc3\xbchrlich</p>]]></content>
    <category term="Java"/>
  </entry>
</feed>"""


def test_atom_entries_are_mapped() -> None:
    feed = parse_feed(ATOM, source="heise", url="https://www.heise.de/developer/atom.xml")
    assert feed.title == "Heise <dev>"
    (entry,) = feed.articles
    assert entry.url == "https://www.heise.de/developer/meldung/wildfly.html"
    assert entry.author == "heise online"  # inherited from the feed
    assert entry.published == datetime(2016, 2, 1, 16, 22, tzinfo=UTC)
    assert entry.updated == datetime(2016, 2, 1, 16, 54, 50, tzinfo=UTC)
    assert entry.content_html == "<p>lang <b>und</b> ausführlich</p>"
    assert entry.summary == "kurz"
    assert entry.categories == ("Java",)
    assert entry.language == "de"


def test_feedsportal_link_is_replaced_by_guid_and_origlink_wins() -> None:
    doc = b"""<rss version="2.0" xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0">
    <channel><title>x</title>
    <item><title>a</title>
      <link>http://detik.feedsportal.com/c/1/f/2/s/3/story01.htm</link>
      <guid isPermaLink="false">http://news.detik.com/read/1</guid></item>
    <item><title>b</title>
      <link>http://feeds.example/~r/x/~3/abc/</link>
      <feedburner:origLink>https://www.example.pt/real.html</feedburner:origLink></item>
    <item><title>c</title><link>https://site.example/nice</link>
      <guid isPermaLink="false">https://site.example/?p=1</guid></item>
    </channel></rss>"""
    urls = [a.url for a in parse_feed(doc, source="s", url="http://f.example/").articles]
    assert urls == [
        "http://news.detik.com/read/1",
        "https://www.example.pt/real.html",
        "https://site.example/nice",
    ]


def test_malformed_xml_is_recovered_with_a_warning() -> None:
    doc = b"<rss version='2.0'><channel><title>x</title><item><title>A & B</title>"
    doc += b"<link>http://e.example/1</link></item></channel>"
    feed = parse_feed(doc, source="s", url="http://e.example/feed")
    assert [a.title for a in feed.articles] == ["A & B"]
    assert feed.warnings
    assert feed.warnings[0].startswith("feed recovered from an error")


@pytest.mark.parametrize(
    "doc",
    [
        b"",
        b"<html><body><p>Not a feed</p></body></html>",
        b"\x00\x01\x02 garbage",
        b"<?xml version='1.0'?><rss><channel><title>x</channel></rss>",
    ],
)
def test_unusable_documents_raise_parse_error(doc: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(doc, source="s", url="http://e.example/feed")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!-- a comment with <item> inside -->
<!DOCTYPE lolz [
 <!ELEMENT lolz (#PCDATA)>
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<rss version="2.0"><channel><item><title>&lol9;</title></item></channel></rss>"""


@pytest.mark.parametrize(
    "doc",
    [
        BILLION_LAUGHS,
        b"\xef\xbb\xbf" + BILLION_LAUGHS,
        BILLION_LAUGHS.decode().encode("utf-16"),
        b'<!DOCTYPE r [<!ATTLIST r a CDATA "]>"> <!-- ]> --> <!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><item><title>&x;</title></item></channel></rss>",
    ],
    ids=["utf8", "bom", "utf16", "tricky-subset"],
)
def test_entity_declarations_are_refused(doc: bytes) -> None:
    with pytest.raises(ParseError, match="DTD entity declarations are not allowed"):
        parse_feed(doc, source="s", url="http://e.example/feed")


def test_doctype_without_entities_and_entity_text_in_cdata_are_fine() -> None:
    doc = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        b' "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n<rss version="0.91"><channel>'
        b"<title>x</title><item><title>XML</title><link>http://e.example/1</link>"
        b"<description><![CDATA[Write <!ENTITY x 'y'> to declare]]></description>"
        b"</item></channel></rss>"
    )
    feed = parse_feed(doc, source="s", url="http://e.example/feed")
    assert feed.warnings == ()
    assert "!ENTITY x 'y'> to declare" in (feed.articles[0].summary or "")


def test_latin1_without_declaration_is_decoded() -> None:
    doc = (
        "<rss><channel><title>Últimas Notícias</title><item>"
        "<title>Simulações de 2º turno</title><link>http://uol.example/1</link>"
        "<pubDate>Sáb, 01 Dez 2018 19:42:40 -0300</pubDate></item></channel></rss>"
    ).encode("latin-1")
    feed = parse_feed(doc, source="uol", url="http://uol.example/rss", content_type="text/xml")
    assert feed.title == "Últimas Notícias"
    (article,) = feed.articles
    assert article.title == "Simulações de 2º turno"
    assert article.published == datetime(2018, 12, 1, 22, 42, 40, tzinfo=UTC)


def test_mojibake_is_repaired_in_titles_and_html() -> None:
    doc = (
        "<rss version='2.0'><channel><title>t</title><item>"
        "<title>Lâ€™OrÃ©al  â€œbaruâ€\x9d</title><link>http://t.example/1</link>"
        "<description>&lt;p&gt;produk Lâ€™OrÃ©al&lt;/p&gt;</description>"
        "</item></channel></rss>"
    ).encode()
    (article,) = parse_feed(doc, source="t", url="http://t.example/").articles
    assert article.title == "L’Oréal “baru”"
    assert article.summary == "<p>produk L’Oréal</p>"


@pytest.mark.parametrize(
    "text",
    ["simulações", "Größe – ação", "plain ascii", "½ € ©", "naïve café"],
)
def test_mojibake_repair_leaves_real_text_alone(text: str) -> None:
    assert repair_mojibake(text) == text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Seg, 24 Set 2018 19:42:40 -0300", datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)),
        ("Qui, 10 Out 2019 08:00:00 GMT", datetime(2019, 10, 10, 8, 0, tzinfo=UTC)),
        ("Sen, 17 Agu 2020 10:00:00 +0700", datetime(2020, 8, 17, 3, 0, tzinfo=UTC)),
        ("Kamis, 5 Mei 2022 14:30 WITA", datetime(2022, 5, 5, 6, 30, tzinfo=UTC)),
        ("Rab, 25 Des 2024 07:00:00 WIB", datetime(2024, 12, 25, 0, 0, tzinfo=UTC)),
        ("2016-02-01T17:22:00+01:00", datetime(2016, 2, 1, 16, 22, tzinfo=UTC)),
        ("Mon, 03 Jan 2018 13:47:00", datetime(2018, 1, 3, 13, 47, tzinfo=UTC)),
    ],
)
def test_parse_date(raw: str, expected: datetime) -> None:
    assert parse_date(raw) == expected


def test_unparseable_date_is_a_warning_not_an_error() -> None:
    doc = (
        b"<rss version='2.0'><channel><title>t</title><item><title>x</title>"
        b"<link>http://t.example/1</link><pubDate>kemarin sore</pubDate></item></channel></rss>"
    )
    (article,) = parse_feed(doc, source="t", url="http://t.example/").articles
    assert article.published is None
    assert article.warnings == ("unparseable published date 'kemarin sore'",)


def test_fetch_then_parse_over_http(server: FeedServer, client: httpx.Client) -> None:
    server.add("/kabar.xml", body=RSS, content_type="application/rss+xml; charset=utf-8")
    result = fetch(client, server.url("/kabar.xml"), limits=FAST)
    feed = parse_feed(
        result.content, source="kabar", url=result.url, content_type=result.content_type
    )
    assert feed.articles[0].url == server.url("/berita/rakor-akhir-tahun")


def test_odd_entries_degrade_to_warnings() -> None:
    doc = (
        b"<rss version='2.0'><channel><title>t</title>"
        b"<item><description>no title</description><link>http://[bad/1</link></item>"
        b"<item><title>ok</title><link>javascript:alert(1)</link></item>"
        b"</channel></rss>"
    )
    first, second = parse_feed(doc, source="t", url="http://t.example/").articles
    assert (first.title, first.url, first.warnings) == ("", None, ("entry has no title",))
    assert (second.title, second.url) == ("ok", None)
