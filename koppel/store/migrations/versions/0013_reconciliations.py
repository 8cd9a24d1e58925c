"""Reconciliations: each comparison of a flow's two systems, with the drift it found (the
reconciliation page and the daily report read them).

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-01 15:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from koppel.store.tables: a migration must keep meaning what it
# meant when it was written, whatever the models become.
UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("flow_id", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=False),
        sa.Column("compared", sa.Integer(), nullable=False),
        sa.Column("drift", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("differences", JSON_DOCUMENT, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_reconciliations_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
    )
    op.create_index(
        op.f("ix_reconciliations_flow_id_finished_at"),
        "reconciliations",
        ["flow_id", "finished_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reconciliations_flow_id_finished_at"), table_name="reconciliations")
    op.drop_table("reconciliations")
