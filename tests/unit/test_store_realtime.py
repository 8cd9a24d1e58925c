"""The real-time tables on SQLite and PostgreSQL: a delivery id accepted once, pending changes
claimed by one run, renamed records kept for the next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from koppel.store import Store
from tests.fixtures_store import PostgresDatabases, StoreFactory, seed_integration


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, store_factory: StoreFactory) -> Store:
    if request.param == "sqlite":
        return store_factory()
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return store_factory(database_url=databases.create())


def test_a_delivery_id_is_accepted_once_and_forgotten_after_the_window(any_store: Store) -> None:
    seeded = seed_integration(any_store)
    window = timedelta(minutes=10)
    then = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    accept = any_store.webhooks.accept_deliveries
    pim = seeded.pim.id
    assert accept([(pim, "evt_1"), (pim, "evt_2"), (pim, "evt_1")], window=window, now=then) == [
        True,
        True,
        False,
    ]
    assert accept([(pim, "evt_2")], window=window, now=then + timedelta(minutes=9)) == [False]
    # Past the window the signature's timestamp refuses it; the id need not be kept.
    assert accept([(pim, "evt_1")], window=window, now=then + timedelta(minutes=11)) == [True]


def test_pending_changes_are_claimed_by_one_run_and_a_renamed_one_waits_for_the_next(
    any_store: Store,
) -> None:
    flow = seed_integration(any_store).flow
    pending = any_store.pending_changes
    pending.add(flow.id, "products", ["1", "2", "3", "2"])
    assert pending.waiting() == {flow.id: 3}
    assert pending.claim(flow.id, "run-a", limit=2) == [("products", "1"), ("products", "2")]
    assert pending.claim(flow.id, "run-b", limit=10) == [("products", "3")]
    # A batch run again after a crash takes up its own claim, not more.
    assert pending.claim(flow.id, "run-a", limit=10) == [("products", "1"), ("products", "2")]
    pending.add(flow.id, "products", ["2"])  # changed again while run a reads it
    pending.release(flow.id, "run-a")
    assert pending.count() == 2
    assert pending.claim(flow.id, "run-c", limit=10) == [("products", "2")]
    pending.release(flow.id, "run-b")
    pending.release(flow.id, "run-c")
    assert pending.count() == 0 and pending.waiting() == {}
