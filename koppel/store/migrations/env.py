"""Alembic environment: runs on the connection that koppel.store.upgrade() passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from koppel.store.tables import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations with koppel.store.upgrade(), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
