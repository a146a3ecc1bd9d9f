"""subscribers.frequency (daily | weekly), weekly_day, frequency_since

Revision ID: i19_subscriber_frequency
Revises: i18_article_overrides
Create Date: 2026-12-06 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kabarfeed.store.types

revision = "i19_subscriber_frequency"
down_revision = "i18_article_overrides"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("frequency", sa.String(length=10), nullable=False, server_default="daily")
        )
        batch_op.add_column(
            sa.Column("weekly_day", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("frequency_since", kabarfeed.store.types.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("frequency_since")
        batch_op.drop_column("weekly_day")
        batch_op.drop_column("frequency")
