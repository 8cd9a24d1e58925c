"""A connection's limits shared through a PostgreSQL store (`SharedGate`), over real HTTP.

Each client here has a store of its own (its own engine and connections), as separate worker
processes would; the sandbox's request log says how many calls were in flight at once. The
same with three `koppel worker` processes: tests/e2e/test_workers_limits.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from koppel.connectors.base import ApiClient, ClientLimits, RateLimiter
from koppel.connectors.shared import SharedGate
from koppel.sandbox.common import FaultConfig, FaultMiddleware, SandboxServer, admin_router
from koppel.store import Store
from koppel.store.tables import utc_now
from tests.fixtures_store import PostgresDatabases, StoreFactory, seed_integration

pytestmark = pytest.mark.postgres

CONCURRENCY = 3


@pytest.fixture
def store_url(postgres_databases: PostgresDatabases) -> str:
    return postgres_databases.create()


@pytest.fixture
def api() -> Iterator[tuple[str, FaultMiddleware]]:
    """An API that takes 40 ms per call and logs how many were in flight at once."""
    app = FastAPI()

    @app.get("/things")
    async def things() -> dict[str, str]:
        return {"ok": "yes"}

    faults = FaultMiddleware(app, FaultConfig(latency_ms=40))
    app.include_router(admin_router(faults))
    with SandboxServer(faults) as server:
        yield server.url, faults


async def hammer(clients: list[ApiClient], calls_each: int) -> None:
    await asyncio.gather(
        *(
            client.send("GET", "/things", kind="GET things")
            for client in clients
            for _ in range(calls_each)
        )
    )


async def test_three_clients_never_have_more_in_flight_than_the_connection_allows(
    store_factory: StoreFactory, api: tuple[str, FaultMiddleware]
) -> None:
    url, faults = api
    stores = [store_factory() for _ in range(3)]
    connection = seed_integration(stores[0]).av.id
    limits = ClientLimits(concurrency=CONCURRENCY)
    clients = [ApiClient(url, limits=limits) for _ in stores]
    for client, store in zip(clients, stores, strict=True):
        client.share_limits(SharedGate(store.connection_limits, connection, limits))
    try:
        await hammer(clients, 12)
    finally:
        for client in clients:
            await client.aclose()
    assert faults.log.counts() == {"GET /things": 36}
    assert faults.log.max_in_flight == CONCURRENCY
    assert stores[0].connection_limits.held(connection) == 0


async def test_without_sharing_three_clients_put_three_times_as_many_in_flight(
    api: tuple[str, FaultMiddleware],
) -> None:
    """The control: each process's own limit alone lets the sum exceed the connection's."""
    url, faults = api
    clients = [ApiClient(url, limits=ClientLimits(concurrency=CONCURRENCY)) for _ in range(3)]
    try:
        await hammer(clients, 12)
    finally:
        for client in clients:
            await client.aclose()
    assert faults.log.max_in_flight > CONCURRENCY


def take(store: Store, connection: int, owner: str, ceiling: float | None = None) -> Any:
    """A slot for `owner` (held 60 s at most) and its start: (slot, rate, wait) or None."""
    return store.connection_limits.take(
        connection, concurrency=CONCURRENCY, owner=owner, ttl_s=60, ceiling=ceiling
    )


def test_the_slots_of_a_dead_holder_come_back_when_they_expire(store: Store) -> None:
    connection = seed_integration(store).av.id
    limits = store.connection_limits
    taken = {take(store, connection, "dead-worker")[0] for _ in range(3)}
    assert taken == {0, 1, 2}
    assert take(store, connection, "live-worker") is None
    with store.engine.begin() as session:  # the dead worker's leases run out
        session.execute(
            text("UPDATE connection_slots SET expires_at = :past WHERE slot = 1"),
            {"past": utc_now() - timedelta(seconds=1)},
        )
    assert take(store, connection, "live-worker")[0] == 1
    assert take(store, connection, "live-worker") is None
    limits.free_slot(connection, 1, "dead-worker")  # too late: the slot is the live one's now
    assert limits.held(connection) == 3
    limits.free_owner("dead-worker")
    assert limits.held(connection) == 1


def database_now(store: Store) -> Any:
    with store.engine.connect() as db:
        return db.execute(text("SELECT clock_timestamp()")).scalar()


def pace(store: Store, connection: int) -> Any:
    """The connection's shared pace row: rate, next_start, paused_until."""
    with store.engine.connect() as db:
        return db.execute(
            text(
                "SELECT rate, next_start, paused_until FROM connection_pace "
                "WHERE connection_id = :c"
            ),
            {"c": connection},
        ).one()


