"""Tables and queries of the push API: hashed API tokens scoped to a source,
and the tombstones of unpublished articles.

Unpublishing moves an article out of ``articles`` (its regions, categories
and dedup keys go with it, by cascade) and leaves one tombstone row per dedup
key, so the feeds, the digest and the archive stop showing it without a
filter of their own, and a re-ingest of the same item from its source does
not bring it back; only a new push of the same guid republishes it.
Migration ``0005_push_api`` creates both tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Connection, Integer, String, Table, Text, delete, insert, select
from sqlalchemy import update as sql_update

from kabarfeed.store.schema import article_keys, articles, metadata
from kabarfeed.store.types import UTCDateTime

_CHUNK = 400

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("source", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
)
"""API tokens: only the SHA-256 of a token is kept (tokens are random,
256 bits: a fast hash is enough), with its first characters for display."""

article_tombstones = Table(
    "article_tombstones",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("article_id", String(32), nullable=False, index=True),
    Column("source", String(100), nullable=False),
    Column("guid", Text),
    Column("unpublished_at", UTCDateTime, nullable=False),
)
"""One row per dedup key (``article_keys.key`` form) of an unpublished article."""


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A stored API token (never the token itself)."""

    id: int
    name: str
    source: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


def _token(row: object) -> TokenRow:
    r = row
    return TokenRow(r.id, r.name, r.source, r.prefix, r.created_at, r.last_used_at)  # type: ignore[attr-defined]


def add_token(
    conn: Connection, *, name: str, source: str, token_hash: str, prefix: str, now: datetime
) -> TokenRow:
    """Store a new token's hash; the name must be unused (unique constraint)."""
    conn.execute(
        insert(api_tokens).values(
            name=name, source=source, token_hash=token_hash, prefix=prefix, created_at=now
        )
    )
    found = find_token_by_name(conn, name)
    assert found is not None
    return found


def find_token_by_name(conn: Connection, name: str) -> TokenRow | None:
    """The token called ``name``."""
    row = conn.execute(select(api_tokens).where(api_tokens.c.name == name)).first()
    return _token(row) if row else None


def find_token_by_hash(conn: Connection, token_hash: str) -> TokenRow | None:
    """The token whose hash is ``token_hash``."""
    row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == token_hash)).first()
    return _token(row) if row else None


def list_tokens(conn: Connection) -> list[TokenRow]:
    """Every token, by name."""
    return [_token(r) for r in conn.execute(select(api_tokens).order_by(api_tokens.c.name))]


def remove_token(conn: Connection, name: str) -> bool:
    """Delete the token ``name``; whether it existed."""
    return bool(conn.execute(delete(api_tokens).where(api_tokens.c.name == name)).rowcount)


def touch_token(conn: Connection, token_id: int, now: datetime) -> None:
    """Record a token's last use."""
    conn.execute(sql_update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now))


def bury(conn: Connection, article_id: str, *, now: datetime) -> bool:
    """Unpublish ``article_id``: tombstones for its keys, then delete it (its
    links and keys go by cascade). Whether it was there."""
    row = conn.execute(
        select(articles.c.source, articles.c.guid).where(articles.c.id == article_id)
    ).first()
    if row is None:
        return False
    keys = list(
        conn.execute(
            select(article_keys.c.key).where(article_keys.c.article_id == article_id)
        ).scalars()
    )
    unburied(conn, keys)
    if keys:
        conn.execute(
            insert(article_tombstones),
            [
                {
                    "key": k,
                    "article_id": article_id,
                    "source": row.source,
                    "guid": row.guid,
                    "unpublished_at": now,
                }
                for k in keys
            ],
        )
    conn.execute(delete(article_keys).where(article_keys.c.article_id == article_id))
    conn.execute(delete(articles).where(articles.c.id == article_id))
    return True


def unburied(conn: Connection, keys: Sequence[str]) -> None:
    """Forget the tombstones of ``keys`` (a new push republishes)."""
    if keys:
        conn.execute(delete(article_tombstones).where(article_tombstones.c.key.in_(list(keys))))


def buried(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` belong to unpublished articles."""
    found: set[str] = set()
    for i in range(0, len(keys), _CHUNK):
        chunk = list(keys[i : i + _CHUNK])
        query = select(article_tombstones.c.key).where(article_tombstones.c.key.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found


def tombstone_of(conn: Connection, article_id: str) -> datetime | None:
    """When ``article_id`` was unpublished (``None``: it was not)."""
    query = select(article_tombstones.c.unpublished_at).where(
        article_tombstones.c.article_id == article_id
    )
    return conn.execute(query.limit(1)).scalar_one_or_none()
