"""The one place for SQL that differs between SQLite and PostgreSQL.

Everything else in kabarfeed is portable SQLAlchemy Core. What lives here:

* :func:`insert_ignoring_conflicts` — ``INSERT … ON CONFLICT DO NOTHING``
  (both dialects spell it the same way, but through dialect-specific
  constructs);
* PostgreSQL advisory locks (:func:`try_advisory_lock`, :func:`advisory_lock`,
  :func:`advisory_unlock`) keyed by :func:`lock_key`, a stable 63-bit hash of a
  name, so every process and machine agrees on the key;
* :func:`evaluated_once` — a locking ``IN`` subquery PostgreSQL must not
  re-run per outer row (it would, and with ``SKIP LOCKED`` each re-run locks
  *other* rows, so ``UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP
  LOCKED)`` could update far more than ``n`` rows);
* :func:`create_engine_for` — the engine with each dialect's connection
  settings (SQLite: WAL, foreign keys, busy timeout; PostgreSQL: pool checks);
* :func:`is_postgresql`, the question the callers ask before choosing a
  coordination strategy (SQLite has no advisory locks and no second host).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, create_engine, event, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

POSTGRESQL = "postgresql"
SQLITE = "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine_for(url: str) -> Engine:
    """An engine for ``url`` with the connection settings its dialect needs."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and ":memory:" not in path and not url.startswith("sqlite://:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def is_postgresql(conn_or_dialect: Connection | str) -> bool:
    """Whether a connection (or a dialect name) is PostgreSQL."""
    name = conn_or_dialect if isinstance(conn_or_dialect, str) else conn_or_dialect.dialect.name
    return name == POSTGRESQL


def insert_ignoring_conflicts(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], index_elements: Sequence[str]
) -> None:
    """Insert ``rows``; a row whose ``index_elements`` already exist is skipped.

    Other dialects fall back to one savepoint per row.
    """
    if not rows:
        return
    name = conn.dialect.name
    if name in (SQLITE, POSTGRESQL):
        module: Any = sqlite if name == SQLITE else postgresql
        stmt = module.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
        conn.execute(stmt, list(rows))
        return
    for row in rows:
        try:
            with conn.begin_nested():
                conn.execute(insert(table), [row])
        except IntegrityError:
            continue


def lock_key(name: str) -> int:
    """A stable signed 63-bit advisory-lock key for ``name`` (same on every host)."""
    digest = hashlib.blake2b(f"kabarfeed:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def try_advisory_lock(conn: Connection, key: int) -> bool:
    """``pg_try_advisory_lock``: take the session lock ``key`` if free; never waits."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())


def advisory_lock(conn: Connection, key: int) -> None:
    """``pg_advisory_lock``: wait until the session lock ``key`` is ours."""
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})


def advisory_unlock(conn: Connection, key: int) -> bool:
    """Release the session lock ``key``; whether this session held it."""
    return bool(conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key}).scalar())


def evaluated_once(query: Select[Any], dialect: str, name: str = "picked") -> Any:
    """``query`` (one column) as the right-hand side of ``IN``, evaluated once.

    On PostgreSQL it becomes a ``MATERIALIZED`` CTE: the planner may otherwise
    rescan a semi-join's inner side for every outer row, re-running ``LIMIT …
    FOR UPDATE SKIP LOCKED`` and claiming one batch per row. SQLite evaluates
    an uncorrelated ``IN`` subquery once and has no row locks.
    """
    if dialect != POSTGRESQL:
        return query.scalar_subquery()
    cte = query.cte(name).prefix_with("MATERIALIZED")
    column: ColumnElement[Any] = next(iter(cte.c))
    return select(column).scalar_subquery()