async def test_the_rate_and_a_429_pause_are_shared(store_factory: StoreFactory) -> None:
    """Two processes at a ceiling of 5 per second take turns in one schedule on the database's
    clock: ten starts put the next one at least ten intervals of 0.2 s after the first could
    be; a 429 seen by one halves the rate of the other and pauses its starts for Retry-After."""
    stores = [store_factory(), store_factory()]
    connection = seed_integration(stores[0]).pim.id
    limits = ClientLimits(rate_per_second=5)
    gates = [SharedGate(store.connection_limits, connection, limits) for store in stores]
    before = database_now(stores[0])
    for i in range(10):
        async with gates[i % 2].slot(asyncio.sleep):
            pass
    assert pace(stores[0], connection).next_start >= before + timedelta(seconds=10 * 0.2)
    before_429 = database_now(stores[0])
    await gates[0].throttled(retry_after=3)
    row = pace(stores[1], connection)
    assert row.rate == 5 / 2
    assert row.paused_until >= before_429 + timedelta(seconds=3)
    _, rate, _ = take(stores[1], connection, "other", ceiling=5)
    assert rate == 5 / 2
    for _ in range(3):
        stores[1].connection_limits.answered(
            connection, ceiling=5, step=RateLimiter.RATE_STEP, off_above=RateLimiter.OFF_ABOVE
        )
    assert take(stores[0], connection, "other", ceiling=5)[1] == 5


async def test_without_a_ceiling_there_is_no_spacing_until_a_429(store: Store) -> None:
    connection = seed_integration(store).pim.id
    gate = SharedGate(store.connection_limits, connection, ClientLimits())
    waits = []
    for _ in range(5):
        async with gate.slot(asyncio.sleep) as wait:
            waits.append(wait)
    assert waits == [0.0] * 5
    await gate.throttled(retry_after=None)
    _, rate, _ = take(store, connection, "other")
    assert rate is not None and rate >= RateLimiter.MIN_RATE


def test_a_plain_httpx_client_sees_the_figure(api: tuple[str, FaultMiddleware]) -> None:
    url, _ = api
    with httpx.Client(base_url=url) as http:
        http.get("/things")
        log = http.get("/_admin/requests").json()
        assert log["max_in_flight"] == 1
        assert http.delete("/_admin/requests").json() == {"total": 0, "max_in_flight": 0}


def test_a_worker_paused_inside_a_take_holds_up_the_others_only_until_it_counts_as_gone(
    store_factory: StoreFactory,
) -> None:
    """A worker stopped between its take's update of the connection's pace and the commit (a
    SIGSTOP, a suspended host) keeps that row locked; every other worker's take waits on it.
    The server ends such a transaction once it is as old as the takeover threshold: the others
    go on, and the paused worker, woken, gets an error instead of writing."""
    paused, other = store_factory(takeover_after_seconds=2), store_factory(takeover_after_seconds=2)
    connection = seed_integration(paused).av.id
    taken = other.connection_limits.take(
        connection, concurrency=3, owner="other", ttl_s=60, ceiling=None
    )
    assert taken is not None  # the connection's pace row exists from here on
    with paused.engine.connect() as db:
        db.begin()
        db.execute(
            text("UPDATE connection_pace SET next_start = next_start WHERE connection_id = :c"),
            {"c": connection},
        )
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                other.connection_limits.take,
                connection,
                concurrency=3,
                owner="other",
                ttl_s=60,
                ceiling=None,
            )
            try:  # without the server's limit, this waits for as long as the transaction
                assert waiting.result(timeout=60) is not None
            finally:
                if not waiting.done():
                    db.invalidate()  # ends it, so the test fails instead of hanging
        with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
            db.commit()
    assert other.connection_limits.held(connection) == 2
