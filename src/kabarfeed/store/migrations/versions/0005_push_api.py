"""push API: api_tokens (hashed, scoped to a source), article_tombstones (unpublished)

Revision ID: i19_push_api
Revises: i22_unknown_outcomes
Create Date: 2026-12-06 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kabarfeed.store.types

revision = "i19_push_api"
down_revision = "i22_unknown_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dt = kabarfeed.store.types.UTCDateTime
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", dt(), nullable=False),
        sa.Column("last_used_at", dt(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "article_tombstones",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("article_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("guid", sa.Text(), nullable=True),
        sa.Column("unpublished_at", dt(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_article_tombstones")),
    )
    with op.batch_alter_table("article_tombstones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_article_tombstones_article_id"), ["article_id"])


def downgrade() -> None:
    op.drop_table("article_tombstones")
    op.drop_table("api_tokens")
