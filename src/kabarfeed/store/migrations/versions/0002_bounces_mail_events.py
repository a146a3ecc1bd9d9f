"""bounces: mail_events, suppressions, deliveries.message_id index

Revision ID: i17_mail_events
Revises: 0001
Create Date: 2026-12-06 03:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kabarfeed.store.types

revision = "i17_mail_events"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", kabarfeed.store.types.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("status_code", sa.String(length=20), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("raw_ref", sa.Text(), nullable=True),
        sa.Column("attribution", sa.String(length=20), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("local_date", sa.String(length=10), nullable=True),
        sa.Column("action", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_mail_events_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_mail_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_events")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_mail_events_dedup_key")),
    )
    with op.batch_alter_table("mail_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_events_received_at"), ["received_at"])
        batch_op.create_index(batch_op.f("ix_mail_events_delivery_id"), ["delivery_id"])
        batch_op.create_index(batch_op.f("ix_mail_events_subscriber_id"), ["subscriber_id"])
        batch_op.create_index(
            "ix_mail_events_subscriber_kind", ["subscriber_id", "kind", "received_at"]
        )
    op.create_table(
        "suppressions",
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("created_at", kabarfeed.store.types.UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["mail_events.id"],
            name=op.f("fk_suppressions_event_id_mail_events"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("email_key", name=op.f("pk_suppressions")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_message_id", ["message_id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_message_id")
    op.drop_table("suppressions")
    with op.batch_alter_table("mail_events", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_events_subscriber_kind")
        batch_op.drop_index(batch_op.f("ix_mail_events_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_mail_events_delivery_id"))
        batch_op.drop_index(batch_op.f("ix_mail_events_received_at"))
    op.drop_table("mail_events")
