"""A record that belongs to one system is never written back from the other, even after a crash.

The products flow (Parts Pim -> AccountView) is killed with SIGKILL after AccountView has taken
a batch of articles and before Koppel has recorded them; the products flow the other way runs
before the first one resumes. It must take none of those articles for AccountView's own: the
Parts Pim catalogue stays unchanged byte for byte. Then the killed run resumes and confirms its
links.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from koppel.cli import app
from koppel.engine.runner import FlowRunner
from koppel.store import RunStatus, open_store
from koppel.store.tables import utc_now
from tests.e2e.conftest import Platform
from tests.e2e.gates import post_of
from tests.e2e.processes import KoppelProcess, start_worker, wait_for
from tests.fixtures_store import PostgresDatabases

FLOWS = {
    "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"},
    "products-from-av": {"from": "av", "to": "pim", "entity": "products", "schedule": "manual"},
}


def catalogue(platform: Platform) -> str:
    return json.dumps(platform.sandboxes.partspim.store.all("products"), sort_keys=True)


async def test_killed_between_write_and_record_the_reverse_flow_writes_nothing_back(
    platform_factory: Any, tmp_path: Path
) -> None:
    platform: Platform = platform_factory(30, gated=True, seed=23)
    assert platform.gates is not None
    document = platform.sandboxes.integration(FLOWS)
    config = tmp_path / "two-way.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    platform.apply(document)
    before = catalogue(platform)
    articles = platform.gates.accountview.hold(post_of("AK1"), answered=True)

    sync = KoppelProcess(
        platform.settings.home, "sync", "--config", str(config), "--flow", "products"
    )
    await articles.arrived()
    sync.send(signal.SIGKILL)
    sync.wait()
    articles.release()
    written = {a["ART_CODE"] for a in platform.sandboxes.accountview.rows("ARTICLE")}
    assert written, "AccountView took no article before the kill"
    integration_id = platform.flow("products").integration_id
    claimed = platform.store.links.find_by_target(integration_id, "products", sorted(written))
    assert {link.target_key for link in claimed} == written
    assert all(link.pending for link in claimed), "the batch was recorded before the kill"

    # Another executor id: this runner must not resume the killed run first.
    settings = platform.settings.model_copy(update={"worker_id": "reverse"})
    async with FlowRunner(platform.store, settings, handle_signals=False) as runner:
        back = await runner.run(platform.flow("products-from-av").id)
    assert back.status == "completed", back.error
    reasons = [o.reason for o in platform.store.outcomes.list(back.run_id, limit=10_000)]
    assert sum(1 for r in reasons if r and "came from Parts Pim" in r) >= len(written)
    assert catalogue(platform) == before, "a Parts Pim product was written back"

    resumed = KoppelProcess(
        platform.settings.home, "sync", "--config", str(config), "--flow", "products", name="again"
    )
    assert resumed.wait() in (0, 1), resumed.output()
    links = platform.store.links.find_by_target(integration_id, "products", sorted(written))
    assert links and not any(link.pending for link in links), "a link stayed pending"
    assert catalogue(platform) == before


@pytest.mark.slow
def test_three_workers_on_postgresql_a_killed_products_worker_leaves_nothing_to_write_back(
    platform_factory: Any,
    postgres_databases: PostgresDatabases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's probe: three workers share PostgreSQL; the one running the products flow is
    killed with SIGKILL after AccountView took a batch; the products flow from AccountView runs
    on the others meanwhile. Parts Pim must stay unchanged byte for byte, and once the killed
    worker is back its run ends with every link confirmed."""
    platform: Platform = platform_factory(60, gated=True, seed=29)
    assert platform.gates is not None
    store_url, engine_url = postgres_databases.create(), postgres_databases.create()
    env = {"KOPPEL_DATABASE_URL": store_url, "KOPPEL_ENGINE_DATABASE_URL": engine_url}
    monkeypatch.delenv("KOPPEL_SECRET_KEY", raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(platform.settings.home))
    every_few_seconds = {name: {**flow, "schedule": "5s"} for name, flow in FLOWS.items()}
    document = platform.sandboxes.integration(every_few_seconds, settings={"page_size": 20})
    config = tmp_path / "two-way.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    applied = CliRunner().invoke(app, ["config", "apply", str(config)], env=env)
    assert applied.exit_code == 0, applied.output
    store = open_store(platform.settings.model_copy(update={"database_url": store_url}))
    before = catalogue(platform)
    articles = platform.gates.accountview.hold(post_of("AK1"), answered=True)
    home = platform.settings.home
    workers = {
        name: start_worker(home, name=f"worker-{name}", KOPPEL_WORKER_ID=name, **env)
        for name in ("a", "b", "c")
    }
    try:
        articles.wait_arrived()
        [integration] = store.integrations.list()
        products = store.flows.get_by_name(integration.id, "products")
        back = store.flows.get_by_name(integration.id, "products-from-av")
        assert products is not None and back is not None
        [running] = store.runs.list(flow_id=products.id, status=RunStatus.RUNNING)
        assert running.executor in workers
        killed = workers[running.executor]
        killed.send(signal.SIGKILL)
        killed.wait()
        killed_at = utc_now()
        articles.release()
        written = {a["ART_CODE"] for a in platform.sandboxes.accountview.rows("ARTICLE")}
        assert written, "AccountView took no article before the kill"

        def reverse_ran_since_the_kill() -> bool:
            return any(
                run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
                and run.started_at > killed_at
                for run in store.runs.list(flow_id=back.id, limit=20)
            )

        wait_for(reverse_ran_since_the_kill, what="a run of the reverse flow after the kill")
        assert catalogue(platform) == before, "a Parts Pim product was written back"

        workers[running.executor] = start_worker(
            home, name=f"worker-{running.executor}-again", KOPPEL_WORKER_ID=running.executor, **env
        )
        wait_for(
            lambda: (
                (resumed := store.runs.get(running.id)) is not None
                and resumed.status is not RunStatus.RUNNING
            ),
            what="the killed run to resume and end",
        )
        links = store.links.find_by_target(integration.id, "products", sorted(written))
        assert {link.target_key for link in links} == written
        assert not any(link.pending for link in links), "a link stayed pending"
        assert catalogue(platform) == before
    finally:
        for worker in workers.values():
            if worker.process.poll() is None:
                worker.stop()
        store.close()
