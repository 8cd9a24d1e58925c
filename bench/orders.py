"""Orders Parts Pim -> AccountView: throughput and API calls per order against the bound.

Parts Pim generates one order per 20 products (with their customers). The products flow runs
first, unmeasured, so the order lines' articles exist; the orders flow (which syncs each order's
customer on the way) is then measured like the products flow: a first run and a rerun, and
up to 10,000 products beside the per-record baseline (`bench/baseline.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.products import BASELINE_MAX_PRODUCTS, PRODUCTS_FLOW
from bench.scenario import Scenario

__all__ = ["ORDERS_FLOW", "order_scenarios"]

PAYMENT_TERMS = {"DIR": "03", "14D": "01", "30D": "02"}
PAYMENT_METHODS = {
    "IDEAL": "IDEAL",
    "BANK": "BANK",
    "PIN": "PIN",
    "CREDIT": "CREDITCARD",
    "REMBOURS": "CONTANT",
}
"""Parts Pim codes -> the AccountView sandbox's codes (what a user fills in the setup wizard)."""

SHIPPING_ARTICLE = {"ART_CODE": "VERZEND", "ART_DESC1": "Verzendkosten", "PX_SELL": 6.95}
"""The article of shipping-cost lines, set up in AccountView by hand as a user would."""
ORDERS_FLOW: dict[str, Any] = {
    "from": "pim",
    "to": "av",
    "entity": "orders",
    "settings": {"shipping_article_code": SHIPPING_ARTICLE["ART_CODE"]},
}
FULL_SIZES = (10_000, 100_000)
"""Catalogue sizes: 500 and 5,000 orders."""


def order_scenarios(
    *,
    quick: bool,
    sizes: Sequence[int] | None,
    latencies_ms: Sequence[float] | None,
    settings: dict[str, Any] | None = None,
    profile_to: Path | None = None,
) -> list[Scenario]:
    """`settings`: more of the integration's settings (`--setting page_size=100`: several
    pages of orders in one run, which take turns); `profile_to`: a cProfile of the sync."""
    sizes = sizes or ((2_000,) if quick else FULL_SIZES)
    latencies_ms = latencies_ms or ((0.0, 20.0) if quick else (0.0, 50.0))
    tables = {"payment_terms": PAYMENT_TERMS, "payment_methods": PAYMENT_METHODS}
    settings = {"tables": tables, **(settings or {})}
    return [
        Scenario(
            "orders",
            ORDERS_FLOW,
            size,
            latency,
            settings=settings,
            setup_flows={"products": PRODUCTS_FLOW},
            accountview_rows={"ARTICLE": [SHIPPING_ARTICLE]},
            baseline=size <= BASELINE_MAX_PRODUCTS,
            profile_to=profile_to,
        )
        for size in sizes
        for latency in latencies_ms
    ]
