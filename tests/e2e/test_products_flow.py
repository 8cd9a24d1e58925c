"""Products and categories, Parts Pim -> AccountView, over real HTTP with the durable engine."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Platform

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
