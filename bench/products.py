"""Products Parts Pim -> AccountView: throughput, calls per record, memory, ratio to the bound.

Full run: 10,000 and 100,000 products at sandbox latency 0 and 50 ms; quick run: 2,000 products
at 0 and 20 ms. Each scenario is a first sync of an empty AccountView company and a rerun with
nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.scenario import Scenario, ScenarioResult, run_scenario

__all__ = ["PRODUCTS_FLOW", "product_scenarios", "run_products"]

PRODUCTS_FLOW: dict[str, Any] = {"from": "pim", "to": "av", "entity": "products"}
FULL_SIZES = (10_000, 100_000)
FULL_LATENCIES_MS = (0.0, 50.0)
QUICK_SIZES = (2_000,)
QUICK_LATENCIES_MS = (0.0, 20.0)
BASELINE_MAX_PRODUCTS = 10_000
"""The per-record baseline makes two calls per article in sequence: at 100,000 products and
50 ms it would take most of an hour, so larger catalogues are measured without it."""


def product_scenarios(
    *,
    quick: bool,
    sizes: Sequence[int] | None = None,
    latencies_ms: Sequence[float] | None = None,
    settings: dict[str, Any] | None = None,
    concurrency: int | None = None,
    trace_memory: bool = False,
    profile_to: Path | None = None,
) -> list[Scenario]:
    sizes = sizes or (QUICK_SIZES if quick else FULL_SIZES)
    latencies_ms = latencies_ms or (QUICK_LATENCIES_MS if quick else FULL_LATENCIES_MS)
    extra: dict[str, Any] = {} if concurrency is None else {"concurrency": concurrency}
    return [
        Scenario(
            "products",
            PRODUCTS_FLOW,
            size,
            latency,
            settings=dict(settings or {}),
            trace_memory=trace_memory,
            profile_to=profile_to,
            baseline=size <= BASELINE_MAX_PRODUCTS,
            **extra,
        )
        for size in sizes
        for latency in latencies_ms
    ]


def run_products(scenarios: Sequence[Scenario]) -> list[ScenarioResult]:
    return [run_scenario(s) for s in scenarios]
