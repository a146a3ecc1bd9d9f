"""Ingestion end to end: real files, a real local HTTP server, a real database."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kabarfeed import integrations
from kabarfeed.config import Config
from kabarfeed.ingest import Ingestor, retry_delay
from kabarfeed.store import Database, open_database
from kabarfeed.store import articles as article_store
from kabarfeed.store import sources as source_store
from kabarfeed.store.schema import articles
from tests.conftest import REALWORLD_FEEDS, REPO, SEED_FILE, ConfigFactory
from tests.feedserver import serve

SEED = SEED_FILE


class Clock:
    """A settable clock (time only moves when the test says so)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def rss(*items: tuple[str, str, str], title: str = "Umpan") -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>Sun, 16 Nov 2025 10:00:00 +0800</pubDate><description>{d}</description></item>"
        for t, link, d in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://u.example/</link>{body}</channel></rss>"
    ).encode()


def directory_source(tmp_path: Path, name: str = "redaksi") -> tuple[Path, str]:
    folder = tmp_path / name
    folder.mkdir()
    return folder, f'[[sources]]\nname = "{name}"\nkind = "directory"\npath = "{name}"\n'


def feed_source(name: str, url: str, extra: str = "") -> str:
    return f'[[sources]]\nname = "{name}"\nkind = "feed"\nurl = "{url}"\n{extra}\n'


def ingestor(config: Config, db: Database, clock: Clock) -> Ingestor:
    return Ingestor(config, db, clock, rand=lambda: 0.5)


@pytest.fixture
def clock(fixed_now: datetime) -> Clock:
    return Clock(fixed_now)


