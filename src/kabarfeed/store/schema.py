"""SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from kabarfeed.store.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("location", Text, nullable=False, default=""),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_fetch_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("error_count", Integer, nullable=False, default=0),
    Column("next_fetch_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

articles = Table(
    "articles",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("source", String(100), nullable=False, index=True),
    Column("guid", Text),
    Column("guid_key", String(64), index=True),
    Column("url", Text, nullable=False),
    Column("url_key", String(64), nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("author", Text),
    Column("published_at", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False, index=True),
    Column("changed_at", UTCDateTime, nullable=False, index=True),
    Column("summary", Text, nullable=False, default=""),
    Column("content_html", Text, nullable=False, default=""),
    Column("image_url", Text),
    Column("image_caption", Text),
    Column("image_type", String(100)),
    Column("image_length", Integer),
    Column("advertorial", Boolean, nullable=False, default=False),
    Column("language", String(16), nullable=False, default="id"),
    Column("local_tz", String(64)),
    Column("content_hash", String(64), nullable=False, index=True),
    Column("revision", String(64), nullable=False),
)

article_regions = Table(
    "article_regions",
    metadata,
    Column(
        "article_id", String(32), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("region", String(100), primary_key=True, index=True),
)

article_keys = Table(
    "article_keys",
    metadata,
    Column("key", String(64), primary_key=True),
    Column(
        "article_id",
        String(32),
        ForeignKey("articles.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
)
"""Every dedup key ever seen for an article: guid keys, canonical-URL keys and
content hashes, including those of copies from other sources and of earlier
revisions, so a copy stays a duplicate after the original is edited."""

article_categories = Table(
    "article_categories",
    metadata,
    Column(
        "article_id", String(32), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("category", String(100), primary_key=True, index=True),
)

feed_builds = Table(
    "feed_builds",
    metadata,
    Column("path", String(300), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("item_count", Integer, nullable=False, default=0),
    Column("item_ids", Text, nullable=False, default=""),
    Column("built_at", UTCDateTime, nullable=False),
)

state = Table(
    "state",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False, default=""),
    Column("updated_at", UTCDateTime, nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", Text),
    Column("token", String(64), nullable=False, unique=True),
    Column("timezone", String(64), nullable=False),
    Column("send_at", String(5), nullable=False),
    Column("language", String(5), nullable=False, default="id"),
    Column("status", String(20), nullable=False, index=True),
    Column("bounce_count", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("unsubscribed_at", UTCDateTime),
    Column("confirm_sent_at", UTCDateTime),
    Column("consent_at", UTCDateTime),
    Column("consent_method", String(20)),
    Column("consent_ip", String(64)),
    Column("consent_user_agent", Text),
    Column("consent_version", String(40)),
    Column("frequency", String(10), nullable=False, default="daily", server_default="daily"),
    Column("weekly_day", Integer, nullable=False, default=0, server_default="0"),
    Column("frequency_since", UTCDateTime),
    Column("breaking_alerts", Boolean, nullable=False, default=False, server_default=false()),
)

subscriber_regions = Table(
    "subscriber_regions",
    metadata,
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("region", String(100), primary_key=True),
    Column("position", Integer, nullable=False, default=0),
)

subscriber_categories = Table(
    "subscriber_categories",
    metadata,
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("category", String(100), primary_key=True),
    Column("position", Integer, nullable=False, default=0),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("local_date", String(10), nullable=False),
    Column("since_at", UTCDateTime, nullable=False),
    Column("cutoff_at", UTCDateTime, nullable=False),
    Column("article_ids", Text, nullable=False, default="[]"),
    Column("article_count", Integer, nullable=False, default=0),
    Column("total_matching", Integer, nullable=False, default=0),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("last_code", Integer),
    Column("last_reply", Text),
    Column("message_id", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("claimed_by", String(200)),
    Column("lease_until", UTCDateTime),
    Column("unknown_outcomes", Integer, nullable=False, default=0, server_default="0"),
    UniqueConstraint("subscriber_id", "local_date"),
    Index("ix_deliveries_state_next", "state", "next_attempt_at"),
    Index("ix_deliveries_local_date", "local_date"),
)

Index("ix_deliveries_message_id", deliveries.c.message_id)
"""Bounces that lost their VERP address are matched on the original Message-ID."""

breaking_alerts = Table(
    "breaking_alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("article_id", String(32), nullable=False),
    Column("local_date", String(10), nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("last_code", Integer),
    Column("last_reply", Text),
    Column("message_id", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("claimed_by", String(200)),
    Column("lease_until", UTCDateTime),
    Column("unknown_outcomes", Integer, nullable=False, default=0, server_default="0"),
    UniqueConstraint("subscriber_id", "article_id"),
    Index("ix_breaking_alerts_state_next", "state", "next_attempt_at"),
    Index("ix_breaking_alerts_subscriber_date", "subscriber_id", "local_date"),
)
"""The breaking-alert outbox: one row per (subscriber, article), sent by the
same engine as editions; ``next_attempt_at`` of a queued row holds it until
the reader's quiet hours end."""

mail_events = Table(
    "mail_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dedup_key", String(200), nullable=False, unique=True),
    Column("received_at", UTCDateTime, nullable=False, index=True),
    Column("source", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("provider", String(40)),
    Column("recipient", String(320)),
    Column("status_code", String(20)),
    Column("diagnostic", Text),
    Column("raw_ref", Text),
    Column("attribution", String(20), nullable=False),
    Column(
        "delivery_id",
        Integer,
        ForeignKey("deliveries.id", ondelete="SET NULL"),
        index=True,
    ),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        index=True,
    ),
    Column("local_date", String(10)),
    Column("action", Text),
    Index("ix_mail_events_subscriber_kind", "subscriber_id", "kind", "received_at"),
)
"""What the mail world told us: one row per bounce, complaint, unsubscribe or
delay (from a DSN, an ARF report, a provider webhook or the SMTP dialogue).
``dedup_key`` makes re-ingesting the same report a no-op."""

suppressions = Table(
    "suppressions",
    metadata,
    Column("email_key", String(320), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("event_id", Integer, ForeignKey("mail_events.id", ondelete="SET NULL")),
)
"""Addresses never mailed again (complaints); only a fresh double opt-in lifts it."""
