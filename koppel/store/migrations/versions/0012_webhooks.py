"""Real time: Parts Pim webhook subscriptions (secret encrypted), the delivery ids accepted
(replays refused), and the records that deliveries named until a targeted run syncs them.

Revision ID: 0012
Revises: 0015
Create Date: 2026-12-01 15:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from koppel.store.tables: a migration must keep meaning what it
# meant when it was written, whatever the models become.
UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("events", JSON_DOCUMENT, nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_webhook_subscriptions_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_webhook_subscriptions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_webhook_subscriptions_token_hash")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_webhook_deliveries_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "delivery_id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_received_at"), "webhook_deliveries", ["received_at"]
    )
    op.create_table(
        "pending_changes",
        sa.Column("flow_id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=50), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_pending_changes_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", "phase", "key", name=op.f("pk_pending_changes")),
    )
    op.create_index(
        op.f("ix_pending_changes_flow_id_received_at"),
        "pending_changes",
        ["flow_id", "received_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_changes_flow_id_received_at"), table_name="pending_changes")
    op.drop_table("pending_changes")
    op.drop_index(op.f("ix_webhook_deliveries_received_at"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
