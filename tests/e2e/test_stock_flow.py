"""Stock, Parts Pim -> AccountView, over real HTTP with the durable engine."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from koppel.store import DeadLetterStatus
from koppel.store.records import DeadLetter
from koppel.store.tables import DeadLetterRow, utc_now
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import counts, outcomes, requests, run_flow

AV_POSTS = "POST accountviewdata"


def stock_platform(platform_factory: Any, settings: dict[str, Any]) -> Platform:
    """Parts Pim with a small catalogue; every SKU but the last has its article in AccountView."""
    platform: Platform = platform_factory(12, seed=5)
    flows = {"stock": {"from": "pim", "to": "av", "entity": "stock", "settings": settings}}
    platform.apply(platform.sandboxes.integration(flows))
    skus = sorted({row["sku"] for row in platform.sandboxes.partspim.store.all("stock")})
    platform.sandboxes.accountview.write(
        "ARTICLE", [{"ART_CODE": sku, "ART_DESC1": f"Artikel {sku}"} for sku in skus[:-1]]
    )
    return platform


def expected_quantity(
    platform: Platform, sku: str, calculation: str, warehouse_ids: set[int] | None
) -> Decimal:
    total = Decimal(0)
    for row in platform.sandboxes.partspim.store.all("stock"):
        if row["sku"] != sku or (warehouse_ids and row["warehouse_id"] not in warehouse_ids):
            continue
        on_hand, reserved = Decimal(row["on_hand"]), Decimal(row["reserved"])
        incoming = Decimal(row["incoming"])
        total += {
            "on_hand": on_hand,
            "available": on_hand - reserved,
            "economic": on_hand + incoming - reserved,
        }[calculation]
    return total


def quantities(platform: Platform) -> dict[str, Decimal]:
    rows = platform.sandboxes.accountview.rows("ARTICLE")
    return {r["ART_CODE"]: Decimal(str(r["QTY_FREE2"])) for r in rows}


def warehouse_id(platform: Platform, code: str) -> int:
    [warehouse] = [
        w for w in platform.sandboxes.partspim.store.all("warehouses") if w["code"] == code
    ]
    return int(warehouse["id"])


@pytest.mark.parametrize(
    ("calculation", "warehouses"),
    [("on_hand", None), ("available", None), ("economic", None), ("economic", ["VENLO"])],
)
async def test_stock_calculation_writes_each_article(
    platform_factory: Any, calculation: str, warehouses: list[str] | None
) -> None:
    settings: dict[str, Any] = {"stock_calculation": calculation}
    if warehouses:
        settings["stock_warehouses"] = warehouses
    platform = stock_platform(platform_factory, settings)
    chosen = {warehouse_id(platform, code) for code in warehouses} if warehouses else None
    summary = await run_flow(platform, "stock")
    written = quantities(platform)
    skus = sorted({row["sku"] for row in platform.sandboxes.partspim.store.all("stock")})
    for sku in skus[:-1]:
        assert written[sku] == expected_quantity(platform, sku, calculation, chosen), sku
    missing = outcomes(platform, summary)[skus[-1]]
    assert missing.outcome == "failed"
    assert f"article '{skus[-1]}' does not exist in AccountView" in (missing.reason or "")
    assert skus[-1] not in written
    assert counts(platform, summary)["updated"] == len(skus) - 1


async def test_only_changed_levels_are_written(platform_factory: Any) -> None:
    platform = stock_platform(platform_factory, {})
    partspim, accountview = platform.sandboxes.partspim, platform.sandboxes.accountview
    await run_flow(platform, "stock")
    skus = sorted({row["sku"] for row in partspim.store.all("stock")})
    changed = skus[0]
    row = next(r for r in partspim.store.all("stock") if r["sku"] == changed)
    accountview.faults.log.clear()
    partspim.store.upsert_stock(
        [{"sku": changed, "warehouse_id": row["warehouse_id"], "on_hand": "999", "reserved": "0"}]
    )
    summary = await run_flow(platform, "stock")
    assert requests(accountview, AV_POSTS) == 1
    assert counts(platform, summary).get("updated") == 1
    assert quantities(platform)[changed] == expected_quantity(platform, changed, "available", None)
    accountview.faults.log.clear()
    partspim.store.upsert_stock([{"sku": changed, "warehouse_id": row["warehouse_id"]}])
    again = await run_flow(platform, "stock")
    assert requests(accountview, AV_POSTS) == 0
    assert outcomes(platform, again)[changed].reason == "unchanged since the last sync"


def letters(platform: Platform) -> dict[str, DeadLetter]:
    flow = platform.flow("stock")
    return {d.source_key: d for d in platform.store.dead_letters.list(flow.id)}


def backoff_passes(platform: Platform, sku: str) -> None:
    """Time passes for one dead letter: its next attempt is due now."""
    with platform.store.engine.begin() as connection:
        connection.execute(
            update(DeadLetterRow)
            .where(DeadLetterRow.source_key == sku)
            .values(next_attempt_at=utc_now() - timedelta(minutes=1))
        )


async def test_a_failed_record_is_retried_by_the_next_run_once_due_and_not_before(
    platform_factory: Any,
) -> None:
    """DESIGN guarantee 1: a failed record waits on the dead-letter list and is retried with
    backoff by the scheduled runs, even when nothing about it changes in the source."""
    # No cursor margin: the next run reads no stock row again, so only the retry can sync it.
    platform = stock_platform(platform_factory, {"cursor_margin_seconds": 0})
    skus = sorted({row["sku"] for row in platform.sandboxes.partspim.store.all("stock")})
    missing = skus[-1]
    first = await run_flow(platform, "stock")
    assert outcomes(platform, first)[missing].outcome == "failed"
    letter = letters(platform)[missing]
    assert (letter.status, letter.attempts) == (DeadLetterStatus.PENDING, 1)
    assert letter.next_attempt_at.replace(tzinfo=UTC) > utc_now()
    platform.sandboxes.accountview.write("ARTICLE", [{"ART_CODE": missing, "ART_DESC1": "Nieuw"}])

    too_early = await run_flow(platform, "stock")
    assert missing not in outcomes(platform, too_early)
    assert letters(platform)[missing].attempts == 1
    assert quantities(platform)[missing] == 0

    backoff_passes(platform, missing)
    due = await run_flow(platform, "stock")
    assert outcomes(platform, due)[missing].outcome == "updated"
    assert letters(platform)[missing].status == DeadLetterStatus.RESOLVED
    assert quantities(platform)[missing] == expected_quantity(platform, missing, "available", None)


async def test_replay_retries_a_failed_record_before_it_is_due(platform_factory: Any) -> None:
    platform = stock_platform(platform_factory, {})
    skus = sorted({row["sku"] for row in platform.sandboxes.partspim.store.all("stock")})
    await run_flow(platform, "stock")
    assert letters(platform)[skus[-1]].next_attempt_at.replace(tzinfo=UTC) > utc_now()
    platform.sandboxes.accountview.write("ARTICLE", [{"ART_CODE": skus[-1], "ART_DESC1": "Nieuw"}])
    replay = await run_flow(platform, "stock", replay=True)
    assert outcomes(platform, replay)[skus[-1]].outcome == "updated"
    assert letters(platform)[skus[-1]].status == DeadLetterStatus.RESOLVED
    assert quantities(platform)[skus[-1]] == expected_quantity(
        platform, skus[-1], "available", None
    )


async def test_missing_article_skip_skips_with_the_reason_and_keeps_no_dead_letter(
    platform_factory: Any,
) -> None:
    platform = stock_platform(platform_factory, {"missing_article": "skip"})
    skus = sorted({row["sku"] for row in platform.sandboxes.partspim.store.all("stock")})
    summary = await run_flow(platform, "stock")
    skipped = outcomes(platform, summary)[skus[-1]]
    assert skipped.outcome == "skipped"
    assert f"article '{skus[-1]}' does not exist in AccountView" in (skipped.reason or "")
    assert letters(platform) == {}
    assert counts(platform, summary) == {"updated": len(skus) - 1, "skipped": 1}


async def test_stock_not_managed_writes_nothing(platform_factory: Any) -> None:
    platform = stock_platform(platform_factory, {"manage_stock": False})
    summary = await run_flow(platform, "stock")
    assert requests(platform.sandboxes.accountview, AV_POSTS) == 0
    reasons = {o.reason for o in outcomes(platform, summary).values()}
    assert reasons == {"stock is not managed in AccountView (setting manage_stock: false)"}
    assert all(q == 0 for q in quantities(platform).values())
