"""First hour: connection state and token fingerprints, pending authorisations, run executors
and run numbers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from koppel.store.tables: a migration must keep meaning what it
# meant when it was written, whatever the models become.
UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "connections",
        sa.Column("state", sa.String(length=30), server_default="ready", nullable=False),
    )
    op.add_column("connections", sa.Column("state_reason", sa.Text(), nullable=True))
    op.add_column(
        "connections",
        sa.Column(
            "token_fingerprints", JSON_DOCUMENT, server_default=sa.text("'[]'"), nullable=False
        ),
    )
    op.add_column("runs", sa.Column("executor", sa.String(length=100), nullable=True))
    op.add_column("runs", sa.Column("number", sa.Integer(), nullable=True))
    # The runs there are get numbers in the order they started.
    op.execute(
        "UPDATE runs SET number = (SELECT COUNT(*) FROM runs AS earlier "
        "WHERE earlier.started_at < runs.started_at "
        "OR (earlier.started_at = runs.started_at AND earlier.id <= runs.id))"
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_runs_number"), ["number"])
    op.create_table(
        "authorizations",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=500), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_authorizations_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_authorizations")),
    )


def downgrade() -> None:
    op.drop_table("authorizations")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_runs_number"), type_="unique")
        batch_op.drop_column("number")
        batch_op.drop_column("executor")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("token_fingerprints")
        batch_op.drop_column("state_reason")
        batch_op.drop_column("state")
