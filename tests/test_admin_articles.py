"""Articles in the console: corrections of the classification that change the
feeds and outlive a re-ingest, unpublish (gone from feeds, not brought back
by a re-ingest) and republish, all audited; the pages around them."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from admin_support import add_account, csrf_of, log_in
from conftest import SEED_FILE, ConfigFactory
from kabarfeed.admin import articles as use
from kabarfeed.admin import audit
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor, AuditFilter
from kabarfeed.config import Config
from kabarfeed.errors import InputError
from kabarfeed.feeds import cluster
from kabarfeed.ingest import Ingestor
from kabarfeed.store import Database
from kabarfeed.web import create_app

ACTOR = Actor.console("redaktur@example.id")
NOW = datetime.now(UTC).replace(microsecond=0)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def site(make_config: ConfigFactory, tmp_path: Path) -> tuple[Config, Path]:
    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    config = make_config(
        f'[[sources]]\nname = "redaksi"\nkind = "directory"\npath = "{folder}"\n'
        f'[feeds]\noutput = "{tmp_path / "public"}"\nformats = ["rss"]\n'
        f'[maildir]\npath = "{tmp_path / "mail"}"\n'
    )
    return config, folder


def _ingest(config: Config, db: Database, clock: Clock) -> None:
    clock.now += timedelta(minutes=1)
    Ingestor(config, db, clock).run_source(config.sources[0])


def _build(config: Config, db: Database, clock: Clock) -> None:
    clock.now += timedelta(minutes=1)
    cluster.build(config, db, clock)


def _feed(config: Config, path: str) -> str:
    file = config.feeds.output / path
    return file.read_text(encoding="utf-8") if file.exists() else ""


def _only(db: Database) -> use.ArticleLine:
    [line] = use.search(db, use.ArticleQuery())
    return line


def test_correction_changes_feeds_and_survives_reingest(
    site: tuple[Config, Path], db: Database
) -> None:
    config, folder = site
    clock = Clock()
    _ingest(config, db, clock)
    article = _only(db)
    assert "balikpapan" in article.regions and not article.corrected
    _build(config, db, clock)
    title = "Jelang Akhir Tahun 2025"
    assert title in _feed(config, "feeds/region/balikpapan.rss")
    assert title not in _feed(config, "feeds/region/jayapura.rss")

    clock.now += timedelta(minutes=1)
    use.correct(
        db,
        config,
        article.id,
        ACTOR,
        regions=("jayapura",),
        categories=None,
        advertorial=False,
        now=clock.now,
    )
    corrected = _only(db)
    assert corrected.regions == ("jayapura",) and corrected.corrected
    assert corrected.categories == article.categories  # left to the classifier
    _build(config, db, clock)
    assert title in _feed(config, "feeds/region/jayapura.rss")
    assert title not in _feed(config, "feeds/region/balikpapan.rss")

    # The source edits the article: re-ingested, re-classified, still corrected.
    seed = folder / SEED_FILE.name
    seed.write_text(
        seed.read_text(encoding="utf-8").replace(
            "Tinggalkan Komentar", "Paragraf tambahan.\n\nTinggalkan Komentar"
        ),
        encoding="utf-8",
    )
    _ingest(config, db, clock)
    record = use.record(db, article.id)
    assert "Paragraf tambahan" in record.article.content_html
    assert record.article.regions == ("jayapura",)
    assert record.override is not None and "balikpapan" in record.override.auto.regions

    assert use.clear_correction(db, article.id, ACTOR, now=clock.now)
    assert "balikpapan" in _only(db).regions and not _only(db).corrected
    entries = audit.search(db, AuditFilter(target=article.id))
    assert [e.action for e in entries] == ["article.correct_clear", "article.correct"]
    assert entries[1].after["regions"] == ["jayapura"]
    assert "balikpapan" in entries[1].before["regions"]
    with pytest.raises(InputError):
        use.correct(
            db,
            config,
            article.id,
            ACTOR,
            regions=("atlantis",),
            categories=None,
            advertorial=None,
            now=clock.now,
        )


def test_unpublish_leaves_feeds_and_reingest_then_republish(
    site: tuple[Config, Path], db: Database
) -> None:
    config, _ = site
    clock = Clock()
    _ingest(config, db, clock)
    article = _only(db)
    _build(config, db, clock)
    assert "Jelang Akhir Tahun 2025" in _feed(config, "feeds/all.rss")
    assert use.unpublish(db, article.id, ACTOR, now=clock.now)
    assert not use.unpublish(db, article.id, ACTOR, now=clock.now)
    _build(config, db, clock)
    assert "Jelang Akhir Tahun 2025" not in _feed(config, "feeds/all.rss")
    _ingest(config, db, clock)
    assert use.search(db, use.ArticleQuery()) == []  # not brought back
    [gone] = use.unpublished(db)
    assert gone.article_id == article.id and gone.source == "redaksi"
    assert use.republish(db, article.id, ACTOR, now=clock.now) > 0
    _ingest(config, db, clock)
    assert _only(db).id == article.id
    actions = [e.action for e in audit.search(db, AuditFilter())]
    assert actions == ["article.republish", "article.unpublish"]


def test_pages_for_an_editor(site: tuple[Config, Path], db: Database) -> None:
    config, _ = site
    clock = Clock()
    _ingest(config, db, clock)
    article = _only(db)
    client = TestClient(create_app(config, db, clock=clock), follow_redirects=False)
    add_account(db, "redaktur@example.id", Role.EDITOR, ACTOR, now=clock.now)
    log_in(client, "redaktur@example.id")
    listing = client.get("/admin/articles?region=balikpapan")
    assert listing.status_code == 200 and article.id in listing.text
    assert article.id not in client.get("/admin/articles?region=jayapura").text
    assert article.id not in client.get("/admin/articles?advertorial=no").text
    page = client.get(f"/admin/articles/{article.id}")
    assert page.status_code == 200
    csrf = csrf_of(page.text)
    done = client.post(
        f"/admin/articles/{article.id}/correct",
        data={"csrf": csrf, "regions": "samarinda", "categories": "olahraga", "advertorial": "no"},
    )
    assert done.status_code == 303
    shown = client.get(done.headers["location"])
    assert "samarinda" in shown.text and "redaktur@example.id" in shown.text
    bad = client.post(
        f"/admin/articles/{article.id}/correct", data={"csrf": csrf, "regions": "atlantis"}
    )
    assert bad.status_code == 400
    gone = client.post(f"/admin/articles/{article.id}/unpublish", data={"csrf": csrf})
    assert gone.status_code == 303
    assert article.id in client.get("/admin/articles/unpublished").text
    assert client.get(f"/admin/articles/{article.id}").status_code == 404
    back = client.post(f"/admin/articles/{article.id}/republish", data={"csrf": csrf})
    assert back.status_code == 303
