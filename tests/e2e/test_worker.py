"""`koppel worker` and `koppel sync` as processes: stops at any moment, the retention purge's
schedule, configuration picked up while running, two workers sharing one engine database."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy import update
from typer.testing import CliRunner

from koppel.cli import app
from koppel.commands.running import WorkerLines
from koppel.services.worker import serve
from koppel.store import RunStatus
from koppel.store.records import OutcomeEntry, OutcomeKind
from koppel.store.tables import OutcomeRow, utc_now
from tests.e2e.conftest import Platform
from tests.e2e.gates import listing_after
from tests.e2e.processes import STOPPING, KoppelProcess, start_worker, wait_for
from tests.fixtures_store import PostgresDatabases

PRODUCTS_FLOW = {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}
PAGE_SIZE = 20


@pytest.fixture
def platform(platform_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """60 products behind gates; the processes share the test's store (KOPPEL_HOME)."""
    made: Platform = platform_factory(60, gated=True)
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(made.settings.home))
    return made


def write_config(platform: Platform, flows: dict[str, dict[str, Any]]) -> Path:
    document = platform.sandboxes.integration(flows, settings={"page_size": PAGE_SIZE})
    path = platform.home / "acme.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def koppel(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def products_to_sync(platform: Platform) -> int:
    return sum(
        len(p.get("variants") or []) if p["type"] == "configurable" and p.get("variants") else 1
        for p in platform.sandboxes.partspim.store.all("products")
    )


def product_outcomes(platform: Platform, run_id: str) -> list[str]:
    logged = platform.store.outcomes.list(run_id, limit=100_000)
    return [o.source_key for o in logged if not o.source_key.startswith("category:")]


def assert_stopped_cleanly(worker: KoppelProcess) -> None:
    code = worker.wait()
    output = worker.output()
    assert code == 0, output
    assert "worker stopped" in output, output
    assert "Traceback" not in output and "RuntimeError" not in output, output


# -- SIGTERM at any moment ---------------------------------------------------------------------


def test_worker_stopped_right_after_it_started(platform: Platform) -> None:
    config = write_config(platform, {"products": PRODUCTS_FLOW})
    assert koppel("config", "apply", str(config)).exit_code == 0
    worker = start_worker(platform.settings.home)
    worker.send(signal.SIGTERM)
    assert_stopped_cleanly(worker)


def test_worker_stopped_during_a_run_records_its_batch_and_the_run_resumes(
    platform: Platform,
) -> None:
    """The stop comes while the run waits for a page: that batch finishes and is recorded, no
    other begins, the run stays pending and the next engine start finishes it."""
    config = write_config(platform, {"products": PRODUCTS_FLOW})
    assert koppel("config", "apply", str(config)).exit_code == 0
    assert platform.gates is not None
    page = platform.gates.partspim.hold(listing_after("products"))
    worker = start_worker(platform.settings.home)
    page.wait_arrived()
    worker.send(signal.SIGTERM)
    worker.wait_for_output(STOPPING)
    page.release()
    assert_stopped_cleanly(worker)

    flow = platform.flow("products")
    [interrupted] = platform.store.runs.list(flow_id=flow.id)
    assert interrupted.status is RunStatus.RUNNING  # pending in the engine, not ended
    done = product_outcomes(platform, interrupted.id)
    assert 0 < len(done) < products_to_sync(platform)

    resumed = koppel("sync", "--config", str(config))
    assert resumed.exit_code == 0, resumed.output
    runs = {run.id: run for run in platform.store.runs.list(flow_id=flow.id)}
    assert len(runs) == 2 and runs[interrupted.id].status is RunStatus.SUCCEEDED
    keys = product_outcomes(platform, interrupted.id)
    assert keys[: len(done)] == done and len(keys) == len(set(keys)) == products_to_sync(platform)
    codes = Counter(r["ART_CODE"] for r in platform.sandboxes.accountview.rows("ARTICLE"))
    assert len(codes) == products_to_sync(platform) and max(codes.values()) == 1


def test_worker_stopped_between_runs(platform: Platform) -> None:
    config = write_config(platform, {"products": PRODUCTS_FLOW})
    assert koppel("config", "apply", str(config)).exit_code == 0
    worker = start_worker(platform.settings.home)
    worker.wait_for_output("products: succeeded")
    worker.send(signal.SIGTERM)
    assert_stopped_cleanly(worker)


def test_sync_stopped_by_ctrl_c_exits_130_and_its_run_resumes(platform: Platform) -> None:
    config = write_config(platform, {"products": PRODUCTS_FLOW})
    assert platform.gates is not None
    page = platform.gates.partspim.hold(listing_after("products"))
    sync = KoppelProcess(platform.settings.home, "sync", "--config", str(config))
    page.wait_arrived()
    sync.send(signal.SIGINT)
    sync.wait_for_output(STOPPING)
    page.release()
    assert sync.wait() == 130, sync.output()
    assert "resumes on the next start" in " ".join(sync.output().split())  # lines may wrap
    assert "Traceback" not in sync.output()
    flow = platform.flow("products")
    [interrupted] = platform.store.runs.list(flow_id=flow.id)
    assert interrupted.status is RunStatus.RUNNING
    again = koppel("sync", "--config", str(config))
    assert again.exit_code == 0, again.output
    assert platform.store.runs.get(interrupted.id).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]


# -- the retention purge: at start, then on its interval ---------------------------------------