def test_seed_article_is_ingested_tagged_and_clean(
    tmp_path: Path, make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    folder, toml = directory_source(tmp_path)
    shutil.copy(SEED, folder)
    config = make_config(toml)
    report = ingestor(config, db, clock).run()
    assert report.summary() == ("sources ok 1, failed 0; articles new 1, updated 0, unchanged 0")
    with db.connect() as conn:
        [article] = article_store.load_articles(conn)
    assert article.title.startswith("Jelang Akhir Tahun 2025, Pemerintah Balikpapan")
    assert article.author == "Redaktur"
    assert article.published == datetime(2025, 11, 16, 6, 7, tzinfo=UTC)
    assert article.local_tz == "Asia/Jakarta"
    assert article.regions == ("balikpapan", "kalimantan-timur")
    assert "pemerintahan" in article.categories
    assert article.advertorial
    assert "Tinggalkan Komentar" not in article.content_html
    assert "(Nusplus)" not in article.content_html
    assert article.url.startswith("https://news.example.id/")


def test_examples_and_sample_feed_ingest_and_rerun_is_idempotent(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    config = make_config(
        f'[[sources]]\nname = "redaksi"\nkind = "directory"\n'
        f'path = "{REPO / "examples/articles"}"\n'
        + feed_source(
            "kaltim", (REPO / "examples/feeds/kaltim.xml").as_uri(), 'region = "kalimantan-timur"'
        )
    )
    first = ingestor(config, db, clock).run()
    assert first.failed == 0 and first.total("new") >= 10
    second = ingestor(config, db, clock).run()
    assert second.total("new") == 0 and second.total("updated") == 0
    with db.connect() as conn:
        every = article_store.load_articles(conn)
        provinces = {r for a in every for r in a.regions if "-" in r}
        assert len(every) == first.total("new")
        assert {"kalimantan-timur", "jawa-timur"} <= provinces
        assert any(a.advertorial for a in every)
        bontang = next(a for a in every if "Bontang Siapkan" in a.title)
    assert bontang.regions == ("bontang", "kalimantan-timur")
    assert "<script" not in bontang.content_html
    assert bontang.image and bontang.image.url.endswith("bontang-mangrove.jpg")
    assert bontang.image.type == "image/jpeg"


def test_feed_conditional_get_failures_and_backoff(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    with serve() as server:
        server.add(
            "/ok.xml", body=rss(("Banjir di Samarinda", "https://u.example/1", "air")), etag='"v1"'
        )
        server.add("/down.xml", status=500, body=b"oops")
        config = make_config(
            feed_source("baik", server.url("/ok.xml"))
            + feed_source("rusak", server.url("/down.xml"))
        )
        run = ingestor(config, db, clock)
        report = run.run()
        assert [o.ok for o in report.outcomes] == [True, False]
        assert not report.all_failed
        assert "HTTP 500" in (report.outcomes[1].error or "")
        again = run.run()
        assert again.outcomes[0].new == 0
        assert server.hits("/ok.xml")[-1].headers.get("If-None-Match") == '"v1"'
    with db.connect() as conn:
        ok = source_store.get_source(conn, "baik")
        bad = source_store.get_source(conn, "rusak")
        assert article_store.count_articles(conn) == 1
    assert ok and ok.etag == '"v1"' and ok.error_count == 0 and ok.last_error is None
    assert bad and bad.error_count == 2 and bad.last_error and "500" in bad.last_error
    assert bad.next_fetch_at and bad.next_fetch_at - clock.now == timedelta(minutes=10)


def test_every_source_failing_is_reported(
    make_config: ConfigFactory, db: Database, clock: Clock, tmp_path: Path
) -> None:
    config = make_config(feed_source("hilang", (tmp_path / "missing.xml").as_uri()))
    report = ingestor(config, db, clock).run()
    assert report.all_failed
    assert "missing.xml" in (report.outcomes[0].error or "")


def test_broken_file_is_recorded_and_the_rest_is_kept(
    tmp_path: Path, make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    folder, toml = directory_source(tmp_path)
    (folder / "baik.md").write_text(
        "---\ntitle: Pasar Murah di Bontang\ndate: 2025-11-16T08:00:00+08:00\n---\nIsi berita.\n",
        encoding="utf-8",
    )
    (folder / "rusak.json").write_text("{not json", encoding="utf-8")
    config = make_config(toml)
    report = ingestor(config, db, clock).run()
    assert report.outcomes[0].ok and report.outcomes[0].new == 1
    with db.connect() as conn:
        state = source_store.get_source(conn, "redaksi")
    assert state and state.last_error and "rusak.json" in state.last_error


def test_edit_updates_in_place_and_copy_from_other_source_is_deduped(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    with serve() as server:
        item = ("Gubernur Resmikan Jembatan", "https://u.example/jembatan", "Panjang 240 meter.")
        server.add("/a.xml", body=rss(item))
        copy = (
            "Gubernur Resmikan Jembatan",
            "https://mirror.example/jembatan",
            "Panjang 240 meter.",
        )
        server.add("/b.xml", body=rss(copy))
        config = make_config(
            feed_source("a", server.url("/a.xml")) + feed_source("b", server.url("/b.xml"))
        )
        run = ingestor(config, db, clock)
        assert run.run().total("new") == 1
        with db.connect() as conn:
            [before] = article_store.load_articles(conn)
        clock.now += timedelta(hours=1)
        server.add("/a.xml", body=rss((item[0] + " Baru", item[1], "Panjang 250 meter.")))
        report = run.run()
    assert report.outcomes[0].updated == 1
    with db.connect() as conn:
        [after] = article_store.load_articles(conn)
        total = conn.execute(select(func.count()).select_from(articles)).scalar_one()
    assert total == 1
    assert after.id == before.id and after.first_seen == before.first_seen
    assert after.title.endswith("Baru") and "250" in after.content_html
    assert after.updated == clock.now


def test_store_survives_reopen(
    tmp_path: Path, make_config: ConfigFactory, db_url: str, clock: Clock
) -> None:
    folder, toml = directory_source(tmp_path)
    shutil.copy(
        REPO
        / "examples/articles"
        / sorted(p.name for p in (REPO / "examples/articles").glob("*.md"))[0],
        folder,
    )
    config = make_config(toml)
    first = open_database(db_url)
    ingestor(config, first, clock).run()
    first.dispose()
    second = open_database(db_url)
    with second.connect() as conn:
        assert article_store.count_articles(conn) == 1
    second.dispose()


def test_retry_delay_grows_and_caps() -> None:
    def mid() -> float:
        return 0.5

    base, cap = timedelta(minutes=5), timedelta(hours=1)
    delays = [retry_delay(n, base=base, maximum=cap, rand=mid) for n in (1, 2, 3, 10)]
    assert delays == [timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20), cap]


def test_dateline_in_feed_content_decides_the_region(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    lead = "KABARKALSEL, BANJARBARU – Warga Kota Balikpapan dan Samarinda ikut hadir."
    with serve() as server:
        server.add("/d.xml", body=rss(("Pameran di Kalsel", "https://u.example/d", lead)))
        config = make_config(feed_source("d", server.url("/d.xml"), 'region = "jawa-timur"'))
        ingestor(config, db, clock).run()
    with db.connect() as conn:
        [article] = article_store.load_articles(conn)
    assert article.regions == ("banjarbaru", "kalimantan-selatan")


REALWORLD = REALWORLD_FEEDS


def test_realworld_publisher_feeds_ingest_into_the_store(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    """Every real publisher sample goes through the whole pipeline in one run."""
    files = sorted(p for p in REALWORLD.iterdir() if p.suffix in {".xml", ".rss", ".atom"})
    with serve() as server:
        toml = ""
        for i, path in enumerate(files):
            server.add(f"/{path.name}", body=path.read_bytes(), content_type=None, etag=f'"{i}"')
            toml += feed_source(f"real-{i}", server.url(f"/{path.name}"))
        config = make_config(toml)
        run = ingestor(config, db, clock)
        report = run.run()
        again = run.run()
    assert report.failed == 0, [o.error for o in report.outcomes if not o.ok]
    assert all(o.new > 0 for o in report.outcomes), report.summary()
    assert again.total("new") == 0 and again.total("updated") == 0
    with db.connect() as conn:
        stored = article_store.load_articles(conn)
    assert len(stored) == report.total("new") >= 400
    for article in stored:
        assert article.published.tzinfo is not None
        assert article.url.startswith(("http://", "https://"))
        assert article.title and "\n" not in article.title and "\t" not in article.title
        assert "<script" not in article.content_html.lower()
        assert "javascript:" not in article.content_html.lower()
        assert "â€" not in article.title


def test_dates_without_zone_are_read_in_the_article_region_zone(
    tmp_path: Path, make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    """19:00 in a Malang article is 19:00 WIB, although the site zone is WITA;
    a date with an explicit offset is kept as written."""
    folder, toml = directory_source(tmp_path)
    (folder / "malang.md").write_text(
        "---\ntitle: Festival di Malang\ndate: 2025-11-16 19:00\nregions: [malang]\n---\nIsi.\n",
        encoding="utf-8",
    )
    (folder / "surabaya.md").write_text(
        "---\ntitle: Rapat di Surabaya\ndate: 2025-11-16T19:00:00+08:00\n"
        "regions: [surabaya]\n---\nIsi.\n",
        encoding="utf-8",
    )
    (folder / "papua.json").write_text(
        '{"title": "Kabar Jayapura", "date": "2025-11-16", "regions": ["jayapura"], "body": "x"}',
        encoding="utf-8",
    )
    ingestor(make_config(toml), db, clock).run()
    with db.connect() as conn:
        found = {a.title: a for a in article_store.load_articles(conn)}
    malang = found["Festival di Malang"]
    assert malang.published == datetime(2025, 11, 16, 12, 0, tzinfo=UTC)
    assert malang.local_tz == "Asia/Jakarta"
    assert found["Rapat di Surabaya"].published == datetime(2025, 11, 16, 11, 0, tzinfo=UTC)
    assert found["Kabar Jayapura"].published == datetime(2025, 11, 15, 15, 0, tzinfo=UTC)
    assert found["Kabar Jayapura"].local_tz == "Asia/Jayapura"


# ---------------------------------------------------------------- issue 22 §3


def test_a_bad_item_is_rejected_with_its_reason_and_the_rest_is_stored(
    tmp_path: Path, make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    folder, toml = directory_source(tmp_path)
    good = {"title": "Pasar Murah di Bontang", "body": "Isi berita.", "date": "2025-11-16"}
    (folder / "baik.json").write_text(json.dumps(good), encoding="utf-8")
    (folder / "surrogat.json").write_text(
        '{"title": "Banjir", "body": "Isi.", "summary": "\\udfff"}', encoding="utf-8"
    )
    (folder / "nul.json").write_text(
        '{"title": "Longsor", "body": "Isi.", "guid": "a\\u0000b"}', encoding="utf-8"
    )
    doc = rss(("Jembatan Baru", "https://u.example/1", "isi")).replace(
        b"</channel>",
        b"<item><title>Rusak</title><link>https://u.example/2</link>"
        b"<pubDate>Fri, 31 Dec 9999 23:59:59 -1200</pubDate></item></channel>",
    )
    with serve() as server:
        server.add("/rss.xml", body=doc)
        config = make_config(toml + feed_source("umpan", server.url("/rss.xml")))
        report = ingestor(config, db, clock).run()
    assert [(o.ok, o.new) for o in report.outcomes] == [(True, 1), (True, 1)]
    with db.connect() as conn:
        titles = {a.title for a in article_store.load_articles(conn)}
        folder_state = source_store.get_source(conn, "redaksi")
        feed_state = source_store.get_source(conn, "umpan")
    assert titles == {"Pasar Murah di Bontang", "Jembatan Baru"}
    assert folder_state and folder_state.error_count == 0 and folder_state.last_error
    assert "surrogat.json: 'summary' contains a lone surrogate U+DFFF" in folder_state.last_error
    assert "nul.json" in folder_state.last_error and "NUL" in folder_state.last_error
    assert feed_state and feed_state.last_error and feed_state.error_count == 0
    assert "'Fri, 31 Dec 9999 23:59:59 -1200' is out of range" in feed_state.last_error


def test_an_undated_article_keeps_the_date_of_its_first_ingest(
    tmp_path: Path, make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    folder, toml = directory_source(tmp_path)
    (folder / "tanpa-tanggal.md").write_text("# Rapat Desa\n\nIsi berita.\n", encoding="utf-8")
    (folder / "masa-depan.md").write_text(
        "---\ntitle: Dari Masa Depan\ndate: 2099-01-01T00:00:00+08:00\n---\nIsi.\n",
        encoding="utf-8",
    )
    config = make_config(toml)
    first_seen = clock.now
    assert ingestor(config, db, clock).run().total("new") == 2
    integrations.build_feeds(config, db, clock)
    feeds = {p: p.read_bytes() for p in config.feeds.output.rglob("*") if p.is_file()}
    with db.connect() as conn:
        changed = article_store.last_change(conn)
    clock.now += timedelta(hours=3)
    again = ingestor(config, db, clock).run()
    assert (again.total("new"), again.total("updated"), again.total("unchanged")) == (0, 0, 2)
    integrations.build_feeds(config, db, clock)
    assert feeds and feeds == {
        p: p.read_bytes() for p in config.feeds.output.rglob("*") if p.is_file()
    }  # no feed rewritten: same bytes, same ETags
    with db.connect() as conn:
        stored = article_store.load_articles(conn)
        assert article_store.last_change(conn) == changed
    assert {a.published for a in stored} == {first_seen}
    assert {a.updated for a in stored} == {first_seen}
    # a real edit is stored, and the date given at first sight still stands
    (folder / "tanpa-tanggal.md").write_text("# Rapat Desa\n\nIsi yang diubah.\n", encoding="utf-8")
    clock.now += timedelta(hours=1)
    edited = ingestor(config, db, clock).run()
    assert edited.total("updated") == 1
    with db.connect() as conn:
        [article] = [a for a in article_store.load_articles(conn) if a.title == "Rapat Desa"]
    assert article.published == first_seen and "diubah" in article.content_html


def test_fields_are_capped_at_ingest_with_a_warning_on_the_source(
    tmp_path: Path, make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    folder, toml = directory_source(tmp_path)
    body = "<p>" + "kata <b>tebal</b> " * 20_000 + "</p>"
    item = {
        "title": "Judul " * 200_000,
        "author": "Penulis " * 1000,
        "tags": [f"tag{i}" for i in range(500)],
        "summary": "ringkas " * 5000,
        "content_html": body,
        "date": "2025-11-16T08:00:00+08:00",
    }
    (folder / "besar.json").write_text(json.dumps(item), encoding="utf-8")
    config = make_config(
        toml + "[ingest]\nmax_title_chars = 100\nmax_body_chars = 5000\nmax_tags = 10\n"
    )
    report = ingestor(config, db, clock).run()
    assert report.outcomes[0].new == 1
    with db.connect() as conn:
        [article] = article_store.load_articles(conn)
        state = source_store.get_source(conn, "redaksi")
    assert len(article.title) <= 100 and article.title.startswith("Judul Judul")
    assert article.author and len(article.author) <= 200
    assert len(article.content_html) <= 5000
    assert article.content_html.endswith("…</p>")  # cut inside the text, markup closed
    assert article.content_html.count("<b>") == article.content_html.count("</b>")
    assert state and state.error_count == 0 and state.last_error
    for cut in (
        "title cut to 100",
        "author cut to 200",
        "body cut to 5000",
        "tags: kept the first 10",
        "summary cut to 10000",
    ):
        assert cut in state.last_error


# ---------------------------------------------------------------- issue 22 §5


def test_a_slow_upstream_fails_by_its_deadline_and_the_other_source_is_stored(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    with serve() as server:
        server.add("/slow.xml", body=rss(("Lambat", "https://u.example/lambat", "isi")))
        for hop, target in (("/s1", "/s2"), ("/s2", "/s3"), ("/s3", "/slow.xml")):
            server.redirect(hop, target).delay = 3  # each hop well within the deadline
        server.add("/fast.xml", body=rss(("Cepat", "https://u.example/cepat", "isi")))
        config = make_config(
            '[ingest]\ntimeout = "4s"\n'
            + feed_source("lambat", server.url("/s1"))
            + feed_source("cepat", server.url("/fast.xml"))
        )
        report = ingestor(config, db, clock).run()
        assert server.hits("/slow.xml") == []
    slow, fast = report.outcomes
    assert not slow.ok and "timed out after 4s" in (slow.error or "")
    assert fast.ok and fast.new == 1
    with db.connect() as conn:
        state = source_store.get_source(conn, "lambat")
        [stored] = article_store.load_articles(conn)
    assert state and state.error_count == 1 and "timed out" in (state.last_error or "")
    assert stored.title == "Cepat"


def test_sources_are_fetched_concurrently(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    """The first source answers only once the second has been asked: read one
    after another, the first would time out waiting."""
    second_asked = threading.Event()
    with serve() as server:
        server.add(
            "/first.xml",
            body=rss(("Pertama", "https://u.example/1", "isi")),
            hold=second_asked,
        )
        server.add(
            "/second.xml", body=rss(("Kedua", "https://u.example/2", "isi")), hit=second_asked
        )
        config = make_config(
            '[ingest]\ntimeout = "5s"\nconcurrency = 2\n'
            + feed_source("pertama", server.url("/first.xml"))
            + feed_source("kedua", server.url("/second.xml"))
        )
        report = ingestor(config, db, clock).run()
    assert [(o.source, o.ok, o.new) for o in report.outcomes] == [
        ("pertama", True, 1),
        ("kedua", True, 1),
    ]


def test_no_more_sources_than_the_bound_are_fetched_at_once(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    """The first source waits for the second to be asked; with one slot the
    second is asked only after the first gave up at its deadline."""
    second_asked = threading.Event()
    with serve() as server:
        server.add("/1.xml", body=rss(("Satu", "https://u.example/1", "isi")), hold=second_asked)
        server.add("/2.xml", body=rss(("Dua", "https://u.example/2", "isi")), hit=second_asked)
        config = make_config(
            '[ingest]\ntimeout = "4s"\nconcurrency = 1\n'
            + "".join(feed_source(f"s{n}", server.url(f"/{n}.xml")) for n in (1, 2))
        )
        report = ingestor(config, db, clock).run()
    assert [o.ok for o in report.outcomes] == [False, True]
    assert "timed out" in (report.outcomes[0].error or "")


def test_an_item_whose_guid_is_another_items_link_gets_its_own_id(
    make_config: ConfigFactory, db: Database, clock: Clock
) -> None:
    """Ids come from the guid or the link: a crafted pair asking for the same id
    must not fail the batch (a unique-key error would cost every item)."""
    doc = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Satu</title><guid>https://u.example/a</guid>"
        b"<link>https://u.example/b</link><description>isi satu</description></item>"
        b"<item><title>Dua</title><link>https://u.example/a</link>"
        b"<description>isi dua</description></item></channel></rss>"
    )
    with serve() as server:
        server.add("/f.xml", body=doc)
        config = make_config(feed_source("f", server.url("/f.xml")))
        report = ingestor(config, db, clock).run()
        again = ingestor(config, db, clock).run()
    assert report.outcomes[0].ok and report.outcomes[0].new == 2
    assert again.total("new") == 0 and again.total("updated") == 0
    with db.connect() as conn:
        ids = {a.title: a.id for a in article_store.load_articles(conn)}
    assert set(ids) == {"Satu", "Dua"} and ids["Satu"] != ids["Dua"]
