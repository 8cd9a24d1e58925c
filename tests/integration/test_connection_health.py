"""A connection's health (the dashboard's "last successful call" and "last error") is what the
calls of runs and tests left on it: a run through the engine keeps it when it ends, a test at
once, and a record's own error is not the connection's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from koppel.config import load_config
from koppel.services import connections, runs, setup
from koppel.settings import Settings
from koppel.store import Store, open_store
from tests.sandboxes_inprocess import InProcessSandboxes, inprocess_sandboxes

PRODUCTS = {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}


@pytest.fixture
def sandboxes() -> Iterator[InProcessSandboxes]:
    with inprocess_sandboxes(5, seed=2) as served:
        yield served


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "koppel", database_url=None, secret_key=None)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


def applied(store: Store, tmp_path: Path, document: dict[str, Any]) -> None:
    file = tmp_path / "integration.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False))
    setup.apply_file(store, load_config(file), file, actor="test")


async def run_products(store: Store, settings: Settings, sandboxes: InProcessSandboxes) -> str:
    [flow] = store.flows.list()
    async with runs.started_runner(
        store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        [report] = await runs.run_flows(runner, store, [flow])
    return report.status


async def test_a_run_keeps_when_both_connections_last_answered(
    store: Store, settings: Settings, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    applied(store, tmp_path, sandboxes.integration({"products": PRODUCTS}))
    before = {c.name: c for c in store.connections.list()}
    assert before["pim"].last_ok_at is None and before["av"].last_ok_at is None
    assert await run_products(store, settings, sandboxes) == "succeeded"
    after = {c.name: c for c in store.connections.list()}
    assert after["pim"].last_ok_at is not None and after["av"].last_ok_at is not None
    assert after["pim"].last_error is None and after["av"].last_error is None
    assert after["pim"].updated_at == before["pim"].updated_at  # not a change of the connection


async def test_refused_credentials_are_the_connections_last_error_in_a_run_and_a_test(
    store: Store, settings: Settings, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["connections"]["pim"]["credentials"]["api_key"] = "not-the-key"
    applied(store, tmp_path, document)
    assert await run_products(store, settings, sandboxes) == "failed"
    pim = store.connections.get_by_name(store.tenants.ensure("demo").id, "pim")
    assert pim is not None and pim.last_ok_at is None
    assert pim.last_error is not None and "credentials were refused" in pim.last_error
    assert "not-the-key" not in pim.last_error
    first_error_at = pim.last_error_at
    check = await connections.check_connection(store, pim, transport=sandboxes.transport)
    assert not check.works
    tested = store.connections.get(pim.id)
    assert tested is not None and tested.last_error == check.message
    assert tested.last_error_at is not None and first_error_at is not None
    assert tested.last_error_at > first_error_at
    av = store.connections.get_by_name(pim.tenant_id, "av")
    assert av is not None
    assert (await connections.check_connection(store, av, transport=sandboxes.transport)).works
    av_now = store.connections.get(av.id)
    assert av_now is not None and av_now.last_ok_at is not None and av_now.last_error is None
