"""Console sessions: one row per logged-in browser, ended by logout, by the
idle or absolute timeout, or by "log out everywhere" (which bumps the
account's generation, so every older session is refused)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update

from kabarfeed.admin import audit
from kabarfeed.admin.accounts import Account, _account, token_hash
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.tables import admin_accounts, admin_sessions
from kabarfeed.store import Database

TOUCH_EVERY = timedelta(minutes=1)
"""``last_seen_at`` is written at most this often (not on every request)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Idle and absolute session lifetimes (``[admin] session_idle`` / ``session_max``)."""

    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: whose, its CSRF token, and its age."""

    id_hash: str
    account: Account
    csrf: str
    created_at: datetime
    last_seen_at: datetime


def expired(created_at: datetime, last_seen_at: datetime, now: datetime, limits: Timeouts) -> bool:
    """Whether a session is past its idle or absolute timeout. Pure."""
    return now - last_seen_at >= limits.idle or now - created_at >= limits.absolute


def start_session(
    db: Database, account: Account, *, now: datetime, ip_hash: str | None = None
) -> tuple[str, Session]:
    """A new session for ``account``: the secret token (for the cookie only)
    and the session. Marks the login time on the account."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    id_hash = token_hash(token)
    with db.begin() as conn:
        conn.execute(
            insert(admin_sessions).values(
                id_hash=id_hash,
                account_id=account.id,
                generation=account.generation,
                csrf=csrf,
                created_at=now,
                last_seen_at=now,
                ip_hash=ip_hash,
            )
        )
        conn.execute(
            update(admin_accounts)
            .where(admin_accounts.c.id == account.id)
            .values(last_login_at=now)
        )
    return token, Session(id_hash, account, csrf, now, now)


def load_session(db: Database, token: str, *, now: datetime, limits: Timeouts) -> Session | None:
    """The live session behind ``token``, refreshed; ``None`` (and the row
    deleted) when unknown, expired or from an older generation."""
    if not token or len(token) > 100:
        return None
    id_hash = token_hash(token)
    s, a = admin_sessions.c, admin_accounts.c
    query = (
        select(
            admin_accounts,
            s.generation.label("session_generation"),
            s.csrf,
            s.created_at.label("session_created_at"),
            s.last_seen_at,
        )
        .join(admin_accounts, a.id == s.account_id)
        .where(s.id_hash == id_hash)
    )
    with db.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    stale = row["session_generation"] != row["generation"]
    if stale or expired(row["session_created_at"], row["last_seen_at"], now, limits):
        end_session(db, token)
        return None
    seen = row["last_seen_at"]
    if now - seen >= TOUCH_EVERY:
        with db.begin() as conn:
            conn.execute(
                update(admin_sessions).where(s.id_hash == id_hash).values(last_seen_at=now)
            )
        seen = now
    return Session(id_hash, _account(row), row["csrf"], row["session_created_at"], seen)


def end_session(db: Database, token: str) -> None:
    """Log one browser out (no-op when already gone)."""
    with db.begin() as conn:
        conn.execute(delete(admin_sessions).where(admin_sessions.c.id_hash == token_hash(token)))


def end_all_sessions(db: Database, account: Account, actor: Actor, *, now: datetime) -> int:
    """Log ``account`` out everywhere; returns how many sessions ended."""
    with db.begin() as conn:
        current = conn.execute(
            select(admin_accounts.c.generation).where(admin_accounts.c.id == account.id)
        ).scalar_one()
        conn.execute(
            update(admin_accounts)
            .where(admin_accounts.c.id == account.id)
            .values(generation=current + 1)
        )
        ended = conn.execute(
            delete(admin_sessions).where(admin_sessions.c.account_id == account.id)
        ).rowcount
        audit.record(
            conn,
            actor,
            "account.logout_all",
            account.email,
            after={"sessions_ended": ended},
            now=now,
        )
    return int(ended or 0)


def purge_expired(db: Database, *, now: datetime, limits: Timeouts) -> int:
    """Delete sessions idle or old beyond their timeouts (housekeeping)."""
    s = admin_sessions.c
    with db.begin() as conn:
        done = conn.execute(
            delete(admin_sessions).where(
                (s.last_seen_at <= now - limits.idle) | (s.created_at <= now - limits.absolute)
            )
        ).rowcount
    return int(done or 0)
