"""The activity log's search and filters: the record key people know a record by, and the
indexes that keep the log's pages and the search by key fast on a million outcomes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_outcomes_flow_id_id": ["flow_id", "id"],
    "ix_outcomes_run_id_id": ["run_id", "id"],
    "ix_outcomes_flow_id_outcome_id": ["flow_id", "outcome", "id"],
    "ix_outcomes_record_key": ["record_key"],
    "ix_outcomes_source_key": ["source_key"],
    "ix_outcomes_target_key": ["target_key"],
}


def upgrade() -> None:
    op.add_column("outcomes", sa.Column("record_key", sa.String(length=255), nullable=True))
    for name, columns in INDEXES.items():
        op.create_index(name, "outcomes", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="outcomes")
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_column("record_key")
