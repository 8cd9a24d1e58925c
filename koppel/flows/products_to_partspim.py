"""Products, AccountView -> Parts Pim: articles become Parts Pim products, by SKU.

The reverse of the products flow. Parts Pim takes SKUs of digits only, so a SKU with anything
else fails its record with the rule, unless the flow's mapping transforms it (`digits_only`);
an EAN with a wrong check digit fails before it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from koppel.connectors.base import Record
from koppel.flows.checks import gtin_problem, parts_pim_sku_problem
from koppel.flows.pipeline import Item, TargetWriter, skip_echoes, to_canonical, to_target
from koppel.flows.runtime import FlowRuntime
from koppel.model import Product

PRODUCTS = "products"
PRODUCTS_FROM_PARTSPIM = PRODUCTS
"""Link entity of the products flow Parts Pim -> AccountView: its target keys are ART_CODEs."""
PRODUCT_LINKS = "products.from_accountview"
"""Link entity of this flow (AccountView ART_CODE -> Parts Pim SKU), apart from the links of the
products flow that goes the other way."""


class ArticleToPartsPimSync:
    """AccountView articles -> Parts Pim products."""

    def __init__(self, runtime: FlowRuntime) -> None:
        self.runtime = runtime
        self.writer = TargetWriter(
            runtime.store,
            runtime.integration.id,
            runtime.flow.id,
            PRODUCT_LINKS,
            runtime.target,
            runtime.target_entity(PRODUCTS),
        )

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        items = [Item(str(r["ART_CODE"]), f"SKU '{r.get('ART_CODE')}'", r) for r in records]
        for item in items:
            product = to_canonical(item, self.runtime.mappings.get, Product)
            if product is None or not to_target(item, self.runtime.mappings.send, product):
                continue
            payload = item.create or {}
            sku = str(payload.get("sku") or "")
            item.label = f"SKU '{sku}'"
            problem = parts_pim_sku_problem(sku)
            if problem is not None:
                item.fail(f"{item.label}: field sku: {problem}")
                continue
            ean = payload.get("ean")
            if ean and (problem := gtin_problem(str(ean))) is not None:
                item.fail(f"{item.label}: field ean: {problem}")
        for item in items:
            item.target_key = str(item.source.get("ART_CODE") or "") or None
        skip_echoes(
            self.runtime.store,
            self.runtime.integration.id,
            items,
            PRODUCTS_FROM_PARTSPIM,
            "Parts Pim (the products flow to AccountView)",
        )
        for item in items:
            item.target_key = None
        await self.writer.write(items)
        return self.writer.record(run_id, items)


__all__ = ["PRODUCT_LINKS", "ArticleToPartsPimSync"]
