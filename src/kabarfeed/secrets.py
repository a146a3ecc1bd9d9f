"""The site secret that keys every HMAC (signed links, CSRF tokens).

``[site] secret`` (env ``KABARFEED_SITE_SECRET``) wins. When it is empty a
random 256-bit secret is generated once and kept in the ``state`` table, so
restarts and other processes sharing the database accept the same links.
The value is never logged.
"""

from __future__ import annotations

import secrets as _random
from datetime import datetime

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from kabarfeed.config import Config
from kabarfeed.errors import StoreError
from kabarfeed.store import Database
from kabarfeed.store.schema import state

STATE_KEY = "site.secret"
"""The ``state`` row holding the generated secret (hex)."""


def _stored(conn: Connection) -> str | None:
    value = conn.execute(select(state.c.value).where(state.c.key == STATE_KEY)).scalar()
    return str(value) if value else None


def _create(db: Database, now: datetime) -> str:
    """Insert a fresh secret; when another process won the race, read theirs."""
    fresh = _random.token_hex(32)
    try:
        with db.begin() as conn:
            conn.execute(insert(state).values(key=STATE_KEY, value=fresh, updated_at=now))
        return fresh
    except StoreError as e:
        if not isinstance(e.__cause__, IntegrityError):
            raise
    with db.connect() as conn:
        found = _stored(conn)
    if found is None:
        raise StoreError("could not store or read the generated site secret")
    return found


def site_secret(config: Config, db: Database, *, now: datetime) -> bytes:
    """The HMAC key: ``site.secret`` if configured, else the persisted random one."""
    configured = config.site.secret.get_secret_value()
    if configured:
        return configured.encode("utf-8")
    with db.connect() as conn:
        found = _stored(conn)
    return (found or _create(db, now)).encode("utf-8")
