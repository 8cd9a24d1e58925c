"""Stock, Parts Pim -> AccountView: one quantity per SKU, written to its article.

Parts Pim keeps stock per SKU per warehouse; AccountView keeps one quantity on the article. A page
of changed stock rows names SKUs; every row of those SKUs is read again (one call per 100 SKUs)
so a change in one warehouse gives the right sum over all chosen warehouses. The quantity is the
chosen calculation; the article is only updated, never created, and only when the quantity
changed (content hash on the SKU's link).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from koppel.connectors.base import Record
from koppel.flows.mappings import RESOLVED
from koppel.flows.pipeline import Item, TargetWriter, to_canonical, to_target
from koppel.flows.runtime import FlowRuntime
from koppel.model import StockLevel
from koppel.store import OutcomeKind

STOCK = "stock"
CALCULATIONS = ("on_hand", "available", "economic")
DEFAULT_CALCULATION = "available"
MISSING_ARTICLE_CHOICES = ("fail", "skip")


def stock_quantity(levels: Sequence[dict[str, Any]], calculation: str) -> Decimal:
    """The quantity of a calculation over some warehouses' levels of one SKU.

    on_hand: what is on the shelves; available: on hand minus what is reserved for sales orders;
    economic: available plus what is incoming on purchase orders. Not clamped at zero: an
    over-reserved SKU shows a negative free stock, as AccountView would.
    """
    on_hand, reserved, incoming = (_total(levels, f) for f in ("on_hand", "reserved", "incoming"))
    if calculation == "on_hand":
        return on_hand
    if calculation == "available":
        return on_hand - reserved
    if calculation == "economic":
        return on_hand + incoming - reserved
    raise ValueError(f"unknown stock calculation {calculation!r}")


def _total(levels: Sequence[dict[str, Any]], field: str) -> Decimal:
    return sum((Decimal(level[field]) for level in levels), Decimal(0))


class StockSync:
    """Parts Pim stock rows -> the quantity field of AccountView articles."""

    def __init__(self, runtime: FlowRuntime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.managed = settings.get("manage_stock", True) is not False
        self.calculation = str(settings.get("stock_calculation", DEFAULT_CALCULATION))
        self.warehouse_codes = [str(c) for c in settings.get("stock_warehouses") or []]
        self.missing_article = str(settings.get("missing_article", "fail"))
        self._warehouse_ids: set[str] | None = None
        self.writer = TargetWriter(
            runtime.store,
            runtime.integration.id,
            runtime.flow.id,
            STOCK,
            runtime.target,
            runtime.target_entity(STOCK),
            on_missing=self._missing,
        )

    def _setting_problem(self) -> str | None:
        if self.calculation not in CALCULATIONS:
            return (
                f"setting stock_calculation: {self.calculation!r} is not one of "
                f"{', '.join(CALCULATIONS)}"
            )
        if self.missing_article not in MISSING_ARTICLE_CHOICES:
            return f"setting missing_article: {self.missing_article!r} is not fail or skip"
        return None

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        skus = list(dict.fromkeys(str(r["sku"]) for r in records))
        items = [Item(sku, f"stock of SKU '{sku}'", {"sku": sku}) for sku in skus]
        if not self.managed:
            for item in items:
                item.outcome = OutcomeKind.SKIPPED
                item.reason = "stock is not managed in AccountView (setting manage_stock: false)"
            return self.writer.record(run_id, items)
        problem = self._setting_problem() or await self._warehouse_problem()
        if problem is not None:
            for item in items:
                item.fail(f"{item.label}: {problem}")
            return self.writer.record(run_id, items)
        rows = await self.runtime.source.lookup(self.runtime.source_entity(STOCK), "sku", skus)
        by_sku: dict[str, list[Record]] = {}
        for row in rows:
            by_sku.setdefault(str(row["sku"]), []).append(row)
        for item in items:
            self._prepare(item, by_sku.get(item.source_key, []))
        await self.writer.write(items)
        return self.writer.record(run_id, items)

    def _prepare(self, item: Item, rows: list[Record]) -> None:
        chosen = [
            row
            for row in sorted(rows, key=lambda r: str(r.get("warehouse_id")))
            if self._warehouse_ids is None or str(row.get("warehouse_id")) in self._warehouse_ids
        ]
        item.source = {"sku": item.source_key, "rows": chosen}
        levels: list[dict[str, Any]] = []
        for row in chosen:
            row_item = Item(
                item.source_key, f"{item.label} in warehouse {row.get('warehouse_id')}", row
            )
            level = to_canonical(row_item, self.runtime.mappings.get, StockLevel)
            if level is None:
                item.fail(row_item.reason or f"{row_item.label}: cannot be read")
                return
            levels.append(level)
        summed: dict[str, Any] = {
            "sku": item.source_key,
            "warehouse": ",".join(str(level["warehouse"]) for level in levels),
            **{f: _total(levels, f) for f in ("on_hand", "reserved", "incoming")},
        }
        item.canonical = summed
        resolved = {"quantity": stock_quantity(levels, self.calculation)}
        to_target(item, self.runtime.mappings.send, {**summed, RESOLVED: resolved})

    async def _warehouse_problem(self) -> str | None:
        """Resolve the chosen warehouse codes to ids once per run; None when all are known."""
        if not self.warehouse_codes or self._warehouse_ids is not None:
            return None
        warehouses = await self.runtime.source.lookup("warehouses", "code", self.warehouse_codes)
        ids = {str(w["code"]): str(w["id"]) for w in warehouses}
        unknown = [code for code in self.warehouse_codes if code not in ids]
        if unknown:
            return (
                f"setting stock_warehouses: {', '.join(repr(c) for c in unknown)} "
                "is not a Parts Pim warehouse code"
            )
        self._warehouse_ids = set(ids.values())
        return None

    def _missing(self, item: Item) -> None:
        reason = (
            f"{item.label}: article {item.target_key!r} does not exist in AccountView; "
            "the stock flow never creates articles (sync the product first)"
        )
        if self.missing_article == "skip":
            item.outcome = OutcomeKind.SKIPPED
            item.reason = reason
        else:
            item.fail(reason + "; retried later")


__all__ = ["CALCULATIONS", "DEFAULT_CALCULATION", "STOCK", "StockSync", "stock_quantity"]
