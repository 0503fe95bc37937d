"""customer notices: subscribers, notices, rendered bodies, the delivery outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=63), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("push_endpoint", sa.Text(), nullable=True),
        sa.Column("push_p256dh", sa.String(length=200), nullable=True),
        sa.Column("push_auth", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("components", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        _utc("created_at", nullable=False),
        _utc("unsubscribed_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("segment", "email", name="uq_subscribers_segment_email"),
        sa.UniqueConstraint("push_endpoint"),
    )
    op.create_index("ix_subscribers_segment_active", "subscribers", ["segment", "unsubscribed_at"])
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("impact", sa.String(length=20), nullable=False),
        sa.Column("components", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _utc("next_update_at"),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("report_channel", sa.String(length=64), nullable=True),
        sa.Column("report_ts", sa.String(length=32), nullable=True),
        _utc("created_at", nullable=False),
        _utc("sent_at"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notices_incident_id", "notices", ["incident_id"])
    op.create_index("ix_notices_state", "notices", ["state"])
    op.create_index("ix_notices_created_at", "notices", ["created_at"])
    op.create_table(
        "notice_bodies",
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=63), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"]),
        sa.PrimaryKeyConstraint("notice_id", "segment", "channel", "locale"),
    )
    op.create_table(
        "notice_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("segment", sa.String(length=63), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("run_at", nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        _utc("locked_until"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _utc("sent_at"),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"]),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notice_deliveries_due", "notice_deliveries", ["state", "run_at"])
    op.create_index("ix_notice_deliveries_queue", "notice_deliveries", ["state", "id"])
    op.create_index("ix_notice_deliveries_notice", "notice_deliveries", ["notice_id", "state"])
    op.create_table(
        "statuspage_incidents",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("statuspage_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("app_secrets")
    op.drop_table("statuspage_incidents")
    op.drop_index("ix_notice_deliveries_notice", table_name="notice_deliveries")
    op.drop_index("ix_notice_deliveries_queue", table_name="notice_deliveries")
    op.drop_index("ix_notice_deliveries_due", table_name="notice_deliveries")
    op.drop_table("notice_deliveries")
    op.drop_table("notice_bodies")
    op.drop_index("ix_notices_created_at", table_name="notices")
    op.drop_index("ix_notices_state", table_name="notices")
    op.drop_index("ix_notices_incident_id", table_name="notices")
    op.drop_table("notices")
    op.drop_index("ix_subscribers_segment_active", table_name="subscribers")
    op.drop_table("subscribers")
