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
from koppel.flows.checks import allowed_by
from koppel.flows.mappings import RESOLVED, FlowSetupError
from koppel.flows.pipeline import Item, TargetWriter, to_canonical, to_target
from koppel.flows.products import PRODUCTS
from koppel.flows.runtime import FlowRuntime
from koppel.flows.settings import StockSettings
from koppel.model import StockLevel
from koppel.store import OutcomeKind
from koppel.store.tables import KEY_LENGTH

STOCK = "stock"


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
        settings = runtime.settings_as(StockSettings)
        self.managed = settings.manage_stock
        self.calculation = settings.stock_calculation
        self.warehouse_codes = settings.stock_warehouses
        self.missing_article = settings.missing_article
        self.allow_negative_stock = settings.allow_negative_stock
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

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        items = await self.prepare(records)
        if self.managed:
            await self.writer.write(items)
        return self.writer.record(run_id, items)

    async def prepare(self, records: Sequence[Record]) -> list[Item]:
        """One item per SKU of these rows with the quantity it would be sent (every row of the
        SKU read again); with `manage_stock: false` each is skipped, saying so."""
        skus = list(dict.fromkeys(str(r["sku"]) for r in records))
        items = [Item(sku[:KEY_LENGTH], f"stock of SKU '{sku}'", {"sku": sku}) for sku in skus]
        for item, sku in zip(items, skus, strict=True):
            if len(sku) > KEY_LENGTH:  # no SKU at all, and longer than a key Koppel keeps
                item.fail(
                    f"{item.label}: field sku: is {len(sku)} characters; a SKU has at most "
                    f"{KEY_LENGTH}"
                )
        if not self.managed:
            for item in items:
                item.outcome = OutcomeKind.SKIPPED
                item.reason = "stock is not managed in AccountView (setting manage_stock: false)"
            return items
        await self._resolve_warehouses()
        wanted = [i.source_key for i in items if i.pending]
        rows = await self.runtime.source.lookup(self.runtime.source_entity(STOCK), "sku", wanted)
        by_sku: dict[str, list[Record]] = {}
        for row in rows:
            by_sku.setdefault(str(row["sku"]), []).append(row)
        for item in items:
            if item.pending:
                self._prepare(item, by_sku.get(item.source_key, []))
        return items

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
            problem = self._level_problem(level)
            if problem is not None:
                item.fail(f"{row_item.label}: {problem}")
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

    def _level_problem(self, level: dict[str, Any]) -> str | None:
        """Why a warehouse's level must not count: negative reserved or incoming stock would
        raise the free stock; negative stock on hand only with allow_negative_stock."""
        for field in ("reserved", "incoming"):
            if level[field] < 0:
                return f"field {field}: {level[field]} is negative; it cannot be"
        if level["on_hand"] < 0 and not self.allow_negative_stock:
            return (
                f"field on_hand: {level['on_hand']} is negative "
                f"{allowed_by('allow_negative_stock')}"
            )
        return None

    async def _resolve_warehouses(self) -> None:
        """The chosen warehouse codes as ids, once per run; a code Parts Pim does not have is
        a setting to fix, so the run fails with it before any SKU is touched."""
        if not self.warehouse_codes or self._warehouse_ids is not None:
            return
        warehouses = await self.runtime.source.lookup("warehouses", "code", self.warehouse_codes)
        ids = {str(w["code"]): str(w["id"]) for w in warehouses}
        unknown = [code for code in self.warehouse_codes if code not in ids]
        if unknown:
            raise FlowSetupError(
                f"flow {self.runtime.flow.name}: setting stock_warehouses: "
                f"{', '.join(repr(c) for c in unknown)} is not a Parts Pim warehouse code"
            )
        self._warehouse_ids = set(ids.values())

    def _missing(self, item: Item) -> None:
        reason = (
            f"{item.label}: article {item.target_key!r} does not exist in AccountView; "
            "the stock flow never creates articles (sync the product first)"
        )
        if self.missing_article == "skip":
            item.outcome = OutcomeKind.SKIPPED
            item.reason = reason
        else:
            item.fail(reason + "; retried later", waits_for=PRODUCTS)


__all__ = ["STOCK", "StockSync", "stock_quantity"]
