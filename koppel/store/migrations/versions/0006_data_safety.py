"""Data safety: pending links (a record's origin survives a crash between the target write and
its outcome); the debtor e-mail index holds keyed hashes instead of addresses; runs may wait for
the flows they depend on, and dead letters name the entity they wait for.

The index's rows are converted in place with the application key's keyed hash when
`koppel.store.upgrade` is given it (`open_store` does); otherwise they are deleted with the
index's refresh mark, and the next customers or orders run builds the index again from
AccountView. Locks on debtor e-mail addresses (short-lived) are dropped either way.

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-01 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


RUN_STATUSES = ("running", "succeeded", "failed", "partial", "interrupted", "waiting")
DEBTOR_EMAILS = "accountview:debtor-emails"
DEBTOR_EMAILS_REFRESHED = "accountview:debtor-emails-refreshed"


def upgrade() -> None:
    op.add_column(
        "links",
        sa.Column("pending", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    config = op.get_context().config
    keyed_hash = config.attributes.get("keyed_hash") if config is not None else None
    connection = op.get_bind()
    if keyed_hash is None:
        connection.execute(
            sa.text("DELETE FROM links WHERE entity IN (:index, :mark)"),
            {"index": DEBTOR_EMAILS, "mark": DEBTOR_EMAILS_REFRESHED},
        )
    else:
        addresses = connection.execute(
            sa.text(
                "SELECT integration_id, source_key FROM links "
                "WHERE entity = :entity AND source_key LIKE '%@%'"
            ),
            {"entity": DEBTOR_EMAILS},
        ).all()
        for integration_id, address in addresses:
            connection.execute(
                sa.text(
                    "UPDATE links SET source_key = :digest WHERE integration_id = :integration "
                    "AND entity = :entity AND source_key = :address"
                ),
                {
                    "digest": keyed_hash(address),
                    "integration": integration_id,
                    "entity": DEBTOR_EMAILS,
                    "address": address,
                },
            )
    connection.execute(
        sa.text("DELETE FROM key_locks WHERE scope LIKE :scope"), {"scope": "%:debtor-email"}
    )
    op.add_column("dead_letters", sa.Column("waits_for", sa.String(length=50), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_runs_status"), f"status IN ({', '.join(repr(s) for s in RUN_STATUSES)})"
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_runs_status"), f"status IN ({', '.join(repr(s) for s in RUN_STATUSES[:-1])})"
        )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("waits_for")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_column("pending")
