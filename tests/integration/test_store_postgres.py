"""The repository tests of tests/unit/test_store.py, run for real on PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from koppel.store import make_engine, upgrade
from tests.fixtures_store import PostgresDatabases, StoreFactory
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


def test_a_silent_transaction_ends_after_the_threshold_beside_the_urls_own_options(
    postgres_databases: PostgresDatabases,
) -> None:
    url = postgres_databases.create() + "?options=-c%20statement_timeout%3D5000"
    engine = make_engine(url, silent_transaction_seconds=2.5)
    try:
        with engine.connect() as connection:
            shown = [
                connection.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("idle_in_transaction_session_timeout", "statement_timeout")
            ]
    finally:
        engine.dispose()
    assert shown == ["2500ms", "5s"]


def test_a_dry_run_may_wait_on_the_apis_for_longer_than_the_threshold(
    store_factory: StoreFactory,
) -> None:
    """A rehearsal's one transaction spans the dry run's API calls (a slow page, a 429's
    pause); the server's end of silent transactions is not for it."""
    store = store_factory(takeover_after_seconds=2)
    with store.rehearsal() as rehearsing:
        tenant = rehearsing.tenants.ensure("acme")
        time.sleep(3)
        assert rehearsing.tenants.get(tenant.id) is not None
    assert store.tenants.list() == []
