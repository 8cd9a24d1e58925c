"""`/metrics`, `/healthz` and `/readyz` of a real app over a real store.

The figures are scraped after real runs against both sandboxes and compared with what the store
holds; the token guards `/metrics`; `/readyz` fails with a reason when the store is gone (a
removed SQLite file, a dropped PostgreSQL database), the schema is not at head, or the engine
does not run.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, make_url, text

from koppel.engine.runner import FlowRunner
from koppel.services import runs
from koppel.settings import Settings
from koppel.store import OutcomeKind, RunStatus, Store
from koppel.store.tables import utc_now
from koppel.web import create_app
from tests.fixtures_store import PostgresDatabases
from tests.web.records import WORKSPACE, Shop, synced_shop

TOKEN = "metrics-token-for-the-test"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def with_token(settings: Settings) -> Settings:
    return Settings.model_validate(settings.model_dump() | {"metrics_token": TOKEN})


@pytest.fixture
def shop(store: Store, web_settings: Settings, tmp_path: Path) -> Iterator[Shop]:
    with synced_shop(store, web_settings, tmp_path) as shop:
        yield shop


@pytest.fixture
def metrics_app(web_settings: Settings, store: Store, shop: Shop) -> Iterator[FastAPI]:
    app = create_app(with_token(web_settings), store=store)
    with TestClient(app):
        yield app


def scrape(app: FastAPI) -> Samples:
    response = TestClient(app).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def of_flow(shop: Shop, **labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(
        {
            "workspace": WORKSPACE,
            "integration": "initech-shop",
            "flow": shop.flow.name,
            **labels,
        }.items()
    )


def run_again(store: Store, shop: Shop) -> None:
    async def sync() -> None:
        async with runs.started_runner(
            store, shop.settings, handle_signals=False, transport=shop.sandboxes.transport
        ) as runner:
            await runs.run_flows(runner, store, [shop.flow])

    asyncio.run(sync())


def test_the_store_figures_match_the_store_after_real_runs(
    metrics_app: FastAPI, store: Store, shop: Shop
) -> None:
    run_again(store, shop)
    statements: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", capture)
    before = datetime.now(UTC)
    try:
        samples = scrape(metrics_app)
    finally:
        after = datetime.now(UTC)
        event.remove(store.engine, "before_cursor_execute", capture)
    # The scrape's cost follows the runs, not the log: it never reads the outcomes.
    assert statements and not [s for s in statements if "outcomes" in s]

    flow_runs = store.runs.list(flow_id=shop.flow.id, limit=1000)
    assert len(flow_runs) == 2
    by_status = {status: sum(r.status is status for r in flow_runs) for status in RunStatus}
    for status, count in by_status.items():
        key = ("koppel_runs", of_flow(shop, status=status.value))
        assert samples.get(key, 0) == count, status
    assert by_status[RunStatus.PARTIAL] == 2  # the two too-long SKUs fail in both runs

    for kind in OutcomeKind:
        logged = len(store.outcomes.search(flow_ids=[shop.flow.id], outcome=kind, limit=100_000))
        assert samples[("koppel_outcomes_total", of_flow(shop, kind=kind.value))] == logged, kind
    failed = samples[("koppel_outcomes_total", of_flow(shop, kind="failed"))]
    assert failed == 4

    assert samples[("koppel_dead_letters_waiting", of_flow(shop))] == len(shop.pending(store)) == 2

    finished = max(r.finished_at for r in flow_runs if r.finished_at is not None)
    lag = samples[("koppel_freshness_lag_seconds", of_flow(shop))]
    assert (before - finished).total_seconds() <= lag <= (after - finished).total_seconds()


def test_the_outbox_size_is_what_waits_to_be_sent_per_workspace(
    metrics_app: FastAPI, store: Store, shop: Shop
) -> None:
    tenant = store.tenants.ensure(WORKSPACE)
    store.notifications.enqueue(tenant.id, "run-failed:a", "run_failed", {}, ["email", "webhook"])
    store.notifications.enqueue(tenant.id, "run-failed:b", "run_failed", {}, ["email"])
    [sent, *_] = store.notifications.claim_due(now=datetime.now(UTC), limit=1)
    store.notifications.mark_sent(sent.id, now=datetime.now(UTC))
    samples = scrape(metrics_app)
    workspace = frozenset({"workspace": WORKSPACE}.items())
    assert samples[("koppel_notification_outbox_waiting", workspace)] == 2
    assert store.notifications.waiting() == 2


def test_the_api_call_figures_count_every_call_of_a_run_by_connection_and_status(
    metrics_app: FastAPI, store: Store, shop: Shop
) -> None:
    """Per-process counters: the calls a run made in this process between two scrapes are
    the requests each sandbox answered, by status."""
    logs = {"pim": shop.sandboxes.partspim.faults.log, "av": shop.sandboxes.accountview.faults.log}
    first = scrape(metrics_app)
    for log in logs.values():
        log.clear()
    shop.fix_the_sku()  # a change to write: the run calls AccountView too
    run_again(store, shop)
    second = scrape(metrics_app)
    for connection, log in logs.items():
        answered = Counter(str(entry.status) for entry in log.entries())
        assert answered, f"the run made no call through {connection}"
        for status, count in answered.items():
            key = (
                "koppel_api_calls_total",
                frozenset({"connection": connection, "status": status}.items()),
            )
            assert second[key] - first.get(key, 0) == count, (connection, status)
        timed = (
            "koppel_api_call_duration_seconds_count",
            frozenset({"connection": connection}.items()),
        )
        assert second[timed] - first.get(timed, 0) == sum(answered.values()), connection


def test_the_heartbeat_age_of_every_live_worker_and_none_of_stopped_ones(
    metrics_app: FastAPI, store: Store
) -> None:
    since = utc_now()
    store.executors.beat("worker-a", host="box-1", pid=10, started_at=since)
    store.executors.beat("worker-b", host="box-2", pid=20, started_at=since)
    store.executors.stopped("worker-b")
    before = utc_now()
    samples = scrape(metrics_app)
    beat = next(e.last_beat_at for e in store.executors.list() if e.id == "worker-a")
    age = samples[
        (
            "koppel_worker_heartbeat_age_seconds",
            frozenset({"worker": "worker-a", "host": "box-1"}.items()),
        )
    ]
    assert 0 <= age <= (utc_now() - beat).total_seconds()
    assert (before - beat).total_seconds() <= age
    ages = [name for (name, labels) in samples if dict(labels).get("worker") == "worker-b"]
    assert ages == []


def test_monitoring_md_names_every_metric_the_scrape_serves(
    metrics_app: FastAPI, store: Store, shop: Shop
) -> None:
    response = TestClient(metrics_app).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    served = {family.name for family in text_string_to_metric_families(response.text)}
    doc = (Path(__file__).parents[2] / "docs" / "monitoring.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(koppel_\w+)` \|", doc, re.MULTILINE))
    named = {name.removesuffix("_total") for name in table}
    assert named == served


def test_metrics_needs_the_token_and_is_off_without_one(
    web_settings: Settings, store: Store
) -> None:
    with TestClient(create_app(web_settings, store=store)) as off:
        response = off.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 404
        assert "KOPPEL_METRICS_TOKEN" in response.text
    with TestClient(create_app(with_token(web_settings), store=store)) as on:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = on.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "koppel_" not in refused.text
        assert on.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_healthz_and_readyz_answer_without_sign_in_and_show_no_data(
    web_settings: Settings, store: Store
) -> None:
    with TestClient(create_app(web_settings, store=store)) as client:
        alive = client.get("/healthz")
        assert (alive.status_code, alive.text) == (200, "ok\n")
        ready = client.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")


def test_readyz_needs_the_engine_running_when_the_server_runs_it(
    web_settings: Settings, store: Store
) -> None:
    runner = FlowRunner(store, web_settings, handle_signals=False)
    app = create_app(web_settings, store=store, runner=runner)
    not_started = TestClient(app).get("/readyz")  # no lifespan: the engine was never started
    assert not_started.status_code == 503
    assert "the engine is not running" in not_started.text
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_schema_is_not_at_head(web_settings: Settings, store: Store) -> None:
    with TestClient(create_app(web_settings, store=store)) as client:
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "schema is not at this version's migrations" in answer.text


def test_readyz_is_503_when_the_sqlite_file_was_removed(tmp_path: Path, secret_key: str) -> None:
    database = tmp_path / "gone.db"
    settings = Settings.model_validate(
        {
            "home": tmp_path / "home",
            "database_url": f"sqlite:///{database}",
            "secret_key": secret_key,
            "web_allowed_hosts": "testserver",
        }
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        for file in tmp_path.glob("gone.db*"):
            file.unlink()
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "SQLite file is missing" in answer.text
        assert str(tmp_path) not in answer.text
        assert client.get("/healthz").status_code == 200


@pytest.mark.postgres
def test_readyz_is_503_when_the_postgresql_database_was_dropped(
    postgres_databases: PostgresDatabases, tmp_path: Path, secret_key: str
) -> None:
    url = postgres_databases.create()
    settings = Settings.model_validate(
        {
            "home": tmp_path / "home",
            "database_url": url,
            "secret_key": secret_key,
            "web_allowed_hosts": "testserver",
        }
    )
    name = make_url(url).database
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        server = make_url(url)
        with psycopg.connect(
            host=server.host,
            port=server.port or 5432,
            user=server.username,
            password=server.password,
            dbname="postgres",
            autocommit=True,
        ) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "the store does not answer" in answer.text
        assert str(name) not in answer.text
