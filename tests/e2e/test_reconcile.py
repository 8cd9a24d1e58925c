"""Reconciliation over real HTTP: drift made by hand in the AccountView sandbox is found exactly,
record by record and field by field, and "sync these" puts it right."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from koppel.sandbox.accountview.store import COMPANY, table_sql
from koppel.services.demo import DEMO_FLOWS, DEMO_SETTINGS, SHIPPING_ARTICLE
from koppel.services.reconcile import (
    Difference,
    DriftKind,
    ReconcileReport,
    reconcile_flows,
    sync_drift,
)
from tests.e2e.cli import Setup, koppel
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import requests, run_flow

FLOWS = {
    "products": {"from": "pim", "to": "av", "entity": "products"},
    "stock": {"from": "pim", "to": "av", "entity": "stock"},
}


def synced_platform(platform_factory: Any, products: int, **settings: Any) -> Platform:
    platform: Platform = platform_factory(products, seed=3)
    platform.apply(platform.sandboxes.integration(FLOWS, settings=settings or None))
    return platform


async def reconcile(platform: Platform) -> ReconcileReport:
    flows = [platform.flow("products"), platform.flow("stock")]
    return await reconcile_flows(platform.store, flows)


def delete_article(platform: Platform, code: str) -> None:
    """What someone deleting the article in AccountView leaves: no row (the API has no delete)."""
    accountview = platform.sandboxes.accountview
    with accountview.store.transaction() as conn:
        conn.execute(
            f"DELETE FROM {table_sql('ARTICLE')} WHERE {COMPANY} = ? AND ART_CODE = ?",
            (accountview.default_company(), code),
        )


def found(report: ReconcileReport) -> set[Difference]:
    return {d for flow in report.flows for d in flow.differences}


async def test_drift_made_by_hand_is_found_exactly_and_synced_away(platform_factory: Any) -> None:
    platform = synced_platform(platform_factory, 40)
    await run_flow(platform, "products")
    await run_flow(platform, "stock")
    before = await reconcile(platform)
    assert before.ok, [f.error for f in before.flows]
    assert found(before) == set()
    products, stock = before.flows
    assert products.compared > 0 and stock.compared > 0

    accountview = platform.sandboxes.accountview
    articles = {row["ART_CODE"]: row for row in accountview.rows("ARTICLE")}
    priced, deleted, counted = sorted(articles)[3:6]
    old_price = Decimal(str(articles[priced]["PX_SELL"]))
    old_quantity = Decimal(str(articles[counted]["QTY_FREE2"]))
    accountview.edit("ARTICLE", priced, {"PX_SELL": float(old_price + 10)})
    accountview.edit("ARTICLE", counted, {"QTY_FREE2": float(old_quantity + 7)})
    delete_article(platform, deleted)

    after = await reconcile(platform)
    assert after.ok
    keys = _source_keys(platform)
    assert found(after) == {
        Difference(
            "products",
            DriftKind.DIFFERS,
            f"SKU '{priced}'",
            keys["products"][priced],
            priced,
            "PX_SELL",
            _plain(old_price),
            _plain(old_price + 10),
        ),
        Difference(
            "products", DriftKind.MISSING, f"SKU '{deleted}'", keys["products"][deleted], deleted
        ),
        Difference(
            "stock",
            DriftKind.DIFFERS,
            f"stock of SKU '{counted}'",
            counted,
            counted,
            "QTY_FREE2",
            _plain(old_quantity),
            _plain(old_quantity + 7),
        ),
        Difference("stock", DriftKind.MISSING, f"stock of SKU '{deleted}'", deleted, deleted),
    }
    assert [f.drift for f in after.flows] == [2, 2]

    stored = [platform.store.reconciliations.get(f.id) for f in after.flows if f.id]
    cursors = [platform.store.cursors.get(platform.flow(n).id) for n in ("products", "stock")]
    async with platform.runner() as runner:
        done = await sync_drift(platform.store, runner, [r for r in stored if r is not None])
    assert [(flow.name, summary.status) for flow, summary in done] == [
        ("products", "completed"),
        ("stock", "completed"),
    ]
    # Targeted runs: they synced the drift only, and left the cursors where they were.
    for _, summary in done:
        run = platform.store.runs.get(summary.run_id)
        assert run is not None and run.counts.get("updated", 0) + run.counts.get("created", 0) == 2
    assert [platform.store.cursors.get(platform.flow(n).id) for n in ("products", "stock")] == (
        cursors
    )
    again = await reconcile(platform)
    assert found(again) == set()
    rows = {row["ART_CODE"]: row for row in accountview.rows("ARTICLE")}
    assert Decimal(str(rows[priced]["PX_SELL"])) == old_price
    assert Decimal(str(rows[counted]["QTY_FREE2"])) == old_quantity
    assert Decimal(str(rows[deleted]["QTY_FREE2"])) == Decimal(str(articles[deleted]["QTY_FREE2"]))


def _source_keys(platform: Platform) -> dict[str, dict[str, str]]:
    """Target key -> source key of each entity's links."""
    [integration] = platform.store.integrations.list()
    return {
        entity: {
            link.target_key: link.source_key
            for link in platform.store.links.page(integration.id, entity, limit=100_000)
        }
        for entity in ("products", "stock")
    }


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


