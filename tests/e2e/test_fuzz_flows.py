"""Issue 9's fuzz test: over a thousand hostile records (empty, null, 10,000 characters, control
and bidi characters, emoji, SQL and template injections, NaN, ±Infinity, 1e308, negative and zero
numbers, malformed e-mails and dates) through every flow over real HTTP. No run fails as a whole,
every failure names its record, its field and the rule, and nothing outside the documented rules
("Values Koppel refuses", docs/flows.md) reaches either system."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

import pycountry
import pytest

from koppel.flows.checks import KEPT_CONTROLS
from koppel.sandbox.accountview.assumptions import API_USER
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import run_flow
from tests.e2e.hostile import HostileRecords, seed_unchecked

FLOWS: dict[str, dict[str, Any]] = {
    "categories": {"from": "pim", "to": "av", "entity": "categories"},
    "products": {"from": "pim", "to": "av", "entity": "products"},
    "customers": {"from": "pim", "to": "av", "entity": "customers"},
    "stock": {"from": "pim", "to": "av", "entity": "stock"},
    "orders": {"from": "pim", "to": "av", "entity": "orders"},
    "av-products": {"from": "av", "to": "pim", "entity": "products"},
    "av-orders": {"from": "av", "to": "pim", "entity": "orders"},
}


def seed(platform: Platform, records: HostileRecords, scale: int) -> int:
    """Hostile records in both sandboxes; returns how many."""
    pim = platform.sandboxes.partspim.store
    # orders are mostly for the generated products, which reach AccountView
    generated = [str(p["sku"]) for p in pim.all("products") if p["type"] == "simple"]
    categories = records.categories(50_000, scale // 10)
    products = records.products(60_000, scale * 3 // 10, [c["id"] for c in categories])
    relations = records.relations(70_000, scale * 2 // 10)
    skus = [str(p["sku"]) for p in products]
    orders = records.orders(
        80_000, scale * 2 // 10, [r["id"] for r in relations], generated * 20 + skus
    )
    warehouses = [int(w["id"]) for w in pim.all("warehouses")]
    rows = records.stock(90_000, scale * 15 // 100, skus, warehouses)
    # Parts Pim keeps one row per warehouse and SKU
    stock = list({(repr(r["sku"]), repr(r["warehouse_id"])): r for r in rows}.values())
    for resource, rows in (
        ("categories", categories),
        ("products", products),
        ("relations", relations),
        ("orders", orders),
        ("stock", stock),
    ):
        seed_unchecked(pim, resource, rows)
    taken = 0
    av = platform.sandboxes.accountview
    for article in records.articles(scale // 20):
        try:
            av.write("ARTICLE", [article])
        except Exception:  # the API refused it as AccountView would: not in the books
            continue
        taken += 1
    return sum(map(len, (categories, products, relations, orders, stock))) + taken


def failures(platform: Platform, run_id: str) -> dict[str, str]:
    return {
        o.source_key: o.reason or ""
        for o in platform.store.outcomes.list(run_id, limit=100_000)
        if o.outcome == "failed"
    }


@pytest.mark.parametrize(
    ("scale", "generator_seed"),
    [(1100, 9), pytest.param(5500, 11, marks=pytest.mark.slow)],
    ids=["1000", "5000"],
)
async def test_a_thousand_hostile_records_through_every_flow(
    platform_factory: Any, scale: int, generator_seed: int
) -> None:
    platform: Platform = platform_factory(5, seed=9, accountview_articles=10)
    count = seed(platform, HostileRecords(seed=generator_seed), scale=scale)
    assert count >= scale * 9 // 10
    seeded_at = platform.sandboxes.partspim.store.now()
    platform.apply(platform.sandboxes.integration(FLOWS))
    reasons: dict[str, str] = {}
    for name in FLOWS:
        summary = await run_flow(platform, name)  # asserts that the run completed
        reasons.update({f"{name}:{k}": v for k, v in failures(platform, summary.run_id).items()})
    assert len(reasons) >= 500  # the hostile records did reach the flows
    unnamed = {k: r for k, r in reasons.items() if not names_record_field_and_rule(r)}
    assert not unnamed, "\n".join(f"{k}: {r[:300]}" for k, r in sorted(unnamed.items()))
    assert_accountview_holds_only_allowed_values(platform)
    assert_partspim_holds_no_control_characters(platform, seeded_at)


RECORD_LABELS = (
    "SKU '",
    "product '",
    "category '",
    "article_groups AG_CODE '",
    "articles ART_CODE '",
    "relation '",
    "debtors ",
    "order '",
    "stock of SKU '",
)
FIELD_RULE = re.compile(r"field [\w.\[\]]+: \S")


def names_record_field_and_rule(reason: str) -> bool:
    """A failure says which record, which field and which rule; the one rule about a whole
    record is the stock flow's article that AccountView does not have (it names the article)."""
    if not reason.startswith(RECORD_LABELS):
        return False
    return bool(FIELD_RULE.search(reason)) or "does not exist in AccountView; the stock" in reason


def _controls(value: Any) -> bool:
    return isinstance(value, str) and any(
        unicodedata.category(c) == "Cc" and c not in KEPT_CONTROLS for c in value
    )


def assert_accountview_holds_only_allowed_values(platform: Platform) -> None:
    """What Koppel wrote to AccountView (rows its API user made or changed) keeps the rules."""
    av = platform.sandboxes.accountview
    written: dict[str, list[dict[str, Any]]] = {}
    for table in ("ARTICLE", "ART_GRP", "CONTACT", "DEL_ADDR", "SO_HDR", "SO_LINE"):
        rows = av.rows(table)
        written[table] = [r for r in rows if API_USER in (r.get("INP_USR"), r.get("CNG_USR"))]
        for row in written[table]:
            assert not any(_controls(v) for v in row.values()), (table, row)
    assert written["ARTICLE"] and written["SO_HDR"] and written["CONTACT"]
    for article in written["ARTICLE"]:
        if article.get("INP_USR") == API_USER:  # made by the products flow
            assert Decimal(str(article["PX_SELL"])) > 0, article
            assert article["CUR_CODE"] == "" or pycountry.currencies.get(
                alpha_3=article["CUR_CODE"]
            ), article
    lines: dict[Any, list[dict[str, Any]]] = {}
    for line in av.rows("SO_LINE"):
        lines.setdefault(line["ORD_NR"], []).append(line)
    for order in written["SO_HDR"]:
        assert lines.get(order["ORD_NR"]), order  # never an order without lines
        for line in lines[order["ORD_NR"]]:
            assert Decimal(str(line["ORD_QTY"])) > 0 and Decimal(str(line["ART_PX"])) >= 0, line


def assert_partspim_holds_no_control_characters(platform: Platform, seeded_at: str) -> None:
    """What the flows from AccountView wrote to Parts Pim (records changed after the seeding)."""
    pim = platform.sandboxes.partspim.store
    made = 0
    for resource in ("products", "relations", "orders"):
        for record in pim.all(resource):
            if record["updated_at"] <= seeded_at:
                continue
            made += 1
            assert not _has_controls(record), (resource, record)
    assert made


def _has_controls(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_controls(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_controls(v) for v in value)
    return _controls(value)
