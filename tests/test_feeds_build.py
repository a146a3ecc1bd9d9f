"""The feed builder against a real store: round trip of every feed of the sample
data, incremental rebuilds, removal, atomic writes, gzip siblings, OPML, index
page, WebSub pings and the ``kabarfeed build`` command."""

from __future__ import annotations

import gzip
import json
import os
import random
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl

import feedparser
import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from kabarfeed.cli import main
from kabarfeed.config import Config, load_config
from kabarfeed.feeds import build as feeds_build
from kabarfeed.feeds import queries
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.feeds.catalog import build_catalog
from kabarfeed.feeds.index import IndexPage
from kabarfeed.feeds.render import FeedSite, entry_id
from kabarfeed.feeds.selection import Matcher, Selection, base_selections, sort_key
from kabarfeed.ingest import Ingestor
from kabarfeed.models import Article, Taxonomy
from kabarfeed.store import Database, pushapi
from kabarfeed.store.articles import load_articles
from kabarfeed.store.schema import (
    article_categories,
    article_keys,
    article_regions,
    articles,
    feed_builds,
    state,
)
from tests.conftest import REPO, ConfigFactory
from tests.feeds_support import (
    BASE,
    check_atom,
    check_json,
    check_rss,
    independent_ids,
    make_article,
    render_whole,
    store,
)

NOW = datetime(2025, 11, 30, 0, 30, tzinfo=UTC)
SAMPLE_SOURCE = f"""
[[sources]]
name = "redaksi"
kind = "directory"
path = "{REPO / "examples" / "articles"}"
"""


def clock() -> datetime:
    return NOW


@pytest.fixture
def sample(make_config: ConfigFactory, db: Database) -> tuple[Config, Database]:
    """The repository's example articles, ingested through the real pipeline."""
    config = make_config(SAMPLE_SOURCE)
    report = Ingestor(config, db, clock, rand=lambda: 0.5).run()
    assert report.total("new") >= 8
    return config, db


def _feed_files(output: Path) -> dict[str, Path]:
    return {
        p.relative_to(output).as_posix(): p
        for p in sorted((output / "feeds").rglob("*"))
        if p.suffix in (".rss", ".atom", ".json")
    }


def _selection(relative: str) -> Selection:
    stem = relative.rsplit(".", 1)[0].removeprefix("feeds/")
    parts = stem.split("/")
    if parts == ["all"]:
        return Selection()
    if parts[0] == "category":
        return Selection(category=parts[1])
    return Selection(parts[1], parts[2] if len(parts) > 2 else None)


def _expected(db: Database, taxonomy: Taxonomy, selection: Selection, items: int) -> list[Article]:
    regions = list(taxonomy.with_descendants(selection.region)) if selection.region else None
    categories = [selection.category] if selection.category else None
    with db.connect() as conn:
        return load_articles(conn, regions=regions, categories=categories, limit=items)


def _mtimes(output: Path) -> dict[str, int]:
    return {
        p.relative_to(output).as_posix(): p.stat().st_mtime_ns
        for p in output.rglob("*")
        if p.is_file()
    }


def test_every_feed_round_trips(sample: tuple[Config, Database]) -> None:
    config, db = sample
    report = FeedBuilder(config, db, clock).build()
    site = FeedSite.from_config(config)
    files = _feed_files(config.feeds.output)
    assert report.written == len(files) > 40 and report.full
    assert not list(config.feeds.output.rglob(".kf-*")), "temp files left behind"
    for relative, path in files.items():
        data = path.read_bytes()
        assert gzip.decompress((path.parent / (path.name + ".gz")).read_bytes()) == data
        selection = _selection(relative)
        expected = _expected(db, config.taxonomy, selection, config.feeds.items)
        fmt = path.suffix[1:]
        url = site.url(relative)
        assert expected or selection.kind != "pair", f"{relative} exists without articles"
        {"rss": check_rss, "atom": check_atom, "json": check_json}[fmt](data, url)
        ids = [(entry_id(site, a), a.title) for a in expected]
        for parser, seen in independent_ids(fmt, data).items():
            assert seen == ids, (relative, parser)
        _compare(fmt, data, expected, site)


