"""The console's tables: accounts, sessions, the audit log and applied config
versions. They live on the store's shared ``metadata``; migration
``0003_admin_console`` creates them."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from kabarfeed.store.schema import metadata
from kabarfeed.store.types import UTCDateTime

admin_accounts = Table(
    "admin_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", Text),
    Column("invite_hash", String(64), unique=True),
    Column("invite_expires_at", UTCDateTime),
    Column("generation", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_set_at", UTCDateTime),
    Column("last_login_at", UTCDateTime),
)
"""Console accounts. ``email_key`` is the lower-cased address (unique);
``invite_hash`` is the SHA-256 of the one-time set-password token;
``generation`` is bumped by "log out everywhere" and by a password change,
which ends every session made before."""

admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("admin_accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("generation", Integer, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("ip_hash", String(64)),
)
"""One row per logged-in browser; the cookie holds the token whose SHA-256 is ``id_hash``."""

admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("actor", String(320), nullable=False),
    Column("via", String(10), nullable=False),
    Column("action", String(60), nullable=False),
    Column("target", Text, nullable=False, default=""),
    Column("before", Text),
    Column("after", Text),
    Index("ix_admin_audit_action_at", "action", "at"),
)
"""Who (``actor``: an account's email, or ``cli:<user>``), when, through what
(``console`` / ``cli``), what (``action`` on ``target``) and before → after (JSON)."""

admin_config_versions = Table(
    "admin_config_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("author", String(320), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("note", Text, nullable=False, default=""),
)
"""Every applied ``config.toml`` (full text), newest last, for history and rollback."""
