"""Executors: every engine process's heartbeat, and who took over its runs once it went silent;
the execution that owns a run (its writes are fenced).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 15:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from koppel.store.tables: a migration must keep meaning what it
# meant when it was written, whatever the models become.
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "executors",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("last_beat_at", UTC_DATETIME, nullable=False),
        sa.Column("stopped_at", UTC_DATETIME, nullable=True),
        sa.Column("taken_over_by", sa.String(length=100), nullable=True),
        sa.Column("taken_over_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executors")),
    )
    op.add_column("runs", sa.Column("owner", sa.String(length=140), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("owner")
    op.drop_table("executors")