def _compare(fmt: str, data: bytes, expected: list[Article], site: FeedSite) -> None:
    if fmt == "json":
        items = json.loads(data)["items"]
        for item, article in zip(items, expected, strict=True):
            assert item["url"] == article.url
            assert datetime.fromisoformat(item["date_published"]) == article.published.replace(
                microsecond=0
            )
            assert datetime.fromisoformat(item["date_modified"]) == article.updated.replace(
                microsecond=0
            )
            assert item["_kabarfeed"]["regions"] == list(article.regions)
            assert item["_kabarfeed"]["categories"] == list(article.categories)
            assert article.content_html in item["content_html"]
        return
    parsed = feedparser.parse(data)
    for entry, article in zip(parsed.entries, expected, strict=True):
        assert entry.link == article.url
        assert entry.published_parsed[:6] == article.published.utctimetuple()[:6]
        if fmt == "atom":
            assert entry.updated_parsed[:6] == article.updated.utctimetuple()[:6]
        terms = {t.term for t in entry.tags}
        names = {
            site.taxonomy.region(r).name
            for r in article.regions  # type: ignore[union-attr]
            if site.taxonomy.region(r)
        }
        names |= {
            site.taxonomy.category(c).name
            for c in article.categories  # type: ignore[union-attr]
            if site.taxonomy.category(c)
        }
        slugs = set(article.regions) | set(article.categories)
        assert terms >= (slugs if fmt == "atom" else names)
        assert entry.content[0].value.endswith(article.content_html)
        assert ("advertorial" in terms or "Advertorial" in terms) == article.advertorial


def test_incremental_build_touches_only_affected_feeds(
    sample: tuple[Config, Database],
) -> None:
    config, db = sample
    builder = FeedBuilder(config, db, clock)
    first = builder.build()
    before = _mtimes(config.feeds.output)
    again = builder.build()
    assert (again.written, again.removed, again.pages_written) == (0, 0, 0)
    assert again.unchanged == first.written
    assert _mtimes(config.feeds.output) == before

    fresh = make_article(
        900,
        published=NOW,
        updated=NOW,
        first_seen=NOW,
        regions=("balikpapan",),
        categories=("ekonomi",),
    )
    store(db, [fresh], now=NOW + timedelta(seconds=1))
    report = builder.build()
    stems = {p.rsplit(".", 1)[0] for p in report.written_paths}
    assert stems == {
        "feeds/all",
        "feeds/region/balikpapan",
        "feeds/region/kalimantan-timur",
        "feeds/category/ekonomi",
        "feeds/region/balikpapan/ekonomi",
        "feeds/region/kalimantan-timur/ekonomi",
    }
    assert report.written == 18 and not report.full
    after = _mtimes(config.feeds.output)
    changed = {p for p in after if after[p] != before.get(p)}
    # the feeds written plus the index page (its counts moved); the OPML list is the same
    assert {p.removesuffix(".gz") for p in changed} == set(report.written_paths) | {"index.html"}


