"""Three `koppel worker` processes on one PostgreSQL store and engine database: a connection's
concurrency holds for their sum, and a schedule fires once per interval, one run at a time.

The sandboxes are served by this test process, so their request logs (`max_in_flight`) see every
worker's calls to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from koppel.cli import app
from koppel.sandbox.common import FaultConfig
from tests.e2e.conftest import Platform
from tests.e2e.processes import KoppelProcess, start_worker, wait_for
from tests.fixtures_store import PostgresDatabases

pytestmark = pytest.mark.postgres

CONCURRENCY = 2
"""Each connection's: three workers, each allowed as many, must not put more in flight."""
TABLES = {
    "payment_terms": {"DIR": "03", "14D": "01", "30D": "02"},
    "payment_methods": {
        "IDEAL": "IDEAL",
        "BANK": "BANK",
        "PIN": "PIN",
        "CREDIT": "CREDITCARD",
        "REMBOURS": "CONTANT",
    },
}


@pytest.fixture
def platform(platform_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """300 products; every call to AccountView takes 30 ms and every call to Parts Pim 150 ms,
    so calls of different runs overlap: a run reads its pages one after the other, and the
    products run's fifteen reads (over two seconds) span the other runs' first reads, which
    the same `config apply` starts (at 30 ms, on a loaded machine, they could miss)."""
    made: Platform = platform_factory(
        300,
        partspim_faults=FaultConfig(latency_ms=150),
        accountview_faults=FaultConfig(latency_ms=30),
    )
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(made.settings.home))
    return made


@pytest.fixture
def databases(postgres_databases: PostgresDatabases) -> Iterator[dict[str, str]]:
    """The environment of every process: a store and an engine database of the test's own."""
    yield {
        "KOPPEL_DATABASE_URL": postgres_databases.create(),
        "KOPPEL_ENGINE_DATABASE_URL": postgres_databases.create(),
    }


def apply(platform: Platform, env: dict[str, str], flows: dict[str, dict[str, Any]]) -> None:
    document = platform.sandboxes.integration(
        flows,
        settings={"page_size": 20, "tables": TABLES},
        options={"concurrency": CONCURRENCY},
    )
    path = platform.home / "acme.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    applied = CliRunner().invoke(app, ["config", "apply", str(path)], env=env)
    assert applied.exit_code == 0, applied.output


def runs(env: dict[str, str]) -> list[Any]:
    """Every run in the store: flow name, id, status, executor, start and end."""
    engine = sa.create_engine(env["KOPPEL_DATABASE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = sa.text(
                "SELECT flows.name, runs.id, runs.status, runs.executor, runs.started_at, "
                "runs.finished_at FROM runs JOIN flows ON flows.id = runs.flow_id "
                "ORDER BY runs.started_at"
            )
            return list(connection.execute(query))
    finally:
        engine.dispose()


def workers(platform: Platform, env: dict[str, str], **more: str) -> list[KoppelProcess]:
    started: list[KoppelProcess] = []
    for name in ("a", "b", "c"):
        started.append(
            start_worker(
                platform.settings.home,
                name=f"worker-{name}",
                KOPPEL_WORKER_ID=name,
                **env,
                **more,
            )
        )
    return started


def stop_all(processes: list[KoppelProcess]) -> None:
    for process in processes:
        process.stop()
    for process in processes:
        assert process.wait() == 0, process.output()


def test_three_workers_never_put_more_calls_in_flight_than_a_connection_allows(
    platform: Platform, databases: dict[str, str]
) -> None:
    """Three flows of one integration (both connections shared), one run on each worker (one
    run at a time per worker): the sandboxes never had more than the connections' concurrency
    in flight, though each worker alone may have that many."""
    flows = {
        "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "24h"},
        "customers": {"from": "pim", "to": "av", "entity": "customers", "schedule": "24h"},
        "categories": {"from": "pim", "to": "av", "entity": "categories", "schedule": "24h"},
    }
    apply(platform, databases, {name: {**flow, "enabled": False} for name, flow in flows.items()})
    started = workers(
        platform, databases, KOPPEL_ENGINE_CONCURRENCY="3", KOPPEL_WORKER_CONCURRENCY="1"
    )
    try:
        for sandbox in (platform.sandboxes.partspim, platform.sandboxes.accountview):
            sandbox.faults.log.clear()
        apply(platform, databases, flows)
        wait_for(
            lambda: sorted(r.status for r in runs(databases)) == ["succeeded"] * 3,
            what="a successful run of each flow",
        )
    finally:
        stop_all(started)
    done = runs(databases)
    assert {r.executor for r in done} == {"a", "b", "c"}, done
    for sandbox in (platform.sandboxes.partspim, platform.sandboxes.accountview):
        assert sandbox.faults.log.max_in_flight == CONCURRENCY, sandbox.faults.log.counts()
    product_run = next(r for r in done if r.name == "products")
    assert all(  # the products run overlapped the other two (not one after the other)
        r.started_at < product_run.finished_at and product_run.started_at < r.finished_at
        for r in done
    ), done


def test_a_schedule_fires_once_per_interval_across_three_workers(
    platform: Platform, databases: dict[str, str]
) -> None:
    """Every 2 s, three workers ticking every second: one run per interval slot (the run id is
    the slot; DBOS keeps one workflow per id), never two runs of the flow at once (one queue
    partition per flow, claimed in a serializable transaction)."""
    apply(
        platform,
        databases,
        {"categories": {"from": "pim", "to": "av", "entity": "categories", "schedule": "2s"}},
    )
    started = workers(platform, databases)
    try:
        wait_for(
            lambda: len([r for r in runs(databases) if r.finished_at is not None]) >= 5,
            what="five runs of the categories flow",
        )
    finally:
        stop_all(started)
    every = runs(databases)  # the last may have been stopped mid-run: it resumes, same id
    slots = [r.id.rsplit("-", 1)[1] for r in every]
    assert len(slots) == len(set(slots)), every
    assert all(r.id.split("-")[-2] == "every2s" for r in every), every
    for earlier, later in pairwise(every):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, every
    assert [r.status for r in every if r.finished_at is not None].count("succeeded") >= 5, every
