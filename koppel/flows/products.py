"""Products and categories, Parts Pim -> AccountView.

Categories become article groups first (AccountView keys them by a five-character AG_CODE that
the flow makes up and keeps in the category's link), then products become articles by SKU
(ART_CODE). A configurable product becomes one article per variant; the parent itself is not
sellable and is not written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from koppel.connectors.base import Record
from koppel.flows.checks import complete_prices, gtin_problem, price_problem
from koppel.flows.keys import assign_group_code, group_code_candidates
from koppel.flows.mappings import (
    CANONICAL_MODELS,
    RESOLVED,
    FlowMappings,
    canonical_schema,
    default_mapping,
)
from koppel.flows.pipeline import Item, TargetWriter, skip_echoes, to_canonical, to_target
from koppel.flows.products_to_partspim import PRODUCT_LINKS as PRODUCTS_FROM_ACCOUNTVIEW
from koppel.flows.runtime import FlowRuntime
from koppel.flows.settings import ProductSettings
from koppel.flows.turns import Turns
from koppel.mapping import compile_mapping
from koppel.model import Category, ProductKind

CATEGORIES = "categories"
PRODUCTS = "products"
CATEGORY_LOG_PREFIX = "category:"
_CANDIDATES_TRIED = 8


def _label(entity: str, record: Record) -> str:
    if entity == PRODUCTS and record.get("sku"):
        return f"SKU '{record['sku']}'"
    name = record.get("name") or record.get("code") or record.get("id")
    return f"{'category' if entity == CATEGORIES else 'product'} '{name}'"


class CategorySync:
    """Parts Pim categories -> AccountView article groups, with stable invented codes."""

    def __init__(self, runtime: FlowRuntime) -> None:
        self.runtime = runtime
        own_flow = runtime.flow.entity == CATEGORIES
        self.mappings = runtime.mappings if own_flow else _category_mappings(runtime)
        self.writer = TargetWriter(
            runtime.store,
            runtime.integration.id,
            runtime.flow.id,
            CATEGORIES,
            runtime.target,
            runtime.target_entity(CATEGORIES),
            log_prefix="" if own_flow else CATEGORY_LOG_PREFIX,
        )

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        items = [Item(str(r["id"]), _label(CATEGORIES, r), r) for r in records]
        canonical = [(i, to_canonical(i, self.mappings.get, Category)) for i in items]
        codes = await self._group_codes([(i, c) for i, c in canonical if c is not None])
        for item, record in canonical:
            if record is not None and item.pending:
                resolved = {"group_code": codes[item.source_key]}
                to_target(item, self.mappings.send, {**record, RESOLVED: resolved})
        await self.writer.write(items)
        return self.writer.record(run_id, items)

    async def _group_codes(self, items: list[tuple[Item, dict[str, Any]]]) -> dict[str, str]:
        """Each category's AG_CODE: kept from its link, or a new one no one else uses.

        A new category may find its first candidate code already in AccountView with its own
        description: that is this category's group from a run that crashed before its link was
        recorded, and it is adopted instead of making a second group.
        """
        store, integration_id = self.runtime.store, self.runtime.integration.id
        links = store.links.get_many(integration_id, CATEGORIES, [i.source_key for i, _ in items])
        codes = {key: link.target_key for key, link in links.items()}
        new = [(i, c) for i, c in items if i.source_key not in codes]
        if not new:
            return codes
        candidates: dict[str, list[str]] = {}
        for item, category in new:
            generator = group_code_candidates(item.source_key, category["name"])
            candidates[item.source_key] = [next(generator) for _ in range(_CANDIDATES_TRIED)]
        every = [code for codes_ in candidates.values() for code in codes_]
        linked = {
            link.target_key: link.source_key
            for link in store.links.find_by_target(integration_id, CATEGORIES, every)
        }
        groups = await self.runtime.target.lookup(
            self.runtime.target_entity(CATEGORIES), "AG_CODE", every
        )
        in_target = {str(g["AG_CODE"]): str(g.get("AG_DESC", "")).strip() for g in groups}
        taken = set(linked) | set(codes.values())
        for item, category in new:
            description = str(category["name"]).strip()[:40].strip()

            def is_taken(code: str, key: str = item.source_key, desc: str = description) -> bool:
                if code in taken and linked.get(code) != key:
                    return True
                return code in in_target and in_target[code] != desc

            code = next((c for c in candidates[item.source_key] if not is_taken(c)), None)
            if code is None:
                code = assign_group_code(item.source_key, category["name"], is_taken)
            codes[item.source_key] = code
            taken.add(code)
        return codes

    async def ensure(self, run_id: str, keys: Sequence[str]) -> None:
        """Sync the categories with these keys that have no link yet (products need their code)."""
        wanted = list(dict.fromkeys(keys))
        linked = self.runtime.store.links.get_many(self.runtime.integration.id, CATEGORIES, wanted)
        missing = [k for k in wanted if k not in linked or linked[k].pending]
        if not missing:
            return
        records = await self.runtime.source.lookup(
            self.runtime.source_entity(CATEGORIES), "id", missing
        )
        if records:
            await self.sync(run_id, records)


class ProductSync:
    """Parts Pim products (and variants) -> AccountView articles."""

    def __init__(self, runtime: FlowRuntime) -> None:
        self.runtime = runtime
        self.mappings = runtime.mappings
        settings = runtime.settings_as(ProductSettings)
        self.sell_price = settings.sell_price
        self.sell_price_field = SELL_PRICE_FIELDS[self.sell_price]
        self.name_attributes = settings.variant_name_attributes
        self.allow_negative_prices = settings.allow_negative_prices
        self.allow_zero_prices = settings.allow_zero_prices
        self.categories = CategorySync(runtime)
        self.writer = TargetWriter(
            runtime.store,
            runtime.integration.id,
            runtime.flow.id,
            PRODUCTS,
            runtime.target,
            runtime.target_entity(PRODUCTS),
        )

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        return await self.sync_in_turns(run_id, records, Turns.after(None))

    async def sync_in_turns(
        self, run_id: str, records: Sequence[Record], turns: Turns
    ) -> dict[str, int]:
        """The page mapped and looked up before its turns and recorded after them; in its
        turn to decide the categories it needs and the plan of its write, in its turn to write
        the post (`koppel.flows.turns`).

        The look-up goes out before the turn, so the pages in flight ask AccountView together;
        the plan asks again only for what the pages before it have claimed since. Should the
        categories the page was prepared with have changed by its turn (a page before it made
        them), it is prepared again.
        """
        items, sellable = self.expand(records)
        category_keys = [p["category_keys"][0] for _, p in sellable if p["category_keys"]]
        groups = self.prepare(items, sellable)
        looked_up = await self.writer.look_up(items)
        async with turns.decide:
            await self.categories.ensure(run_id, category_keys)
            if self._group_codes(category_keys) != groups:
                items, sellable = self.expand(records)
                self.prepare(items, sellable)
            planned = await self.writer.plan(items, looked_up)
        async with turns.write:
            await self.writer.send(planned)
        # Recording is our own CPU: done once the next page's post is on its way, the target
        # works on that post meanwhile, instead of both taking turns at being idle.
        await turns.write.next_sent()
        return self.writer.record(run_id, items)

    def expand(
        self, records: Sequence[Record]
    ) -> tuple[list[Item], list[tuple[Item, dict[str, Any]]]]:
        """One item per article: a product's own, or one per variant of a configurable one;
        with the canonical product of each that mapped."""
        items: list[Item] = []
        sellable: list[tuple[Item, dict[str, Any]]] = []
        model = CANONICAL_MODELS[PRODUCTS]
        for record in records:
            parent = Item(str(record["id"]), _label(PRODUCTS, record), record)
            product = to_canonical(parent, self.mappings.get, model)
            if product is None or not (
                product["kind"] == ProductKind.CONFIGURABLE and product["variants"]
            ):
                items.append(parent)
                if product is not None:
                    sellable.append((parent, product))
                continue
            for variant in product["variants"]:
                item = Item(
                    f"{parent.source_key}/{variant['key']}",
                    f"SKU '{variant['sku']}' (variant of {parent.label})",
                    record,
                    warnings=list(parent.warnings),
                )
                items.append(item)
                sellable.append((item, _variant_product(product, variant, self.name_attributes)))
        return items, sellable

    def prepare(
        self, items: list[Item], sellable: list[tuple[Item, dict[str, Any]]]
    ) -> dict[str, str]:
        """The article each item would be sent as (`create`, `update`), with the group code of
        its category's link; no call. A reconciliation compares these with AccountView.
        Returns the group codes it used, by category key."""
        groups = self._group_codes(
            [p["category_keys"][0] for _, p in sellable if p["category_keys"]]
        )
        for item, product in sellable:
            self._complete(item, product)
            if not item.pending:
                continue
            resolved: dict[str, Any] = {"sell_price": product[self.sell_price_field]}
            if product["category_keys"]:
                code = groups.get(product["category_keys"][0])
                if code is None:
                    item.warnings.append(
                        f"category {product['category_keys'][0]} could not be synced; "
                        "the article has no group"
                    )
                else:
                    resolved["category_code"] = code
            item.canonical = product
            item.target_key = product["sku"]
            to_target(item, self.mappings.send, {**product, RESOLVED: resolved})
        skip_echoes(
            self.runtime.store,
            self.runtime.integration.id,
            items,
            PRODUCTS_FROM_ACCOUNTVIEW,
            "AccountView (the products flow from AccountView)",
        )
        return groups

    def _group_codes(self, category_keys: Sequence[str]) -> dict[str, str]:
        """The AG_CODE of each of these categories that has a link (not a pending one)."""
        links = self.runtime.store.links.get_many(
            self.runtime.integration.id, CATEGORIES, category_keys
        )
        return {key: link.target_key for key, link in links.items() if not link.pending}

    def _complete(self, item: Item, product: dict[str, Any]) -> None:
        """Both prices from one and the VAT rate; the EAN/GTIN and the sell price checked
        (negative, missing or 0 fail unless a setting allows them)."""
        excl, incl = complete_prices(
            product["price_excl_vat"], product["price_incl_vat"], product["vat_rate"]
        )
        product["price_excl_vat"], product["price_incl_vat"] = excl, incl
        sell_price = product[self.sell_price_field]
        problem = price_problem(
            sell_price,
            allow_negative=self.allow_negative_prices,
            allow_zero=self.allow_zero_prices,
        )
        if problem is not None:
            unknown = sell_price is None and (excl is not None or incl is not None)
            why = " (it cannot be computed without a VAT rate)" if unknown else ""
            item.fail(f"{item.label}: field {self.sell_price_field}: {problem}{why}")
            return
        if sell_price is None and (excl is not None or incl is not None):
            item.warnings.append(
                f"price {self.sell_price.replace('_', '. ')} unknown without a VAT rate; "
                "PX_SELL is left as it is"
            )
        ean = str(product["ean"] or "").strip()
        product["ean"] = ean or None
        if ean and (problem := gtin_problem(ean)) is not None:
            item.fail(f"{item.label}: field ean: {problem}")


SELL_PRICE_FIELDS = {"excl_vat": "price_excl_vat", "incl_vat": "price_incl_vat"}
"""The `sell_price` setting: which price AccountView's PX_SELL (`resolved.sell_price`) holds."""


