"""Opening the database and keeping its schema current."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from kabarfeed.errors import StoreError
from kabarfeed.store.dialect import create_engine_for

MIGRATIONS = Path(__file__).parent / "migrations"


@contextmanager
def _store_errors() -> Iterator[None]:
    """Driver errors leave the store as :class:`StoreError` (wrapped once, here)."""
    try:
        yield
    except SQLAlchemyError as e:
        raise StoreError(f"database error: {e.__class__.__name__}: {e}") from e


class Database:
    """A connection pool plus schema management. Create one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = create_engine_for(url)
        except (SQLAlchemyError, ImportError, ValueError, OSError) as e:  # OSError: its folder
            raise StoreError(f"cannot open database {_redact(url)}: {e}") from e

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction (committed on success)."""
        with _store_errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads or explicit transaction control."""
        with _store_errors(), self.engine.connect() as conn:
            yield conn

    def upgrade(self) -> None:
        """Apply every pending Alembic migration (no-op when current).

        The common case (schema already current) is one query and does not
        import Alembic at all, which keeps every command's start-up short.
        """
        try:
            with self.engine.begin() as conn:
                if _stored_revision(conn) == _head_revision():
                    return
                from alembic import command

                cfg = _alembic_config(self.url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as e:
            raise StoreError(f"cannot migrate database {_redact(self.url)}: {e}") from e

    def current_revision(self) -> str | None:
        """The schema revision the database is at, or ``None`` when empty."""
        with self.connect() as conn:
            return _stored_revision(conn)

    def dispose(self) -> None:
        """Close pooled connections (before fork, at exit)."""
        self.engine.dispose()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open ``url`` and (by default) bring its schema up to date."""
    db = Database(url)
    if upgrade:
        db.upgrade()
    return db


def _alembic_config(url: str) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _stored_revision(conn: Connection) -> str | None:
    """What ``alembic_version`` says, without loading Alembic."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


@functools.cache
def _head_revision() -> str:
    """The newest revision shipped: the migration file no other one revises."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        rev = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M)
        down = re.search(r"^down_revision\s*=\s*(?:['\"]([^'\"]+)['\"]|None)", source, re.M)
        if rev:
            revisions[rev[1]] = down[1] if down else None
    revised = set(revisions.values())
    heads = [r for r in revisions if r not in revised]
    if len(heads) != 1:
        raise StoreError(f"migrations have {len(heads)} heads ({heads}); expected one")
    return heads[0]


def _redact(url: str) -> str:
    """Hide the password in a database URL for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
