"""Products and categories, Parts Pim -> AccountView, over real HTTP with the durable engine."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.gates import listing_after

PRODUCTS_FLOW = {"products": {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}}


def articles(platform: Platform) -> dict[str, dict[str, Any]]:
    rows = platform.sandboxes.accountview.rows("ARTICLE")
    return {row["ART_CODE"]: row for row in rows}


async def test_products_sync_then_rerun_writes_nothing(platform_factory: Any) -> None:
    platform: Platform = platform_factory(300)
    platform.apply(platform.sandboxes.integration(PRODUCTS_FLOW))
    flow = platform.flow("products")
    async with platform.runner() as runner:
        first = await runner.run(flow.id)
        assert first.status == "completed", first.error
        synced = articles(platform)
        runs = platform.store.runs.list(flow_id=flow.id)
        assert runs[0].counts["failed"] == 0, {
            o.reason for o in platform.store.outcomes.list(runs[0].id)
        }
        second = await runner.run(flow.id)
    assert second.status == "completed"
    counts = platform.store.runs.get(second.run_id)
    assert counts is not None
    assert counts.counts["created"] == 0
    assert counts.counts["updated"] == 0
    assert len(articles(platform)) == len(synced)


async def test_a_record_changed_behind_the_read_position_is_picked_up_by_the_next_run(
    platform_factory: Any,
) -> None:
    """DESIGN guarantee 3: the cursor moves to the time the run started, so a record changed in
    the source while the run reads on past it is read again by the next run, not lost."""
    platform: Platform = platform_factory(30, seed=4, gated=True)
    settings = {"page_size": 10, "cursor_margin_seconds": 0}
    platform.apply(platform.sandboxes.integration(PRODUCTS_FLOW, settings=settings))
    flow = platform.flow("products")
    partspim = platform.sandboxes.partspim.store
    assert platform.gates is not None
    second_page = platform.gates.partspim.hold(listing_after("products"))
    first_product = min(
        (p for p in partspim.all("products") if p["type"] == "simple"), key=lambda p: p["id"]
    )
    async with platform.runner() as runner:
        run = asyncio.ensure_future(runner.run(flow.id))
        # The run has read the first page (it asks for the one after it): change a product on it.
        await second_page.arrived()
        partspim.update("products", first_product["id"], {"name": "Veranderd tijdens de run"})
        second_page.release()
        first = await run
        assert first.status == "completed", first.error
        assert articles(platform)[first_product["sku"]]["ART_DESC1"] != "Veranderd tijdens de run"
        second = await runner.run(flow.id)
    assert second.status == "completed", second.error
    logged = {o.source_key: o for o in platform.store.outcomes.list(second.run_id, limit=1000)}
    assert logged[str(first_product["id"])].outcome == "updated"
    assert articles(platform)[first_product["sku"]]["ART_DESC1"] == "Veranderd tijdens de run"
