"""Shared fixtures: a real database per test (SQLite file, or PostgreSQL when
``KABARFEED_TEST_DATABASE_URL`` is set) and a config file in a temp folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kabarfeed.config import Config, load_config
from kabarfeed.store import Database, open_database

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
"""Test data kept in the repository (see tests/data/README.md), so a plain clone runs every test."""
SEED_FILE = DATA / "seed" / "balikpapan-rakor-akhir-tahun.txt"
REALWORLD_FEEDS = DATA / "realworld" / "feeds"
PG_URL = os.environ.get("KABARFEED_TEST_DATABASE_URL", "")

TAXONOMY_TOML = (REPO / "config.toml").read_text(encoding="utf-8").split("# Regions: a tree")[1]
TAXONOMY_TOML = "# Regions: a tree" + TAXONOMY_TOML.split("\n[feeds]")[0]
SITE_TOML = (
    "[site]\n"
    'title = "Nusantara Plus"\n'
    'base_url = "https://news.example.id"\n'
    'language = "id"\n'
    'timezone = "Asia/Makassar"\n'
    'postal_address = "Jl. Jenderal Sudirman No. 1, Balikpapan"\n'
)
"""The test site's ``[site]`` table (keys may follow it)."""


def pytest_report_header() -> str:
    return f"kabarfeed test database: {make_url(PG_URL).render_as_string() if PG_URL else 'SQLite'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run only the tests that use the database.

    The suite runs twice (``scripts/test.sh``): SQLite first, then PostgreSQL.
    A test that never asks for ``db_url`` (directly or through ``db`` or
    ``make_config``) and is not marked ``postgres`` does the same thing on both
    passes, so the second pass leaves it out (deselected, counted in the summary).
    ``KABARFEED_TEST_EVERYTHING=1`` runs the whole suite on PostgreSQL anyway.
    """
    if not PG_URL or os.environ.get("KABARFEED_TEST_EVERYTHING"):
        return
    keep: list[pytest.Item] = []
    same: list[pytest.Item] = []
    for item in items:
        uses_db = "db_url" in getattr(item, "fixturenames", ())
        (keep if uses_db or item.get_closest_marker("postgres") else same).append(item)
    if same:
        config.hook.pytest_deselected(items=same)
        items[:] = keep


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str | None]:
    """A migrated template database; each test copies it (fast)."""
    if not PG_URL:
        yield None
        return
    name = f"kf_template_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    open_database(url).dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db_url(tmp_path: Path, _pg_template: str | None) -> Iterator[str]:
    """A fresh, empty-but-migrated database for this test."""
    if _pg_template is None:
        yield f"sqlite:///{tmp_path / 'kabarfeed.db'}"
        return
    name = f"kf_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """An open, migrated :class:`Database`."""
    database = open_database(db_url)
    yield database
    database.dispose()


ConfigFactory = Callable[..., Config]


@pytest.fixture
def make_config(tmp_path: Path, db_url: str) -> ConfigFactory:
    """Write ``config.toml`` into ``tmp_path`` (default taxonomy + ``extra``) and load it.

    ``extra`` is appended TOML (sources, [feeds], [digest], ...); ``site`` adds
    keys to ``[site]``. The file stays at ``tmp_path / "config.toml"`` for CLI tests.
    """

    def factory(extra: str = "", *, site: str = "") -> Config:
        body = f'{SITE_TOML}{site}\n[storage]\nurl = "{db_url}"\n\n{extra}\n\n{TAXONOMY_TOML}\n'
        path = tmp_path / "config.toml"
        path.write_text(body, encoding="utf-8")
        return load_config(path, environ={})

    return factory


@pytest.fixture
def fixed_now() -> datetime:
    """A fixed 'now' for clock injection: 2025-11-17 00:30 UTC (08:30 WITA)."""
    return datetime(2025, 11, 17, 0, 30, tzinfo=UTC)
