"""Alembic migrations of the store, run from code by koppel.store.upgrade()."""