def age_outcomes(platform: Platform, run_id: str, days: int) -> None:
    with platform.store.engine.begin() as connection:
        connection.execute(
            update(OutcomeRow)
            .where(OutcomeRow.run_id == run_id)
            .values(created_at=utc_now() - timedelta(days=days))
        )


def old_log(platform: Platform, key: str) -> str:
    """A run with one activity-log entry older than the retention window (30 days)."""
    flow = platform.flow("products")
    run = platform.store.runs.start(flow.id, run_id=f"old-{key}-{uuid.uuid4().hex}")
    platform.store.outcomes.record_many(run.id, [OutcomeEntry(key, OutcomeKind.CREATED)])
    age_outcomes(platform, run.id, 40)
    return run.id


def test_worker_purges_the_log_at_start(platform: Platform) -> None:
    manual = {**PRODUCTS_FLOW, "schedule": "manual"}
    assert (
        koppel("config", "apply", str(write_config(platform, {"products": manual}))).exit_code == 0
    )
    expired = old_log(platform, "expired")
    worker = start_worker(platform.settings.home)
    try:
        wait_for(lambda: not platform.store.outcomes.list(expired), what="the purge at the start")
        worker.wait_for_output("retention: deleted 1 log entries")
    finally:
        worker.stop()
    assert_stopped_cleanly(worker)


async def test_serve_purges_again_on_its_interval(platform: Platform) -> None:
    manual = {**PRODUCTS_FLOW, "schedule": "manual"}
    platform.apply(platform.sandboxes.integration({"products": manual}))
    first = old_log(platform, "first")
    async with platform.runner() as runner:
        serving = asyncio.ensure_future(
            serve(runner, platform.store, WorkerLines(), purge_every_s=0.2)
        )
        await until(lambda: not platform.store.outcomes.list(first))
        second = old_log(platform, "second")
        await until(lambda: not platform.store.outcomes.list(second))
        runner.engine.request_stop()
        await serving


async def until(condition: Any) -> None:
    for _ in range(2400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the state never came")


# -- configuration applied while the worker runs --------------------------------------------


def test_worker_picks_up_a_flow_applied_while_it_runs(platform: Platform) -> None:
    disabled = {**PRODUCTS_FLOW, "enabled": False}
    config = write_config(platform, {"products": disabled})
    assert koppel("config", "apply", str(config)).exit_code == 0
    worker = start_worker(platform.settings.home)
    try:
        assert "no enabled flow has a schedule yet" in worker.output()
        enabled = write_config(platform, {"products": PRODUCTS_FLOW})
        assert koppel("config", "apply", str(enabled)).exit_code == 0
        worker.wait_for_output("products: succeeded")
    finally:
        worker.stop()
    assert_stopped_cleanly(worker)
    # The first run; a later one starts when the worker lives into the next minute's slot.
    runs = platform.store.runs.list(flow_id=platform.flow("products").id)
    assert runs and runs[-1].status is RunStatus.SUCCEEDED, runs


# -- two workers on one PostgreSQL engine database ---------------------------------------------


@pytest.fixture
def postgres_urls(postgres_databases: PostgresDatabases) -> Iterator[tuple[str, str]]:
    yield postgres_databases.create(), postgres_databases.create()


def test_two_workers_queue_a_scheduled_run_once(
    platform: Platform, postgres_urls: tuple[str, str]
) -> None:
    """The run id of a scheduled run is its interval slot: a second worker (or a restarted one)
    ticking in the same slot finds the run queued or done and does not run it again. The
    categories flow, enabled once the first worker has stopped, shows the second one ticking."""
    store_url, engine_url = postgres_urls
    env = {"KOPPEL_DATABASE_URL": store_url, "KOPPEL_ENGINE_DATABASE_URL": engine_url}
    daily = {**PRODUCTS_FLOW, "schedule": "24h"}
    categories = {"from": "pim", "to": "av", "entity": "categories", "schedule": "24h"}

    def apply(flows: dict[str, dict[str, Any]]) -> None:
        applied = CliRunner().invoke(
            app, ["config", "apply", str(write_config(platform, flows))], env=env
        )
        assert applied.exit_code == 0, applied.output

    def runs_of(name: str) -> list[Any]:
        engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                query = sa.text(
                    "SELECT runs.id, runs.status FROM runs "
                    "JOIN flows ON flows.id = runs.flow_id WHERE flows.name = :name"
                )
                return list(connection.execute(query, {"name": name}))
        finally:
            engine.dispose()

    day = 24 * 3600
    first_slot = int(utc_now().timestamp() // day)
    apply({"products": daily, "categories": {**categories, "enabled": False}})
    first = start_worker(platform.settings.home, name="worker-a", KOPPEL_WORKER_ID="a", **env)
    second: KoppelProcess | None = None
    try:
        wait_for(
            lambda: [r.status for r in runs_of("products")] == ["succeeded"],
            what="the daily products run",
        )
        second = start_worker(platform.settings.home, name="worker-b", KOPPEL_WORKER_ID="b", **env)
        assert first.stop() == 0, first.output()
        apply({"products": daily, "categories": categories})
        wait_for(
            lambda: [r.status for r in runs_of("categories")] == ["succeeded"],
            what="the categories run the second worker queued",
        )
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert second is not None and second.wait() == 0, second.output()
    slots = int(utc_now().timestamp() // day) - first_slot + 1  # 2 only across midnight (UTC)
    assert len(runs_of("products")) == slots, runs_of("products")
