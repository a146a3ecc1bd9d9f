"""One bad item never costs the others (issue 22 §3).

Property tests feed the directory source (JSON, Markdown front matter, CMS
text, random bytes), the feed-entry mapping and the ingest stage's per-item
preparation with hostile input: nothing may escape outside the project's error
tree, no item may be rejected as an *internal* error (every rejection has a
real reason), and whatever is accepted can be stored (valid UTF-8, no NUL).
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kabarfeed.config import SourceConfig
from kabarfeed.errors import KabarfeedError
from kabarfeed.ingest import prepare
from kabarfeed.models import RawArticle, Taxonomy
from kabarfeed.sources import feed
from kabarfeed.sources.directory import read_directory
from kabarfeed.sources.isolation import INTERNAL, Rejected, isolate, text_problem
from kabarfeed.store import Database
from kabarfeed.store.articles import save_articles

NOW = datetime(2025, 11, 16, 12, 0, tzinfo=UTC)
SOURCE = SourceConfig(name="lokal", kind="directory", path=Path("."))
KEYS = (
    "title", "date", "published", "updated", "author", "url", "guid", "id", "summary",
    "regions", "categories", "tags", "image", "advertorial", "language", "content_html", "body",
)  # fmt: skip
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Any code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
dates = st.one_of(
    any_text,
    st.sampled_from(
        [
            "9999-12-31T23:59:59-12:00",
            "0001-01-01T00:00:00+14:00",
            "2025-11-16",
            "2025-11-16T08:00",
            "2025-13-45",
        ]
    ),
    st.datetimes(timezones=st.none() | st.timezones()),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), any_text, dates
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
json_items = st.dictionaries(st.sampled_from(KEYS) | any_text, values, max_size=8)


def _json_safe(value: Any) -> Any:
    """Dates as ISO text: JSON has no date type."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _dump_json(value: Any) -> str:
    return json.dumps(_json_safe(value), ensure_ascii=True, allow_nan=True)


def _front_matter(meta: dict[str, Any], body: str) -> str:
    try:
        dumped = yaml.safe_dump(meta, allow_unicode=False)
    except yaml.YAMLError:
        dumped = "title: x\n"
    return f"---\n{dumped}---\n{body}"


cms_lines = st.lists(
    st.one_of(
        any_text,
        st.sampled_from(
            [
                "",
                "Oleh Redaksi pada 14 Nov 2025, 06:30 WITA",
                "Oleh Redaksi pada 31 Des 9999, 99:99 WIT",
                "Oleh pada",
                "NUSANTARAPLUS, BANJARMASIN – Banjir rob.",
                "Air pasang. (Nusplus)",
                "(Ham/Red/ADV)",
                "Tinggalkan Komentar",
            ]
        ),
    ),
    max_size=12,
)

files = st.one_of(
    st.tuples(st.just("a.json"), json_items.map(_dump_json)),
    st.tuples(st.just("b.json"), st.lists(json_items, max_size=4).map(_dump_json)),
    st.tuples(st.just("c.md"), st.builds(_front_matter, json_items.map(_json_safe), any_text)),
    st.tuples(st.just("d.txt"), cms_lines.map("\n".join)),
    st.tuples(st.sampled_from(["e.txt", "f.md", "g.json"]), st.binary(max_size=200)),
)

GOOD = '{"title": "Pasar Murah di Bontang", "body": "Isi berita.", "date": "2025-11-16"}'


def _prepare_all(articles: tuple[RawArticle, ...], db: Database | None = None) -> None:
    """Every accepted article either prepares into storable text or is rejected;
    with ``db``, the prepared batch is stored (and rolled back)."""
    batch = []
    for raw in articles:
        result = isolate(raw.origin, lambda raw=raw: prepare(  # type: ignore[misc]
            raw, source=SOURCE, taxonomy=Taxonomy(), language="id",
            default_tz="Asia/Jakarta", now=NOW,
        ))  # fmt: skip
        if isinstance(result, Rejected):
            assert INTERNAL not in result.reason, result.reason
            continue
        batch.append(result.prepared)
        article = result.prepared.article
        if article.image is not None:  # the widths of their columns
            assert len(article.image.type or "") <= 100
            assert (article.image.length or 0) < 2**31
        for text in (article.title, article.url, article.summary, article.content_html,
                     article.guid or "", article.author or "", article.language):  # fmt: skip
            assert text_problem(text) is None
    if db is not None and batch:
        with db.connect() as conn:
            transaction = conn.begin()
            try:
                save_articles(conn, batch, now=NOW)
            finally:
                transaction.rollback()


