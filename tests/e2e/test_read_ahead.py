"""Reading the next page while a page syncs: every page is read once, and a run that stops after
a batch resumes from its recorded state without losing or repeating a record."""

from __future__ import annotations

import uuid
from typing import Any

from koppel.engine.flow_jobs import FlowJob
from tests.e2e.conftest import Platform
from tests.e2e.test_products_catalogue import expected_articles

PAGE_SIZE = 7
PRODUCTS = 40


def product_outcome_keys(platform: Platform, run_id: str) -> list[str]:
    outcomes = platform.store.outcomes.list(run_id, limit=10_000)
    return [o.source_key for o in outcomes if not o.source_key.startswith("category:")]


async def test_each_page_is_read_once(platform_factory: Any) -> None:
    platform: Platform = platform_factory(PRODUCTS, seed=11)
    flows = {"products": {"from": "pim", "to": "av", "entity": "products"}}
    platform.apply(platform.sandboxes.integration(flows, settings={"page_size": PAGE_SIZE}))
    async with platform.runner() as runner:
        summary = await runner.run(platform.flow("products").id)
    assert summary.status == "completed", summary.error
    keys = product_outcome_keys(platform, summary.run_id)
    assert len(keys) == len(set(keys)) == len(expected_articles(platform.sandboxes.partspim))
    pages = -(-PRODUCTS // PAGE_SIZE)
    reads = platform.sandboxes.partspim.faults.log.counts()["GET products"]
    assert reads == pages + 1  # each page once, then the empty page that ends the phase


async def test_a_run_resumed_after_a_batch_loses_and_repeats_nothing(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(PRODUCTS, seed=12)
    flows = {"products": {"from": "pim", "to": "av", "entity": "products"}}
    platform.apply(platform.sandboxes.integration(flows, settings={"page_size": PAGE_SIZE}))
    flow_id = platform.flow("products").id
    run_id = f"flow-{uuid.uuid4().hex}"
    first = FlowJob(platform.store, flow_id)
    state = await first.start(run_id)
    while state["phases"][state["phase"]] != "products" or state["after"] is None:
        state = (await first.run_batch(run_id, state)).state
    # The first process stops here with the next page read ahead; a new one resumes the state.
    await first.finish(run_id, state, "stopped")
    resumed = FlowJob(platform.store, flow_id)
    done = False
    while not done:
        result = await resumed.run_batch(run_id, state)
        state, done = result.state, result.done
    await resumed.finish(run_id, state, None)
    keys = product_outcome_keys(platform, run_id)
    assert len(keys) == len(set(keys)) == len(expected_articles(platform.sandboxes.partspim))
    articles = platform.sandboxes.accountview.rows("ARTICLE")
    assert len(articles) == len({a["ART_CODE"] for a in articles})
