"""article_overrides: editorial corrections of classification beside the article

Revision ID: i18_article_overrides
Revises: i19_push_api
Create Date: 2026-12-06 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kabarfeed.store.types

revision = "i18_article_overrides"
down_revision = "i19_push_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "article_overrides",
        sa.Column("article_id", sa.String(length=32), nullable=False),
        sa.Column("regions", sa.Text(), nullable=True),
        sa.Column("categories", sa.Text(), nullable=True),
        sa.Column("advertorial", sa.Boolean(), nullable=True),
        sa.Column("auto_regions", sa.Text(), nullable=False),
        sa.Column("auto_categories", sa.Text(), nullable=False),
        sa.Column("auto_advertorial", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.Column("updated_at", kabarfeed.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_article_overrides_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_article_overrides")),
    )


def downgrade() -> None:
    op.drop_table("article_overrides")