def _variant_product(
    parent: dict[str, Any], variant: dict[str, Any], name_attributes: list[str] | None = None
) -> dict[str, Any]:
    """A variant as a product of its own: the parent's fields, the variant's where it has them.

    Its name is the variant's own, or the parent's name followed by the values of its attributes;
    `name_attributes` (the `variant_name_attributes` setting) chooses those attributes and their
    order and then always builds the name, so "maat" and "kleur" give "Regenjas M zwart".
    """
    product = {**parent, "variants": [], "kind": ProductKind.SIMPLE}
    product["key"] = f"{parent['key']}/{variant['key']}"
    product["sku"] = variant["sku"]
    attributes = {**parent["attributes"], **variant["attributes"]}
    product["attributes"] = attributes
    if name_attributes is not None:
        values = [
            str(attributes[n]) for n in name_attributes if attributes.get(n) not in (None, "")
        ]
        product["name"] = " ".join([parent["name"], *values])
    else:
        product["name"] = variant.get("name") or " ".join(
            [parent["name"], *(str(v) for v in variant["attributes"].values())]
        )
    for field in ("ean", "price_excl_vat", "price_incl_vat", "quantity"):
        if variant.get(field) is not None:
            product[field] = variant[field]
    product["custom_fields"] = {**parent["custom_fields"], **variant["custom_fields"]}
    return product


def _category_mappings(runtime: FlowRuntime) -> FlowMappings:
    """The default category mappings, for a products flow that syncs categories on the way."""
    source_app = runtime.source_connection.application
    target_app = runtime.target_connection.application
    get_spec = default_mapping(source_app, CATEGORIES, "get")
    send_spec = default_mapping(target_app, CATEGORIES, "send")
    target_schema = runtime.target.entities[runtime.target_entity(CATEGORIES)].schema
    return FlowMappings(
        get_spec,
        send_spec,
        compile_mapping(get_spec, target_schema=canonical_schema(CATEGORIES)),
        compile_mapping(send_spec, target_schema=target_schema),
    )


__all__ = [
    "CATEGORIES",
    "CATEGORY_LOG_PREFIX",
    "PRODUCTS",
    "SELL_PRICE_FIELDS",
    "CategorySync",
    "ProductSync",
]
