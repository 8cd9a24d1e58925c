"""The first sync works in the order a person would expect: a flow waits for the flows it
depends on (products before stock), and a record that failed for want of what another flow
syncs is retried right after that flow's next run, not after its backoff."""

from __future__ import annotations

from typing import Any

from koppel.services import setup
from koppel.store import DeadLetterStatus, RunStatus
from koppel.store.tables import utc_now
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import outcomes, requests

FLOWS = {
    "stock": {"from": "pim", "to": "av", "entity": "stock", "schedule": "manual"},
    "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"},
}


async def test_stock_waits_for_the_first_products_run_then_runs(platform_factory: Any) -> None:
    platform: Platform = platform_factory(8, seed=3)
    platform.apply(platform.sandboxes.integration(FLOWS))
    stock, products = platform.flow("stock"), platform.flow("products")
    posts_before = requests(platform.sandboxes.accountview, "POST accountviewdata")
    async with platform.runner() as runner:
        early = await runner.run(stock.id)
        assert early.status == "completed", early.error
        deferred = platform.store.runs.get(early.run_id)
        assert deferred is not None and deferred.status is RunStatus.WAITING
        assert deferred.error == (
            "waits for flow products to complete a run first: it syncs what this flow needs; "
            "this flow runs at its next turn after that (now: koppel sync --flow products)"
        )
        assert outcomes(platform, early) == {}
        assert platform.store.cursors.get(stock.id) is None
        assert platform.store.dead_letters.count_pending(stock.id) == 0
        assert requests(platform.sandboxes.accountview, "POST accountviewdata") == posts_before

        first = await runner.run(products.id)
        assert first.status == "completed", first.error
        after = await runner.run(stock.id)
    ran = platform.store.runs.get(after.run_id)
    assert ran is not None and ran.status is RunStatus.SUCCEEDED, ran
    assert {o.outcome for o in outcomes(platform, after).values()} <= {"updated", "skipped"}
    assert outcomes(platform, after)


def test_sync_runs_the_flows_after_those_they_wait_for(platform_factory: Any) -> None:
    platform: Platform = platform_factory(1)
    platform.apply(platform.sandboxes.integration(FLOWS))
    [integration] = platform.store.integrations.list()
    chosen = setup.choose_flows(platform.store, integration, [])
    assert [flow.name for flow in chosen] == ["products", "stock"]


async def test_a_record_missing_its_article_is_retried_right_after_the_products_run(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(6, seed=4)
    platform.apply(platform.sandboxes.integration(FLOWS))
    pim = platform.sandboxes.partspim
    stock, products = platform.flow("stock"), platform.flow("products")
    async with platform.runner() as runner:
        assert (await runner.run(products.id)).status == "completed"
        assert (await runner.run(stock.id)).status == "completed"
        new = pim.store.create(
            "products", {"sku": "55501234", "name": "Nieuw", "price_excl_vat": "5"}
        )
        warehouse = pim.store.all("warehouses")[0]
        pim.store.upsert_stock(
            [{"sku": new["sku"], "warehouse_id": warehouse["id"], "on_hand": "7"}]
        )
        missing = await runner.run(stock.id)
        assert outcomes(platform, missing)["55501234"].outcome == "failed"
        [letter] = platform.store.dead_letters.list(stock.id, status=DeadLetterStatus.PENDING)
        assert letter.next_attempt_at > utc_now(), "not in backoff: the test proves nothing"

        assert (await runner.run(products.id)).status == "completed"
        [letter] = platform.store.dead_letters.list(stock.id, status=DeadLetterStatus.PENDING)
        assert letter.next_attempt_at <= utc_now()
        retried = await runner.run(stock.id)
    assert outcomes(platform, retried)["55501234"].outcome == "updated"
    assert platform.store.dead_letters.count_pending(stock.id) == 0
