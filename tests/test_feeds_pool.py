"""Full builds with entries rendered in worker processes: the same bytes as a
build in one process, and a build that still completes when the workers die."""

from __future__ import annotations

import gc
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kabarfeed.config import Config
from kabarfeed.feeds import build, pool, render
from kabarfeed.feeds.build import FeedBuilder
from kabarfeed.feeds.render import FeedSite, Renderer
from kabarfeed.feeds.selection import Selection
from kabarfeed.store import Database
from tests.conftest import ConfigFactory
from tests.feeds_support import make_article, store

NOW = datetime(2025, 11, 30, 0, 30, tzinfo=UTC)
REGIONS = (("samarinda",), ("balikpapan", "bontang"), ("papua",), ())
CATEGORIES = (("hukum",), ("ekonomi", "pemerintahan"), ())


def _store(db: Database) -> None:
    store(
        db,
        [
            make_article(
                n,
                regions=REGIONS[n % len(REGIONS)],
                categories=CATEGORIES[n % len(CATEGORIES)],
                advertorial=n % 9 == 0,
            )
            for n in range(1, 61)
        ],
    )


def _with_output(config: Config, output: Path) -> Config:
    return config.model_copy(update={"feeds": config.feeds.model_copy(update={"output": output})})


def _files(output: Path) -> dict[str, bytes]:
    return {
        p.relative_to(output).as_posix(): p.read_bytes()
        for p in sorted(output.rglob("*"))
        if p.is_file() and not p.name.startswith(".kabarfeed")
    }


def _build(config: Config, db: Database, output: Path, processes: int) -> dict[str, bytes]:
    builder = FeedBuilder(
        _with_output(config, output), db, lambda: NOW, processes=processes, parallel_from=0
    )
    report = builder.build(full=True)
    assert report.full and report.written == report.rendered * 3
    return _files(output)


def test_workers_write_the_same_bytes_as_one_process(
    make_config: ConfigFactory,
    db: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config("[feeds]\nitems = 7\n")
    _store(db)
    monkeypatch.setattr(pool, "CHUNK", 5)  # many tasks over both workers,
    monkeypatch.setattr(build, "BATCH", 4)  # for batches submitted ahead of the one written
    alone = _build(config, db, tmp_path / "alone", processes=0)
    with caplog.at_level(logging.DEBUG, logger="kabarfeed.feeds.pool"):
        shared = _build(config, db, tmp_path / "shared", processes=2)
    assert "started 2 feed render workers" in caplog.text
    assert "rendering in-process" not in caplog.text
    assert len(alone) > 40 and shared == alone  # every feed, .gz sibling and index page


def test_a_build_survives_workers_that_die(
    make_config: ConfigFactory,
    db: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config()
    _store(db)
    alone = _build(config, db, tmp_path / "alone", processes=0)
    monkeypatch.setattr(pool, "WORKER_CODE", "import sys; sys.exit(3)")
    with caplog.at_level(logging.WARNING, logger="kabarfeed.feeds.pool"):
        survived = _build(config, db, tmp_path / "survived", processes=2)
    assert "feed render workers failed, rendering in-process" in caplog.text
    assert survived == alone


def test_workers_only_where_they_can_open_the_database() -> None:
    assert not pool.usable("sqlite://")
    assert not pool.usable("sqlite:///:memory:")
    assert pool.usable("sqlite:////srv/kabarfeed/kabarfeed.db")
    assert pool.usable("postgresql+psycopg://kabarfeed@db/kabarfeed")


def test_rendering_makes_no_reference_cycles(make_config: ConfigFactory) -> None:
    """Builds pause the cyclic garbage collector and workers run without it
    (see ``build._gc_deferred``, ``pool.main``): sound only while rendering
    leaves no cyclic garbage behind, which this checks."""
    site = FeedSite.from_config(make_config())
    articles = [
        make_article(n, regions=REGIONS[n % 4], categories=CATEGORIES[n % 3], advertorial=n == 3)
        for n in range(1, 25)
    ]
    gc.collect()
    gc.disable()
    try:
        renderer = Renderer(site, max_cached=0)
        for article in articles:
            renderer.entries(article, ("rss", "atom", "json"))
        render.render(site, Selection(), articles, ("rss", "atom", "json"))
        del renderer
        assert gc.collect() == 0
    finally:
        gc.enable()
