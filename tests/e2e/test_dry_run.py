"""The dry run over real HTTP: what the first sync would do, with no write to either sandbox
and nothing kept in Koppel's store; then the real sync does exactly that."""

from __future__ import annotations

import json
from typing import Any

from koppel.services.dry_run import DryRunReport, dry_run_flows
from koppel.store import Store
from tests.e2e.cli import Setup, koppel, sellable_skus
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import counts, run_flow
from tests.e2e.test_orders_to_accountview import (
    add_order,
    add_relation,
    integration,
    orders_in_av,
    setup,
    some_skus,
)

WRITES = ("POST", "PUT", "PATCH", "DELETE")
TOKEN_PATH = "/token"
"""AccountView's OAuth token endpoint: a POST that logs in, not a write of data."""


def writes_seen(platform: Platform) -> list[str]:
    """Every data write either sandbox answered (its request log, as /_admin/requests shows)."""
    return [
        f"{entry.method} {entry.path}"
        for sandbox in (platform.sandboxes.partspim, platform.sandboxes.accountview)
        for entry in sandbox.faults.log.entries()
        if entry.method in WRITES and not entry.path.endswith(TOKEN_PATH)
    ]


def kept(store: Store) -> dict[str, int]:
    """What a run leaves in the store: runs, outcomes, links, cursors, dead letters."""
    with store.engine.connect() as connection:
        return {
            table: int(connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)
            for table in ("runs", "outcomes", "links", "cursors", "dead_letters")
        }


def forecast(report: DryRunReport, flow: str) -> dict[str, dict[str, int]]:
    [found] = [f for f in report.flows if f.flow == flow]
    assert found.error is None, found.error
    return found.counts()


async def test_a_dry_run_forecasts_the_first_sync_and_writes_nothing(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(20)
    setup(platform)
    relation = add_relation(
        platform, type="person", first_name="Jan", last_name="Jansen", email="jan@example.nl"
    )
    add_order(platform, relation, some_skus(platform, 2), shipping_cost="0")
    add_order(platform, relation, some_skus(platform, 1), shipping_cost="0")
    integration(platform)
    for sandbox in (platform.sandboxes.partspim, platform.sandboxes.accountview):
        sandbox.faults.log.clear()
    articles_before = len(platform.sandboxes.accountview.rows("ARTICLE"))
    orders_before = len(orders_in_av(platform))
    store_before = kept(platform.store)
    flows = [platform.flow(name) for name in ("products", "customers", "orders")]

    report = await dry_run_flows(platform.store, flows)

    assert writes_seen(platform) == []
    assert kept(platform.store) == store_before
    assert len(platform.sandboxes.accountview.rows("ARTICLE")) == articles_before
    assert len(orders_in_av(platform)) == orders_before
    products = forecast(report, "products")
    categories = len(platform.sandboxes.partspim.store.all("categories"))
    assert products["categories"]["created"] == categories
    assert products["products"]["created"] == len(sellable_skus(platform))
    pim_orders = platform.sandboxes.partspim.store.all("orders")
    relations = platform.sandboxes.partspim.store.all("relations")
    assert forecast(report, "customers")["customers"]["created"] == len(relations)
    # The orders see the articles and the debtors the flows before them would have created.
    assert forecast(report, "orders")["orders"] == {
        "created": len(pim_orders),
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert report.ok
    [article, *_] = report.examples[("accountview", "articles")]
    assert article.created and article.record["ART_CODE"] == article.key
    assert report.writes[("accountview", "articles")] == len(sellable_skus(platform))

    for flow in flows:
        synced = counts(platform, await run_flow(platform, flow.name))
        for entity, numbers in forecast(report, flow.name).items():
            prefix = "" if entity == flow.entity else f"{entity}."
            done = {kind: synced.get(prefix + kind, 0) for kind in ("created", "updated", "failed")}
            assert done == {kind: numbers[kind] for kind in done}, (flow.name, entity)
    assert len(orders_in_av(platform)) == orders_before + len(pim_orders)

    # After the sync, the next one would write nothing: what it reads again is unchanged.
    again = await dry_run_flows(platform.store, [platform.flow("products")])
    for unchanged in again.flows[0].entities:
        assert (unchanged.created, unchanged.updated, unchanged.failed) == (0, 0, 0), unchanged
    assert again.examples == {} and again.ok


def test_sync_dry_run_on_the_command_line(cli_setup: Setup) -> None:
    config = cli_setup.write(cli_setup.document())
    platform = cli_setup.platform
    for sandbox in (platform.sandboxes.partspim, platform.sandboxes.accountview):
        sandbox.faults.log.clear()

    shown = koppel("sync", "--config", str(config), "--dry-run")
    assert shown.exit_code == 0, shown.output
    assert "nothing was written" in shown.stdout and "would send" in shown.stdout
    as_json = koppel("sync", "--config", str(config), "--dry-run", "--json")
    assert as_json.exit_code == 0, as_json.output
    [flow] = json.loads(as_json.stdout)["dry_run"]["flows"]
    assert flow["entities"]["products"]["created"] == len(sellable_skus(platform))

    assert writes_seen(platform) == []
    assert cli_setup.articles() == {}
    assert json.loads(koppel("runs", "--json").stdout) == []
