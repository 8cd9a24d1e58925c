"""Mapping cost (issue 4): the products flow and the mapper alone, default vs a rich mapping.

The rich mapping is what a demanding user writes: a dozen transform steps over both sides and a
JSONata expression. The mapper alone runs get side, canonical validation and send side on real
Parts Pim records (read over HTTP from a sandbox), without any API call; the flow runs the whole
products sync at latency 0, where mapping cost shows most.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.products import PRODUCTS_FLOW
from bench.report import format_result
from bench.scenario import Scenario, run_scenario

__all__ = ["RICH_MAPPING", "format_mapping", "map_records", "run_mapping"]

RICH_MAPPING: dict[str, Any] = {
    "get": {
        "fields": {
            "sku": {"from": "sku", "transform": ["trim"]},
            "name": {"from": "name", "transform": ["trim", {"replace": ["  ", " "]}]},
            "short_description": {"from": "short_description", "transform": ["trim"]},
        }
    },
    "send": {
        "fields": {
            "ART_CODE": {"from": "sku", "transform": ["trim", "upper"], "overflow": "fail"},
            "ART_DESC1": {
                "from": "name",
                "transform": ["trim", {"replace": [" / ", "-"]}, {"truncate": 40}],
            },
            "ART_DESC2": {
                "expr": "$substring(name & ' - ' & (short_description ? short_description : ''),"
                " 0, 40)",
                "transform": ["trim"],
                "overflow": "truncate",
            },
            "EAN_CODE": {"from": "ean", "transform": ["digits_only", {"truncate": 14}]},
            "PX_SELL": {"from": "price_excl_vat", "transform": [{"round": 2}]},
            "COST_PX": {"from": "price_excl_vat", "transform": [{"round": 2}]},
        }
    },
}
"""Twelve transform steps and one JSONata expression on top of the default mapping."""

FULL_SIZE = 10_000
QUICK_SIZE = 2_000


async def _read_products(products: int, seed: int) -> list[dict[str, Any]]:
    """Real Parts Pim product records, as the API serves them."""
    from koppel.connectors.partspim import PartsPimConnector
    from koppel.sandbox.common import SandboxServer
    from koppel.sandbox.partspim import PartsPimSandbox

    sandbox = PartsPimSandbox(seed=seed)
    sandbox.generate(products, seed=seed)
    credentials: dict[str, Any]
    with SandboxServer(sandbox.asgi_app()) as server:
        credentials = sandbox.credentials(server.url)
        connector = PartsPimConnector(credentials["base_url"], credentials["api_key"])
        records: list[dict[str, Any]] = []
        try:
            async for page in connector.read("products", page_size=500):
                records += page
        finally:
            await connector.aclose()
    return records


def map_records(records: list[dict[str, Any]], overrides: dict[str, Any]) -> tuple[float, int]:
    """Seconds to map every record get side -> canonical -> send side, and the failures."""
    from koppel.connectors.accountview.connector import ENTITIES as AV_ENTITIES
    from koppel.connectors.partspim.connector import ENTITIES as PIM_ENTITIES
    from koppel.flows.mappings import CANONICAL_MODELS, RESOLVED, flow_mappings
    from koppel.flows.pipeline import Item, to_canonical, to_target

    mappings = flow_mappings(
        entity="products",
        source_application="partspim",
        source_schema=PIM_ENTITIES["products"].schema,
        target_application="accountview",
        target_schema=AV_ENTITIES["articles"].spec.schema,
        overrides=overrides,
    )
    model = CANONICAL_MODELS["products"]
    failed = 0
    started = time.perf_counter()
    for record in records:
        item = Item(str(record["id"]), f"SKU '{record.get('sku')}'", record)
        canonical = to_canonical(item, mappings.get, model)
        if canonical is not None:
            to_target(item, mappings.send, {**canonical, RESOLVED: {"category_code": "GRP01"}})
        failed += not item.pending
    return time.perf_counter() - started, failed


def run_mapping(*, quick: bool, sizes: list[int] | None = None) -> dict[str, Any]:
    size = (sizes or [QUICK_SIZE if quick else FULL_SIZE])[0]
    records = asyncio.run(_read_products(size, seed=7))
    figures: dict[str, Any] = {"products": size, "mapper": {}, "flow": {}}
    for name, overrides in (("default", {}), ("rich", RICH_MAPPING)):
        seconds, failed = map_records(records, overrides)
        figures["mapper"][name] = {
            "records_per_s": len(records) / seconds,
            "ms_per_record": 1000 * seconds / len(records),
            "failed": failed,
        }
    for name, overrides in (("default", {}), ("rich", RICH_MAPPING)):
        flow = {**PRODUCTS_FLOW, "mapping": overrides} if overrides else PRODUCTS_FLOW
        result = run_scenario(Scenario("products", flow, size, 0.0), runs=1)
        [run] = result.runs
        figures["flow"][name] = {
            "records_per_s": run.records_per_s,
            "seconds": run.seconds,
            "records": run.records,
            "report": format_result(result),
        }
    return figures


def format_mapping(figures: dict[str, Any]) -> str:
    lines = [f"== mapping cost: {figures['products']:,} products (latency 0)"]
    for name, mapper in figures["mapper"].items():
        lines.append(
            f"  mapper alone, {name:<8} {mapper['records_per_s']:>9,.0f} records/s "
            f"({mapper['ms_per_record']:.3f} ms/record, {mapper['failed']} failed)"
        )
    for name, flow in figures["flow"].items():
        lines.append(
            f"  products flow, {name:<7} {flow['records_per_s']:>9,.0f} records/s "
            f"({flow['records']:,} records in {flow['seconds']:.1f} s)"
        )
    return "\n".join(lines)
