"""AccountView has no webhooks: a flow reading from it polls by CNG_DATE on a short schedule
(`schedule: 5s`), where a poll that finds nothing costs one call, and a change arrives at the
next poll."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from koppel.store import Run, RunStatus
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import run_flow

SHORT_POLL = "5s"


def articles_flow() -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(minutes=1)
    return {
        "articles": {
            "from": "av",
            "to": "pim",
            "entity": "products",
            "schedule": SHORT_POLL,
            "settings": {
                # leaves out the articles the sandbox generated a while ago
                "retrieve_from": started.isoformat(),
                # Polls read from the last one's start on: within a margin a poll reads the
                # last change again (skipped by its hash), and then it is not empty.
                "cursor_margin_seconds": 0,
            },
        }
    }


def polls(platform: Platform, flow_id: int, *, finished: bool = True) -> list[Run]:
    """The runs the schedule started (their ids name the schedule's slot), those finished only
    unless `finished` is False (a poll the stop cut short has made its call all the same)."""
    return [
        r
        for r in platform.store.runs.list(flow_id=flow_id, limit=1000)
        if "-every5s-" in r.id and (not finished or r.status is not RunStatus.RUNNING)
    ]


async def until(condition: Any, what: str) -> None:
    """Poll `condition()`; the bound (a minute) is for a broken build, not a measurement."""
    for _ in range(1200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"waited a minute for {what}")


async def test_an_empty_poll_costs_one_call_and_a_change_arrives_at_the_next_poll(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(3, seed=11)
    accountview = platform.sandboxes.accountview
    accountview.write("ARTICLE", [{"ART_CODE": "900100", "ART_DESC1": "Bout M8x40"}])
    # CNG_DATE has whole seconds and polls read "on or after" the last start: a first run in
    # the second of the write would have the next poll read the article again.
    await asyncio.sleep(1.1)
    platform.apply(platform.sandboxes.integration(articles_flow()))
    await run_flow(platform, "articles")
    flow = platform.flow("articles")
    log = accountview.faults.log

    before = dict(log.counts())
    async with platform.runner() as runner:
        await runner.engine.start_worker(runner.schedules, tick_seconds=0.2)
        await until(lambda: len(polls(platform, flow.id)) >= 2, "two polls")
    empty = polls(platform, flow.id)
    after = dict(log.counts())
    calls = {kind: after[kind] - before.get(kind, 0) for kind in after}
    made = {k: n for k, n in calls.items() if n}
    assert list(made) == ["GET accountviewdata AK1"]
    # one call per poll; a poll the stop cut short may or may not have made its call
    assert (
        len(empty)
        <= made["GET accountviewdata AK1"]
        <= len(polls(platform, flow.id, finished=False))
    )
    assert [(r.api_calls, sum(r.counts.values())) for r in empty] == [(1, 0)] * len(empty)

    async with platform.runner() as runner:
        await runner.engine.start_worker(runner.schedules, tick_seconds=0.2)
        accountview.edit("ARTICLE", "900100", {"ART_DESC1": "Bout M8x50"})
        products = platform.sandboxes.partspim.store
        await until(
            lambda: any(p["name"] == "Bout M8x50" for p in products.all("products")),
            "the changed article in Parts Pim",
        )
