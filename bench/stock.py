"""Stock Parts Pim -> AccountView: throughput and API calls per stock row against the bound.

Stock only updates articles, so the products flow runs first, unmeasured; the stock flow (one
stock row per product and warehouse in Parts Pim) is then measured: a first run and a rerun.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.products import PRODUCTS_FLOW
from bench.scenario import Scenario

__all__ = ["STOCK_FLOW", "stock_scenarios"]

STOCK_FLOW: dict[str, Any] = {"from": "pim", "to": "av", "entity": "stock"}
FULL_SIZES = (10_000, 100_000)


def stock_scenarios(
    *, quick: bool, sizes: Sequence[int] | None, latencies_ms: Sequence[float] | None
) -> list[Scenario]:
    sizes = sizes or ((2_000,) if quick else FULL_SIZES)
    latencies_ms = latencies_ms or ((0.0, 20.0) if quick else (0.0, 50.0))
    return [
        Scenario("stock", STOCK_FLOW, size, latency, setup_flows={"products": PRODUCTS_FLOW})
        for size in sizes
        for latency in latencies_ms
    ]