def test_edits_and_reclassification_reach_the_right_feeds(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config()
    a = make_article(1, regions=("samarinda",), categories=("hukum",))
    b = make_article(2, regions=("samarinda",), categories=("hukum",))
    store(db, [a, b])
    builder = FeedBuilder(config, db, clock)
    builder.build()
    out = config.feeds.output
    assert (out / "feeds/region/samarinda/hukum.atom").exists()

    moved = replace(a, title="Judul diperbaiki", regions=("bontang",))
    store(db, [moved], now=NOW)
    report = builder.build()
    samarinda = feedparser.parse((out / "feeds/region/samarinda.atom").read_bytes())
    bontang = feedparser.parse((out / "feeds/region/bontang.atom").read_bytes())
    assert [e.title for e in samarinda.entries] == [b.title]
    assert [e.title for e in bontang.entries] == ["Judul diperbaiki"]
    kaltim = feedparser.parse((out / "feeds/region/kalimantan-timur.atom").read_bytes())
    assert [e.title for e in kaltim.entries] == [b.title, "Judul diperbaiki"]
    assert (out / "feeds/region/bontang/hukum.rss").exists()
    assert "feeds/region/bontang/hukum.rss" in report.written_paths
    assert "feeds/region/samarinda/hukum.rss" in report.written_paths
    # a feed that did not exist before: the OPML list is rewritten to hold it
    assert "/feeds/region/bontang/hukum.rss" in (out / "feeds/index.opml").read_text()


def test_pairs_without_articles_are_removed_and_so_are_dropped_regions(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    config = make_config()
    store(db, [make_article(1, regions=("bontang",), categories=("olahraga",))])
    FeedBuilder(config, db, clock).build()
    out = config.feeds.output
    pair = out / "feeds/region/bontang/olahraga.rss"
    assert pair.exists() and not (out / "feeds/region/bontang/budaya.rss").exists()
    (out / "feeds/category/stale.json").write_text("{}")  # left by an old config

    text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    block = text.index('slug = "bontang"')
    start = text.rindex("[[regions]]", 0, block)
    end = text.index("[[regions]]", block)
    (tmp_path / "config.toml").write_text(text[:start] + text[end:], encoding="utf-8")
    config2 = load_config(tmp_path / "config.toml", environ={})
    report = FeedBuilder(config2, db, clock).build()
    assert report.full  # taxonomy changed: everything re-rendered
    assert not pair.exists() and not pair.with_name("olahraga.rss.gz").exists()
    assert not (out / "feeds/region/bontang").exists()
    assert not (out / "feeds/region/bontang.atom").exists()
    assert not (out / "feeds/category/stale.json").exists()
    assert "feeds/region/bontang/olahraga.rss" in report.removed_paths
    # bontang, bontang/olahraga and kalimantan-timur/olahraga (its only article was in
    # bontang) in 3 formats, plus the stale file
    assert {p.rsplit(".", 1)[0] for p in report.removed_paths} == {
        "feeds/region/bontang",
        "feeds/region/bontang/olahraga",
        "feeds/region/kalimantan-timur/olahraga",
        "feeds/category/stale",
    }
    assert report.removed == 3 * 3 + 1
    with db.connect() as conn:
        paths = {r.path for r in conn.execute(feed_builds.select())}
    assert not [p for p in paths if "bontang" in p]


def test_formats_and_items_follow_config(make_config: ConfigFactory, db: Database) -> None:
    config = make_config('[feeds]\nformats = ["atom"]\nitems = 2\n')
    store(db, [make_article(n) for n in range(5)])
    report = FeedBuilder(config, db, clock).build()
    files = _feed_files(config.feeds.output)
    assert files and all(p.endswith(".atom") for p in files)
    assert report.written == len(files)
    parsed = feedparser.parse(files["feeds/all.atom"].read_bytes())
    assert [e.title for e in parsed.entries] == ["Berita nomor 4", "Berita nomor 3"]


def test_state_is_recorded_and_survives_a_deleted_file(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config()
    store(db, [make_article(1)])
    builder = FeedBuilder(config, db, clock)
    builder.build()
    with db.connect() as conn:
        marker = conn.execute(state.select().where(state.c.key == "feeds.last_build")).one()
        rows = list(conn.execute(feed_builds.select()))
    assert json.loads(marker.value)["built_at"] == NOW.isoformat()
    all_rss = next(r for r in rows if r.path == "feeds/all.rss")
    assert all_rss.item_count == 1 and all_rss.item_ids.split(" ")[0].startswith("a000001:")
    victim = config.feeds.output / "feeds/category/pemerintahan.json"
    victim.unlink()
    report = builder.build()
    assert report.written_paths == ("feeds/category/pemerintahan.json",)
    assert victim.exists()


def test_opml_and_index_page(sample: tuple[Config, Database]) -> None:
    config, db = sample
    FeedBuilder(config, db, clock).build()
    out = config.feeds.output
    opml = ET.parse(out / "feeds/index.opml").getroot()
    assert opml.get("version") == "2.0"
    urls = {o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")}
    rss_files = {p for p in _feed_files(out) if p.endswith(".rss")}
    assert urls == {f"{config.site.base_url}/{p}" for p in rss_files}
    body = opml.find("body")
    assert body is not None
    folders = [o.get("text") for o in body if o.get("xmlUrl") is None]
    assert folders == ["Wilayah", "Kategori"]
    kaltim = next(o for o in body[1] if o.get("text") == "Kalimantan Timur")
    assert kaltim[0].get("xmlUrl", "").endswith("/feeds/region/kalimantan-timur.rss")

    html = (out / "index.html").read_text(encoding="utf-8")
    assert '<html lang="id">' in html
    for fmt, media in (
        ("rss", "application/rss+xml"),
        ("atom", "application/atom+xml"),
        ("json", "application/feed+json"),
    ):
        assert (
            f'<link rel="alternate" type="{media}" title="Nusantara Plus (' in html
            and f'href="{config.site.base_url}/feeds/all.{fmt}"' in html
        )
    for relative in _feed_files(out):
        assert f'href="{config.site.base_url}/{relative}"' in html
    assert "Umpan berita Nusantara Plus" in html and "Terakhir diperbarui" in html
    with db.connect() as conn:
        total = len(load_articles(conn))
    assert f"{total} artikel" in html


def test_index_page_in_english(make_config: ConfigFactory, db: Database) -> None:
    config = make_config()
    config = config.model_copy(update={"site": config.site.model_copy(update={"language": "en"})})
    store(db, [make_article(n) for n in range(1200)])
    FeedBuilder(config, db, clock).build()
    html = (config.feeds.output / "index.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in html and "Nusantara Plus news feeds" in html
    assert "1,200 articles" in html and "Last updated" in html


class _Hub(BaseHTTPRequestHandler):
    posts: ClassVar[list[list[tuple[str, str]]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).posts.append(parse_qsl(self.rfile.read(length).decode()))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[tuple[str, type[_Hub]]]:
    handler = type("Hub", (_Hub,), {"posts": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub", handler
    server.shutdown()
    server.server_close()


def test_websub_hub_is_pinged_for_changed_feeds(
    make_config: ConfigFactory,
    db: Database,
    hub: tuple[str, type[_Hub]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, handler = hub
    config = make_config(f'[feeds]\nwebsub_hub = "{url}"\n')
    store(db, [make_article(1)])
    builder = FeedBuilder(config, db, clock)
    report = builder.build()
    pinged = [v for post in handler.posts for k, v in post if k == "hub.url"]
    assert all(("hub.mode", "publish") in post for post in handler.posts)
    assert sorted(pinged) == sorted(f"{config.site.base_url}/{p}" for p in report.written_paths)
    atom = (config.feeds.output / "feeds/all.atom").read_text(encoding="utf-8")
    rss = (config.feeds.output / "feeds/all.rss").read_text(encoding="utf-8")
    assert f'<link href="{url}" rel="hub"/>' in atom
    assert f'<atom:link href="{url}" rel="hub"/>' in rss

    handler.posts.clear()
    builder.build()
    assert handler.posts == []  # nothing changed, nothing pinged

    handler.status = 500
    store(db, [make_article(2)], now=NOW)
    report = builder.build()  # a failing hub is logged, never fatal
    assert report.written > 0 and "WebSub hub" in caplog.text


def test_unreachable_hub_is_not_fatal(make_config: ConfigFactory, db: Database) -> None:
    config = make_config('[feeds]\nwebsub_hub = "http://127.0.0.1:9/hub"\n')
    store(db, [make_article(1)])
    assert FeedBuilder(config, db, clock).build().written > 0


def test_cli_build(sample: tuple[Config, Database], tmp_path: Path) -> None:
    _config, _ = sample
    runner = CliRunner()
    args = ["--config", str(tmp_path / "config.toml"), "build", "--output", str(tmp_path / "o")]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "full build:" in result.output and "feeds written" in result.output
    assert (tmp_path / "o" / "feeds" / "all.rss").exists()
    result = runner.invoke(main, [*args, "--all"])
    assert result.exit_code == 0, result.output
    assert "0 feeds written" in result.output and "removed" in result.output
    assert os.path.isfile(tmp_path / "o" / "index.html")


FORMATS = ("rss", "atom", "json")


def _assert_matches_store(config: Config, db: Database) -> None:
    """Every feed file is the plain feedgen rendering of the store's newest items
    for its selection, exactly the feeds of a full plan have files, and the index
    page shows a full plan's counts."""
    site = FeedSite.from_config(config)
    with db.connect() as conn:
        everything = load_articles(conn)
        newest = queries.newest_published(conn)
    matcher = Matcher(config.taxonomy)
    counts = dict.fromkeys(base_selections(config.taxonomy), 0)
    for article in everything:
        for selection in matcher.selections(article.regions, article.categories):
            counts[selection] = counts.get(selection, 0) + 1
    formats = [f for f in FORMATS if f in config.feeds.formats]
    page = IndexPage(site).render(build_catalog(site, counts, formats), newest)
    assert (config.feeds.output / "index.html").read_bytes() == page
    files = _feed_files(config.feeds.output)
    assert set(files) == {s.path(f) for s in sorted(counts, key=sort_key) for f in formats}
    for relative, path in files.items():
        selection, fmt = _selection(relative), path.suffix[1:]
        expected = _expected(db, config.taxonomy, selection, config.feeds.items)
        data = path.read_bytes()
        assert data == render_whole(site, selection, expected, [fmt])[fmt], relative
        assert gzip.decompress(path.with_name(path.name + ".gz").read_bytes()) == data


@pytest.mark.parametrize("batch", [feeds_build.BATCH, 2])
def test_incremental_builds_equal_full_renders_after_every_kind_of_change(
    make_config: ConfigFactory, db: Database, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # batch 2: feeds rendered over several article-loading rounds
    monkeypatch.setattr(feeds_build, "BATCH", batch)
    config = make_config("[feeds]\nitems = 2\n")
    old = [make_article(n, regions=("samarinda",), categories=("hukum",)) for n in range(1, 5)]
    old += [make_article(n, regions=("bontang",), categories=("ekonomi",)) for n in range(5, 8)]
    store(db, old)
    builder = FeedBuilder(config, db, clock)
    assert builder.build().full
    _assert_matches_store(config, db)

    store(db, [make_article(20, regions=("samarinda",), categories=("ekonomi",))])
    report = builder.build()
    # all, 2 regions, category, 2 pairs (the feeds of articles stamped in the
    # LOOKBACK before the last build are rendered again, to the same bytes)
    assert not report.full and len(report.written_paths) == 6 * 3
    _assert_matches_store(config, db)

    # an edit that only moves the oldest samarinda article to the top of its feeds
    edited = replace(old[0], title="Ralat", published=BASE + timedelta(minutes=30))
    store(db, [edited], now=NOW)
    assert not builder.build().full
    _assert_matches_store(config, db)

    # a reclassification behind the two newest items: only the counts change there
    store(db, [replace(old[1], regions=("balikpapan",))], now=NOW + timedelta(minutes=1))
    report = builder.build()
    assert "feeds/region/samarinda.rss" not in report.written_paths
    assert "feeds/region/balikpapan/hukum.rss" in report.written_paths
    _assert_matches_store(config, db)

    # a deleted article (no store API deletes yet; an admin might): gone from its feeds
    with db.begin() as conn:
        for table in (article_regions, article_categories, article_keys):
            conn.execute(delete(table).where(table.c.article_id == old[6].id))
        conn.execute(delete(articles).where(articles.c.id == old[6].id))
    report = builder.build()
    assert "feeds/region/bontang.atom" in report.written_paths
    _assert_matches_store(config, db)

    # the last article of a pair moves away: the pair's files are removed
    store(db, [replace(old[4], categories=("hukum",))], now=NOW + timedelta(minutes=2))
    store(db, [replace(old[5], categories=("hukum",))], now=NOW + timedelta(minutes=2))
    report = builder.build()
    assert "feeds/region/bontang/ekonomi.rss" in report.removed_paths
    _assert_matches_store(config, db)
    assert builder.build().written == 0


def _insert_in_front(config: Config, db: Database) -> tuple[FeedBuilder, Article]:
    """A built store of four samarinda articles, and a newer one stored since."""
    store(db, [make_article(n, regions=("samarinda",), categories=("hukum",)) for n in range(1, 5)])
    builder = FeedBuilder(config, db, clock)
    builder.build()
    newer = make_article(9, regions=("samarinda",), categories=("hukum",))
    store(db, [newer], now=NOW + timedelta(minutes=1))
    return builder, newer


def test_an_article_deleted_while_building_is_left_out_then_replanned(
    make_config: ConfigFactory, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted between choosing a feed's items and loading them (no store API deletes; an admin
    might): the feeds are rendered without it, and the next build plans anew."""
    config = make_config("[feeds]\nitems = 3\n")
    builder, newer = _insert_in_front(config, db)
    real = FeedBuilder._load

    def delete_first(self: FeedBuilder, *args: object) -> object:
        with db.begin() as conn:
            for table in (article_regions, article_categories, article_keys):
                conn.execute(delete(table).where(table.c.article_id == newer.id))
            conn.execute(delete(articles).where(articles.c.id == newer.id))
        monkeypatch.setattr(FeedBuilder, "_load", real)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FeedBuilder, "_load", delete_first)
    builder.build()
    shown = feedparser.parse((config.feeds.output / "feeds/all.atom").read_bytes())
    assert newer.title not in {e.title for e in shown.entries}
    builder.build()
    _assert_matches_store(config, db)


def test_temporary_files_a_crashed_build_left_are_removed(
    make_config: ConfigFactory, db: Database
) -> None:
    config = make_config("[feeds]\nitems = 3\n")
    builder, _ = _insert_in_front(config, db)
    leftover = config.feeds.output / "feeds" / "region" / f"{feeds_build.writer.TEMP_PREFIX}0f.tmp"
    leftover.write_bytes(b"half a feed")
    builder.build()
    assert not leftover.exists()
    assert not list(config.feeds.output.rglob(".kf-*"))


@pytest.mark.parametrize("seed", range(3))
def test_random_incremental_builds_equal_full_renders(
    make_config: ConfigFactory, db: Database, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random rounds of new articles (some backdated, some updated later than
    newer ones, so an older item can date its feed), edits and reclassifications:
    after every incremental build each file is what a whole render of the
    store gives."""
    rng = random.Random(seed)
    config = make_config("[feeds]\nitems = 3\n")
    regions, categories = ("samarinda", "bontang", "balikpapan"), ("hukum", "ekonomi")

    def article(n: int) -> Article:
        when = BASE + timedelta(minutes=n if rng.random() < 0.8 else rng.randrange(n))
        return make_article(
            n,
            regions=(rng.choice(regions),),
            categories=(rng.choice(categories),),
            published=when,
            updated=when + timedelta(minutes=rng.choice((0, 0, 500))),
            first_seen=when,
        )

    known = [article(n) for n in range(1, 9)]
    store(db, known)
    builder = FeedBuilder(config, db, clock)
    builder.build()
    for number in range(8):
        fresh = [article(len(known) + 1 + i) for i in range(rng.randint(1, 3))]
        if rng.random() < 0.4:
            old = rng.choice(known)
            if rng.random() < 0.5:
                fresh.append(replace(old, title=f"{old.title} (ralat {number})"))
            else:
                fresh.append(replace(old, regions=(rng.choice(regions),)))
        known += [a for a in fresh if a.id not in {k.id for k in known}]
        store(db, fresh, now=NOW + timedelta(minutes=number + 1))
        builder.build()
        _assert_matches_store(config, db)


def test_recorded_items_read_both_formats_written_so_far() -> None:
    tokens = ("a000001:0f0f", "a000002:1e1e")
    assert queries._tokens_of("a000001:0f0f a000002:1e1e") == tokens
    assert queries._tokens_of('["a000001:0f0f", "a000002:1e1e"]') == tokens
    assert queries._tokens_of("") == () and queries._tokens_of(None) == ()


class _Stop(Exception):
    """Where a test stops a build, as a crash would."""


def _stop_at(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Make the next build stop at ``step``, once."""
    if step.startswith("writing"):  # after some documents were written
        real_write = feeds_build.writer.write_if_changed
        calls = {"n": 0}

        def write(path: Path, data: bytes, **kw: bool) -> bool:
            calls["n"] += 1
            if calls["n"] == {"writing": 4, "writing_opml": 10**9}[step] or (
                step == "writing_opml" and path.name == "index.opml"
            ):
                monkeypatch.setattr(feeds_build.writer, "write_if_changed", real_write)
                raise _Stop(step)
            return real_write(path, data, **kw)

        monkeypatch.setattr(feeds_build.writer, "write_if_changed", write)
        return
    owner, name = {
        "remove": (feeds_build.writer, "remove_all"),
        "pages": (FeedBuilder, "_pages"),
        "ping": (feeds_build.websub, "ping"),
        "marker": (queries, "save_marker"),
    }[step]
    real = getattr(owner, name)

    def stop(*args: object, **kw: object) -> object:
        monkeypatch.setattr(owner, name, real)
        raise _Stop(step)

    monkeypatch.setattr(owner, name, stop)


@pytest.mark.parametrize("step", ["writing", "remove", "pages", "writing_opml", "ping", "marker"])
def test_a_build_stopped_between_any_two_steps_is_completed_by_the_next(
    make_config: ConfigFactory,
    db: Database,
    hub: tuple[str, type[_Hub]],
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    """Feeds written, feeds removed, index page, OPML file, WebSub ping,
    marker: a build stopped before any of them leaves valid files, and the
    next build brings the folder to what a full build gives, pinging the hub
    for the feeds whose items moved."""
    url, handler = hub
    config = make_config(f'[feeds]\nitems = 2\nwebsub_hub = "{url}"\n')
    old = [make_article(n, regions=("samarinda",), categories=("hukum",)) for n in range(1, 4)]
    old.append(make_article(4, regions=("bontang",), categories=("ekonomi",)))
    store(db, old)
    builder = FeedBuilder(config, db, clock)
    builder.build()
    # a new article, and the only bontang x ekonomi article moves: a pair goes
    store(db, [make_article(9, regions=("samarinda",), categories=("hukum",))], now=NOW)
    store(db, [replace(old[3], categories=("hukum",))], now=NOW)
    handler.posts.clear()
    _stop_at(monkeypatch, step)
    with pytest.raises(_Stop):
        builder.build()
    site = FeedSite.from_config(config)
    for relative, path in _feed_files(config.feeds.output).items():  # every file stays valid
        checks = {"rss": check_rss, "atom": check_atom, "json": check_json}
        checks[path.suffix[1:]](path.read_bytes(), site.url(relative))
    report = builder.build()
    assert not report.full
    _assert_matches_store(config, db)
    assert not (config.feeds.output / "feeds/region/bontang/ekonomi.rss").exists()
    pinged = {v for post in handler.posts for k, v in post if k == "hub.url"}
    assert f"{config.site.base_url}/feeds/region/samarinda/hukum.atom" in pinged
    assert builder.build().written == 0


@pytest.mark.parametrize(
    "change",
    ["items = 2\n", 'formats = ["atom", "json"]\n', "full_content = false\n"],
)
def test_a_config_change_of_the_feeds_rebuilds_them_all(
    make_config: ConfigFactory, db: Database, change: str
) -> None:
    store(db, [make_article(n, regions=("samarinda",), categories=("hukum",)) for n in range(5)])
    FeedBuilder(make_config(), db, clock).build()
    before = _mtimes(make_config().feeds.output)
    config = make_config(f"[feeds]\n{change}")
    report = FeedBuilder(config, db, clock).build()
    assert report.full
    _assert_matches_store(config, db)
    after = _mtimes(config.feeds.output)
    assert {p.removesuffix(".gz") for p in after if after[p] != before.get(p)} >= set(
        report.written_paths
    )
    if "formats" in change:
        assert not list(config.feeds.output.rglob("*.rss")) and report.removed > 0
    if "full_content" in change:
        item = json.loads((config.feeds.output / "feeds/all.json").read_bytes())["items"][0]
        assert "content_html" not in item and "content_text" in item
    assert FeedBuilder(config, db, clock).build().written == 0


def test_a_category_taken_out_of_the_config_takes_its_feeds_along(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    config = make_config()
    store(db, [make_article(1, regions=("bontang",), categories=("olahraga",))])
    FeedBuilder(config, db, clock).build()
    text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    start = text.index('[[categories]]\nslug = "olahraga"')
    end = text.index("[[categories]]", start + 1)
    (tmp_path / "config.toml").write_text(text[:start] + text[end:], encoding="utf-8")
    config2 = load_config(tmp_path / "config.toml", environ={})
    report = FeedBuilder(config2, db, clock).build()
    assert report.full
    assert {p.rsplit(".", 1)[0] for p in report.removed_paths} == {
        "feeds/category/olahraga",
        "feeds/region/bontang/olahraga",
        "feeds/region/kalimantan-timur/olahraga",
    }
    _assert_matches_store(config2, db)


def test_a_correction_that_keeps_the_revision_reaches_the_feeds(
    make_config: ConfigFactory, db: Database
) -> None:
    """An editor's correction (store.overrides) rewrites the classification
    and the advertorial flag and moves the change column, not the revision:
    entries the builder kept from the last build must not serve it."""
    config = make_config()
    store(db, [make_article(n, regions=("samarinda",), categories=("hukum",)) for n in (1, 2)])
    builder = FeedBuilder(config, db, clock)
    builder.build()
    target = make_article(2).id
    with db.begin() as conn:
        conn.execute(
            articles.update()
            .where(articles.c.id == target)
            .values(advertorial=True, changed_at=NOW + timedelta(hours=1))
        )
        conn.execute(
            article_regions.update()
            .where(article_regions.c.article_id == target)
            .values(region="bontang")
        )
    report = builder.build()
    assert "feeds/region/samarinda.atom" in report.written_paths
    assert "feeds/region/bontang.atom" in report.written_paths
    _assert_matches_store(config, db)
    shown = json.loads((config.feeds.output / "feeds/all.json").read_bytes())["items"]
    assert [i["_kabarfeed"]["advertorial"] for i in shown] == [True, False]


def test_an_unpublished_article_leaves_every_feed_at_the_next_build(
    make_config: ConfigFactory, db: Database
) -> None:
    """Unpublishing (the console's, the push API's DELETE) buries the article:
    its row goes, a tombstone stays. The next incremental build takes it out
    of every feed and removes the pair feed it was the only article of."""
    config = make_config()
    kept = make_article(1, regions=("samarinda",), categories=("hukum",))
    gone = make_article(2, regions=("bontang",), categories=("olahraga",))
    store(db, [kept, gone])
    builder = FeedBuilder(config, db, clock)
    builder.build()
    with db.begin() as conn:
        assert pushapi.bury(conn, gone.id, now=NOW)
    report = builder.build()
    assert not report.full
    assert "feeds/region/bontang/olahraga.atom" in report.removed_paths
    assert "feeds/all.atom" in report.written_paths
    _assert_matches_store(config, db)
    titles = {
        e.title
        for e in feedparser.parse((config.feeds.output / "feeds/all.atom").read_bytes()).entries
    }
    assert titles == {kept.title}


def test_the_first_articles_after_a_build_of_an_empty_store_reach_their_feeds(
    make_config: ConfigFactory, db: Database
) -> None:
    """The marker of an empty store has no newest change: the next build
    reads every article as changed."""
    config = make_config()
    builder = FeedBuilder(config, db, clock)
    assert builder.build().full
    store(db, [make_article(1, regions=("samarinda",), categories=("hukum",))])
    report = builder.build()
    assert not report.full and "feeds/region/samarinda/hukum.rss" in report.written_paths
    _assert_matches_store(config, db)
