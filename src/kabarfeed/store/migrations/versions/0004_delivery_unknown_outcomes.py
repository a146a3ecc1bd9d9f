"""deliveries.unknown_outcomes: how many attempts ended without a reply to the final dot

Revision ID: i22_unknown_outcomes
Revises: i18_admin_console
Create Date: 2026-12-06 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i22_unknown_outcomes"
down_revision = "i18_admin_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unknown_outcomes", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("unknown_outcomes")
