"""breaking_alerts: the breaking-alert outbox (one row per subscriber and article)

Revision ID: i19_breaking_alerts_outbox
Revises: i19_subscriber_breaking_alerts
Create Date: 2026-12-06 05:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kabarfeed.store.types

revision = "i19_breaking_alerts_outbox"
down_revision = "i19_subscriber_breaking_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "breaking_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.String(length=32), nullable=False),
        sa.Column("local_date", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", kabarfeed.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("created_at", kabarfeed.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kabarfeed.store.types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", kabarfeed.store.types.UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("lease_until", kabarfeed.store.types.UTCDateTime(), nullable=True),
        sa.Column("unknown_outcomes", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "article_id"),
    )
    op.create_index(
        "ix_breaking_alerts_state_next", "breaking_alerts", ["state", "next_attempt_at"]
    )
    op.create_index(
        "ix_breaking_alerts_subscriber_date", "breaking_alerts", ["subscriber_id", "local_date"]
    )


def downgrade() -> None:
    op.drop_index("ix_breaking_alerts_subscriber_date", table_name="breaking_alerts")
    op.drop_index("ix_breaking_alerts_state_next", table_name="breaking_alerts")
    op.drop_table("breaking_alerts")
