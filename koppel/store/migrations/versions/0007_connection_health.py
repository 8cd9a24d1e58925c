"""Connection health: when a connection's calls last got a good answer, and its last error;
an index of the runs by start, for the runs page that lists every flow's runs newest first.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01 12:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from koppel.store.tables: a migration must keep meaning what it
# meant when it was written, whatever the models become.
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("connections", sa.Column("last_ok_at", UTC_DATETIME, nullable=True))
    op.add_column("connections", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column("connections", sa.Column("last_error_at", UTC_DATETIME, nullable=True))
    op.create_index(op.f("ix_runs_started_at"), "runs", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_started_at"), table_name="runs")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("last_error_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("last_ok_at")
