"""subscribers.breaking_alerts (a daily or weekly reader's opt-in to breaking alerts)

Revision ID: i19_subscriber_breaking_alerts
Revises: i19_subscriber_frequency
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i19_subscriber_breaking_alerts"
down_revision = "i19_subscriber_frequency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("breaking_alerts", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("breaking_alerts")