async def test_articles_whose_product_is_gone_are_listed_and_left_alone(
    platform_factory: Any,
) -> None:
    platform = synced_platform(platform_factory, 12)
    await run_flow(platform, "products")
    partspim = platform.sandboxes.partspim.store
    simple = min((p for p in partspim.all("products") if p["type"] == "simple"), key=_id)
    partspim.delete("products", simple["id"])
    report = await reconcile_flows(platform.store, [platform.flow("products")])
    [products] = report.flows
    assert products.differences == [
        Difference(
            "products",
            DriftKind.NO_SOURCE,
            f"article '{simple['sku']}'",
            str(simple["id"]),
            str(simple["sku"]),
        )
    ]
    assert products.fixable == []


def _id(product: dict[str, Any]) -> int:
    return int(product["id"])


async def test_the_whole_catalogue_costs_a_read_of_each_side(platform_factory: Any) -> None:
    """Calls per page, not per record: a page of Parts Pim products (500) and one look-up per
    100 SKUs in AccountView, as the incremental read of a first sync would make."""
    platform = synced_platform(platform_factory, 1200)
    await run_flow(platform, "products")
    platform.sandboxes.partspim.faults.log.clear()
    platform.sandboxes.accountview.faults.log.clear()
    report = await reconcile_flows(platform.store, [platform.flow("products")])
    [products] = report.flows
    assert products.drift == 0
    articles = products.compared
    assert articles >= 1200
    pim_pages = requests(platform.sandboxes.partspim, "GET")
    av_lookups = requests(platform.sandboxes.accountview, "GET")
    assert pim_pages <= 1200 // 500 + 2, platform.sandboxes.partspim.faults.log.counts()
    assert av_lookups <= -(-articles // 100) + 1, platform.sandboxes.accountview.faults.log.counts()
    assert products.api_calls / articles < 0.02


async def test_an_order_deleted_in_accountview_is_missing_and_posted_again(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(20, seed=3)
    platform.sandboxes.accountview.write("ARTICLE", [SHIPPING_ARTICLE])
    flows = {name: DEMO_FLOWS[name] for name in ("products", "customers", "orders")}
    platform.apply(platform.sandboxes.integration(flows, settings=DEMO_SETTINGS))
    for name in flows:
        await run_flow(platform, name)
    orders = platform.flow("orders")
    [before] = (await reconcile_flows(platform.store, [orders])).flows
    assert before.error is None and before.compared > 0 and before.differences == []

    accountview = platform.sandboxes.accountview
    [integration] = platform.store.integrations.list()
    link = platform.store.links.page(integration.id, "orders", limit=1)[0]  # links keep ORD_NR
    [header] = accountview.rows("SO_HDR", ORD_NR=link.target_key)
    with accountview.store.transaction() as conn:  # the order and its lines (by ORD_NR)
        for table in ("SO_LINE", "SO_HDR"):
            conn.execute(
                f"DELETE FROM {table_sql(table)} WHERE {COMPANY} = ? AND ORD_NR = ?",
                (accountview.default_company(), header["ORD_NR"]),
            )
    [after] = (await reconcile_flows(platform.store, [orders])).flows
    assert [(d.kind, d.source_key, d.target_key) for d in after.differences] == [
        (DriftKind.MISSING, link.source_key, header["ORD_REF"])
    ]
    stored = platform.store.reconciliations.get(after.id or 0)
    assert stored is not None
    async with platform.runner() as runner:
        [(_, summary)] = await sync_drift(platform.store, runner, [stored])
    assert summary.status == "completed"
    assert [r for r in accountview.rows("SO_HDR") if r["ORD_REF"] == header["ORD_REF"]]
    [again] = (await reconcile_flows(platform.store, [orders])).flows
    assert again.differences == []


def test_the_command_lists_the_drift_and_syncs_it(cli_setup: Setup) -> None:
    config = cli_setup.write(cli_setup.document())
    assert koppel("sync", "--config", str(config)).exit_code == 0
    code = sorted(cli_setup.articles())[0]
    delete_article(cli_setup.platform, code)
    found = koppel("reconcile", "--config", str(config))
    assert found.exit_code == 1, found.output
    assert f"products: SKU '{code}': not in AccountView" in found.stdout
    listed = koppel("reconcile", "--config", str(config), "--flow", "products", "--json")
    [flow] = json.loads(listed.stdout)["flows"]
    assert (flow["flow"], flow["drift"]) == ("products", 1)
    assert flow["differences"][0]["kind"] == "missing"
    assert flow["differences"][0]["target_key"] == code
    synced = koppel("reconcile", "--config", str(config), "--sync")
    assert synced.exit_code == 0, synced.output
    assert "products: synced again in run" in synced.stdout
    assert code in cli_setup.articles()
    clean = koppel("reconcile", "--config", str(config), "--json")
    assert clean.exit_code == 0, clean.output
    assert [f["drift"] for f in json.loads(clean.stdout)["flows"]] == [0]
