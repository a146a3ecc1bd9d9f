"""admin console: accounts, sessions, audit log, config versions

Revision ID: i18_admin_console
Revises: i17_mail_events
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kabarfeed.store.types

revision = "i18_admin_console"
down_revision = "i17_mail_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dt = kabarfeed.store.types.UTCDateTime
    op.create_table(
        "admin_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("invite_hash", sa.String(length=64), nullable=True),
        sa.Column("invite_expires_at", dt(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", dt(), nullable=False),
        sa.Column("password_set_at", dt(), nullable=True),
        sa.Column("last_login_at", dt(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_accounts")),
        sa.UniqueConstraint("email_key", name=op.f("uq_admin_accounts_email_key")),
        sa.UniqueConstraint("invite_hash", name=op.f("uq_admin_accounts_invite_hash")),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", dt(), nullable=False),
        sa.Column("last_seen_at", dt(), nullable=False),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["admin_accounts.id"],
            name=op.f("fk_admin_sessions_account_id_admin_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_admin_sessions")),
    )
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_admin_sessions_account_id"), ["account_id"])
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", dt(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    with op.batch_alter_table("admin_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_admin_audit_at"), ["at"])
        batch_op.create_index("ix_admin_audit_action_at", ["action", "at"])
    op.create_table(
        "admin_config_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", dt(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_config_versions")),
    )


def downgrade() -> None:
    op.drop_table("admin_config_versions")
    with op.batch_alter_table("admin_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_admin_audit_action_at")
        batch_op.drop_index(batch_op.f("ix_admin_audit_at"))
    op.drop_table("admin_audit")
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_admin_sessions_account_id"))
    op.drop_table("admin_sessions")
    op.drop_table("admin_accounts")