@SETTINGS
@given(st.lists(files, min_size=1, max_size=4))
@example([("a.json", '{"title": "Banjir", "body": "Isi.", "summary": "\\udfff"}')])
@example([("b.json", '[{"title": "\\ud800", "body": "x"}, {"title": "Baik", "body": "y"}]')])
@example([("c.md", '---\ntitle: "\\udfff"\n---\nIsi.\n')])
@example([("d.json", '{"title": "x", "body": "y", "guid": "a\\u0000b"}')])
@example([("e.json", '{"title": "x", "body": "y", "date": "9999-12-31T23:59:59-12:00"}')])
def test_directory_source_never_raises_and_keeps_the_good_file(
    db: Database, contents: list[tuple[str, str | bytes]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "baik.json").write_text(GOOD, encoding="utf-8")
        for number, (name, content) in enumerate(contents):
            path = root / f"{number}-{name}"
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
        result = read_directory("lokal", root, default_tz="Asia/Jakarta", base_url="https://b.id")
    assert any(a.title == "Pasar Murah di Bontang" for a in result.articles)
    for problem in result.problems:
        assert INTERNAL not in problem.message, problem.message
    _prepare_all(result.articles, db)


entry_values = st.one_of(st.none(), st.integers(), any_text, dates.map(str))
rss_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "title": any_text,
            "link": st.sampled_from(["https://e.id/a", "/rel", "javascript:x", ""]) | any_text,
            "guid": any_text,
            "pubDate": dates.map(str)
            | st.just("Fri, 31 Dec 9999 23:59:59 -1200")
            | st.just("Sen, 99 Agu 2025 25:61:00 WIB"),
            "description": any_text,
            "author": any_text,
            "category": any_text,
        },
    ),
    max_size=4,
)


def _xml_escape(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in "<>&\"'" or code < 0x20 or 0xD800 <= code <= 0xDFFF or code > 0xFFFD:
            out.append(f"&#{code};")
        else:
            out.append(char)
    return "".join(out)


def _rss(items: list[dict[str, str]]) -> bytes:
    body = "".join(
        "<item>" + "".join(f"<{k}>{_xml_escape(str(v))}</{k}>" for k, v in item.items()) + "</item>"
        for item in items
    )
    good = (
        "<item><title>Baik</title><link>https://e.id/baik</link>"
        "<pubDate>Sun, 16 Nov 2025 10:00:00 +0800</pubDate></item>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        f"{body}{good}</channel></rss>"
    ).encode()


@SETTINGS
@given(rss_items)
@example(
    [
        {"title": "Satu", "guid": "https://e.id/a", "link": "https://e.id/b"},
        {"title": "Dua", "link": "https://e.id/a"},
    ]
)
@example(
    [{"title": "Rusak", "link": "https://e.id/r", "pubDate": "Fri, 31 Dec 9999 23:59:59 -1200"}]
)
@example([{"title": "Rusak", "link": "https://e.id/r", "guid": "&#0;"}])
def test_feed_entry_mapping_never_raises_and_keeps_the_good_entry(
    db: Database, items: list[dict[str, str]]
) -> None:
    try:
        parsed = feed.parse_feed(_rss(items), source="s", url="https://e.id/feed")
    except KabarfeedError:
        return  # the document as a whole was refused: that is the error tree
    assert any(a.title == "Baik" for a in parsed.articles)
    for warning in parsed.warnings:
        assert INTERNAL not in warning, warning
    _prepare_all(parsed.articles, db)


struct_times = st.tuples(
    st.integers(-1, 10_001), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
    st.integers(0, 61), st.integers(0, 61), st.integers(0, 6), st.integers(0, 366),
    st.integers(-1, 1),
).map(time.struct_time)  # fmt: skip
entry_fields = st.sampled_from(
    ["title", "link", "id", "published", "updated", "summary", "author", "tags", "content",
     "author_detail", "media_content", "media_thumbnail", "links", "language", "title_detail"]
)  # fmt: skip
entries = st.lists(
    st.dictionaries(entry_fields, values, max_size=8)
    | st.fixed_dictionaries(
        {"title": any_text, "link": st.just("https://e.id/a")},
        optional={"published_parsed": struct_times, "updated_parsed": struct_times},
    )
    | values,
    max_size=3,
)


@SETTINGS
@given(entries)
@example([{"title": "x", "link": "https://e.id/a", "summary": "\udfff"}])
@example(
    [
        {
            "title": "x",
            "link": "https://e.id/a",
            "links": [
                {
                    "rel": "enclosure",
                    "href": "https://e.id/i.jpg",
                    "type": "image/" + "x" * 200,
                    "length": "99999999999",
                }
            ],
        }
    ]
)
@example(
    [
        {
            "title": "x",
            "link": "https://e.id/a",
            "published_parsed": time.struct_time((10000, 1, 1, 0, 0, 0, 0, 1, 0)),
        }
    ]
)
def test_entry_mapping_of_arbitrary_feedparser_shapes(db: Database, entries: list[Any]) -> None:
    mapped = feed.map_entries(entries, source="s", url="https://e.id/feed")
    assert len(mapped.articles) + len(mapped.rejected) == len(entries)
    for rejected in mapped.rejected:
        assert INTERNAL not in rejected.reason, rejected.reason
    _prepare_all(mapped.articles, db)
