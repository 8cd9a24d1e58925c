"""The repository tests of tests/unit/test_store.py, run for real on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from koppel.store import make_engine, upgrade
from tests.fixtures_store import PostgresDatabases
from tests.unit.test_store import *  # noqa: F403 (the shared repository tests)
from tests.unit.test_store_migrations import assert_migrated_to_head

pytestmark = pytest.mark.postgres


@pytest.fixture
def store_url(postgres_store_url: str) -> str:
    """The session's PostgreSQL database, migrated and emptied for each test."""
    upgrade(postgres_store_url)
    engine = make_engine(postgres_store_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE tenants, key_locks RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    return postgres_store_url


def test_postgres_migrates_from_empty_to_head(postgres_databases: PostgresDatabases) -> None:
    url = postgres_databases.create()
    upgrade(url)
    upgrade(url)
    assert_migrated_to_head(url)


def test_plain_postgresql_urls_use_psycopg(postgres_databases: PostgresDatabases) -> None:
    url = postgres_databases.create().replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(url)
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()
