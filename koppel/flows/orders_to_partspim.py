"""Orders, AccountView -> Parts Pim: each new sales order becomes a Parts Pim order (or invoice).

A page of AccountView orders costs a fixed number of calls whatever its size: the orders' debtors
and delivery addresses (attached for the get mapping), the orders already in Parts Pim (by link,
then by `reference`, so a lost link never makes a second order), the relations by e-mail, one
write of the relations that are new or changed, the products of every line, and the orders.

An order that exists in Parts Pim is skipped, never changed. Its customer is found by e-mail
(trimmed, case-insensitive), then created or updated (a company with its contact person, or a
person). An order naming a product Parts Pim lacks fails with the SKUs and is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from koppel.connectors.base import Record
from koppel.connectors.errors import ConnectorError
from koppel.flows.keys import content_hash
from koppel.flows.mappings import RESOLVED, default_mapping
from koppel.flows.pipeline import Item, TargetWriter, to_canonical, to_target
from koppel.flows.products import PRODUCTS
from koppel.flows.runtime import FlowRuntime
from koppel.flows.settings import OrdersToPartsPimSettings
from koppel.mapping import CompiledMapping, MappingError, apply, compile_mapping
from koppel.model import Order
from koppel.store import OutcomeKind
from koppel.store.records import LinkEntry

ORDERS = "orders"
CUSTOMERS = "customers"
RELATIONS = "relations"
DOCUMENT_TYPES = {"order": "orders", "invoice": "invoices"}
CUSTOMER_LINKS = "customers.from_accountview"
"""Link entity of the relations this flow writes (AccountView SUB_NR -> Parts Pim relation id);
apart from the customers flow's links, which go the other way."""


def normal_email(value: Any) -> str:
    """How e-mail addresses are compared: trimmed and case-insensitive, as Parts Pim matches."""
    return str(value or "").strip().lower()


def _label(record: Record) -> str:
    reference = str(record.get("ORD_REF") or "").strip() or str(record.get("ORD_NR") or "")
    return f"order '{reference or record.get('REC_ID')}'"


class OrderToPartsPimSync:
    """AccountView sales orders -> Parts Pim orders or invoices, with their customers."""

    def __init__(self, runtime: FlowRuntime) -> None:
        self.runtime = runtime
        settings = runtime.settings_as(OrdersToPartsPimSettings)
        self.document_type = settings.document_type
        self.target_entity = DOCUMENT_TYPES[self.document_type]
        self.employee_number = settings.employee_number
        self.prices_include_vat = settings.prices_include_vat
        self.default_customer = (settings.default_customer or "").strip()
        self.statuses = settings.order_statuses or None
        tables = settings.tables
        self.tables = {
            name: {
                **_inverse(tables.get(name) or {}),
                **{str(k): str(v) for k, v in (tables.get(f"{name}_to_partspim") or {}).items()},
            }
            for name in ("payment_terms", "payment_methods")
        }
        self.customer_mapping = _customer_mapping(runtime)
        self.writer = TargetWriter(
            runtime.store,
            runtime.integration.id,
            runtime.flow.id,
            f"{self.target_entity}.from_accountview",
            runtime.target,
            self.target_entity,
        )
        self._master: dict[str, dict[str, int]] = {}
        self._default_relation: int | None = None

    @property
    def link_entity(self) -> str:
        return self.writer.link_entity

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        attached = await self._attach(records)
        items = [Item(str(r["REC_ID"]), _label(r), r) for r in attached]
        orders: dict[str, dict[str, Any]] = {}
        for item in items:
            if item.pending:
                order = to_canonical(item, self.runtime.mappings.get, Order)
                if order is not None:
                    orders[item.source_key] = order
        self._filter_statuses(items, orders)
        relinked = await self._skip_existing(items, orders)
        resolved = await self._resolve(items, orders)
        # Every check before the first side effect: an order that cannot be posted makes no
        # relation in Parts Pim. The send mapping runs once before the relation is known (id 0)
        # to check the order; then again with it.
        self._map(items, orders, resolved, {})
        self._require_lines(items)
        await self._check_products(items)
        relations = await self._customers(items, orders)
        self._map(items, orders, resolved, relations)
        await self._post(items)
        counts = self.writer.record(run_id, items)
        if relinked:
            self.runtime.store.links.upsert_many(
                self.runtime.integration.id, self.link_entity, relinked
            )
        return counts

    # -- steps, in order -----------------------------------------------------------------------

    async def _attach(self, records: Sequence[Record]) -> list[Record]:
        """Each order with its debtor and delivery address, for the get mapping to read."""
        source = self.runtime.source
        debtor_numbers = [str(r.get("RPL_INV") or "") for r in records]
        address_ids = [str(r.get("DEL_CODE") or "") for r in records]
        debtors = {
            str(d["SUB_NR"]): d
            for d in await source.lookup("debtors", "SUB_NR", [n for n in debtor_numbers if n])
        }
        addresses = {
            str(a["REC_ID"]): a
            for a in await source.lookup(
                "delivery_addresses", "REC_ID", [a for a in address_ids if a]
            )
        }
        return [
            {
                **record,
                "debtor": debtors.get(str(record.get("RPL_INV") or "")),
                "delivery_address": addresses.get(str(record.get("DEL_CODE") or "")),
            }
            for record in records
        ]

    def _map(
        self,
        items: list[Item],
        orders: dict[str, dict[str, Any]],
        resolved: dict[str, dict[str, Any]],
        relations: dict[str, int],
    ) -> None:
        """The send mapping of every pending order, with its relation id (0 until it is known)."""
        for item in items:
            if item.pending:
                values = {
                    **resolved[item.source_key],
                    "relation_id": relations.get(item.source_key, 0),
                }
                to_target(
                    item, self.runtime.mappings.send, {**orders[item.source_key], RESOLVED: values}
                )

    @staticmethod
    def _require_lines(items: list[Item]) -> None:
        for item in items:
            if item.pending and not (item.create or {}).get("lines"):
                item.fail(
                    f"{item.label}: field lines: the order has no lines; Parts Pim takes an order "
                    "only with at least one line: add them in AccountView, the order is retried"
                )

    def _filter_statuses(self, items: list[Item], orders: dict[str, dict[str, Any]]) -> None:
        if self.statuses is None:
            return
        for item in items:
            if item.pending and orders[item.source_key]["status"] not in self.statuses:
                item.outcome = OutcomeKind.SKIPPED
                item.reason = (
                    f"status {orders[item.source_key]['status']!r} is not one of the setting "
                    f"order_statuses ({', '.join(self.statuses)})"
                )

    async def _skip_existing(
        self, items: list[Item], orders: dict[str, dict[str, Any]]
    ) -> list[LinkEntry]:
        """Skip the orders Parts Pim has; returns new links for those found by reference."""
        pending = [i for i in items if i.pending]
        links = self.runtime.store.links.get_many(
            self.runtime.integration.id, self.link_entity, [i.source_key for i in pending]
        )
        for item in pending:
            link = links.get(item.source_key)
            if link is not None:
                item.outcome = OutcomeKind.SKIPPED
                item.target_key = link.target_key
                item.reason = f"already in Parts Pim ({self.document_type} id {link.target_key})"
        unlinked = [i for i in pending if i.pending]
        if not unlinked:
            return []
        references = [str(orders[i.source_key]["reference"]) for i in unlinked]
        target = self.runtime.target
        try:
            found = await target.lookup(self.target_entity, "reference", references)
            # an AccountView order that the Parts Pim -> AccountView flow posted carries the
            # Parts Pim order number as its reference: it is not sent back
            from_pim = await target.lookup(ORDERS, "number", references)
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in unlinked:
                item.fail(f"{item.label}: could not look it up in Parts Pim: {error}")
            return []
        posted_from_pim = {str(r["number"]): r for r in from_pim}
        by_reference = {str(r["reference"]): r for r in found}
        relinked: list[LinkEntry] = []
        for item in unlinked:
            reference = str(orders[item.source_key]["reference"])
            if (existing := by_reference.get(reference)) is not None:
                # Made by this flow before, its link lost: the link comes back.
                item.outcome = OutcomeKind.SKIPPED
                item.target_key = str(existing["id"])
                item.reason = (
                    f"already in Parts Pim as {self.document_type} {existing.get('number')} "
                    f"(reference {reference!r})"
                )
                relinked.append(LinkEntry(item.source_key, item.target_key, content_hash(existing)))
            elif (own := posted_from_pim.get(reference)) is not None:
                # Koppel posted it from this Parts Pim order: no link, it does not come from
                # AccountView, and the orders flow to AccountView keeps it as its own.
                item.outcome = OutcomeKind.SKIPPED
                item.target_key = str(own["id"])
                item.reason = (
                    f"Koppel posted it to AccountView from Parts Pim order {reference} (the "
                    "orders flow Parts Pim -> AccountView); a record is not sent back to where "
                    "it came from"
                )
        return relinked

    async def _resolve(
        self, items: list[Item], orders: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Employee number filled in; payment term and method translated to Parts Pim ids."""
        resolved: dict[str, dict[str, Any]] = {}
        for item in items:
            if not item.pending:
                continue
            order = orders[item.source_key]
            order["employee_number"] = order["employee_number"] or self.employee_number
            order["prices_include_vat"] = order["prices_include_vat"] or self.prices_include_vat
            values: dict[str, Any] = {}
            for table, field, what, theirs in (
                ("payment_terms", "payment_term", "payment condition", "payment term"),
                ("payment_methods", "payment_method", "payment method", "payment method"),
            ):
                code = order[field]
                if code in (None, ""):
                    continue
                known = await self._master_ids(table)
                target_code = str(self.tables[table].get(str(code), code))
                if target_code in known:
                    values[f"{field}_id"] = known[target_code]
                    continue
                mapped = str(code) in self.tables[table]
                item.fail(
                    f"{item.label}: field {field}: AccountView {what} {str(code)!r} "
                    + (
                        f"is mapped to {target_code!r}, which Parts Pim does not have"
                        if mapped
                        else f"is not mapped to a Parts Pim {theirs}: add it to the setting "
                        f"tables.{table}_to_partspim"
                    )
                    + f" (Parts Pim has: {', '.join(sorted(known)) or 'none'})"
                )
                break
            resolved[item.source_key] = values
        return resolved

    async def _master_ids(self, entity: str) -> dict[str, int]:
        """Code -> id of a Parts Pim master table, read once per run."""
        if entity not in self._master:
            codes: dict[str, int] = {}
            async for page in self.runtime.target.read(entity):
                codes.update({str(r["code"]): int(r["id"]) for r in page})
            self._master[entity] = codes
        return self._master[entity]

    async def _customers(
        self, items: list[Item], orders: dict[str, dict[str, Any]]
    ) -> dict[str, int]:
        """The Parts Pim relation id of each pending order: found by e-mail, created or updated."""
        relation_of: dict[str, int] = {}
        by_email: dict[str, list[Item]] = {}
        for item in items:
            if not item.pending:
                continue
            email = normal_email(orders[item.source_key]["customer"]["email"])
            if email:
                by_email.setdefault(email, []).append(item)
                continue
            default = await self._default_customer_id(item)
            if default is not None:
                relation_of[item.source_key] = default
        if not by_email:
            return relation_of
        target = self.runtime.target
        customers = {e: orders[group[0].source_key]["customer"] for e, group in by_email.items()}
        try:
            found = await target.lookup(RELATIONS, "email", list(customers))
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for group in by_email.values():
                for item in group:
                    item.fail(f"{item.label}: could not look its customer up in Parts Pim: {error}")
            return relation_of
        existing = {normal_email(r["email"]): int(r["id"]) for r in found}
        store, integration_id = self.runtime.store, self.runtime.integration.id
        links = store.links.get_many(
            integration_id, CUSTOMER_LINKS, [str(c["key"]) for c in customers.values()]
        )
        writing: list[tuple[str, Record, str]] = []
        for email, customer in customers.items():
            try:
                mapped = apply(self.customer_mapping, customer, record_key=f"customer {email}")
            except MappingError as error:
                for item in by_email[email]:
                    item.fail(f"{item.label}: {error}")
                continue
            update, relation_id = mapped.for_update(), existing.get(email)
            digest = content_hash(update)
            link = links.get(str(customer["key"]))
            if relation_id is None:
                writing.append((email, mapped.values, digest))
            elif link is None or link.target_key != str(relation_id) or link.content_hash != digest:
                writing.append((email, {**update, "id": relation_id}, digest))
            else:
                for item in by_email[email]:
                    relation_of[item.source_key] = relation_id
        new_links: list[LinkEntry] = []
        if writing:
            results = await target.write(RELATIONS, [payload for _, payload, _ in writing])
            for (email, _, digest), result in zip(writing, results, strict=True):
                if result.error is not None or result.target_id is None:
                    for item in by_email[email]:
                        item.fail(f"{item.label}: its customer could not be saved: {result.error}")
                    continue
                for item in by_email[email]:
                    relation_of[item.source_key] = int(result.target_id)
                key = str(customers[email]["key"])
                new_links.append(LinkEntry(key, result.target_id, digest))
        if new_links:
            store.links.upsert_many(integration_id, CUSTOMER_LINKS, new_links)
        return relation_of

    async def _default_customer_id(self, item: Item) -> int | None:
        """The `default_customer` relation (e-mail or number) for an order without an e-mail."""
        if not self.default_customer:
            item.fail(
                f"{item.label}: field customer.email: the order's debtor has no e-mail address; "
                "set default_customer to send such orders to one Parts Pim relation"
            )
            return None
        if self._default_relation is None:
            field = "email" if "@" in self.default_customer else "number"
            found = await self.runtime.target.lookup(RELATIONS, field, [self.default_customer])
            if found:
                self._default_relation = int(found[0]["id"])
        if self._default_relation is None:
            item.fail(
                f"{item.label}: setting default_customer: Parts Pim has no relation "
                f"{self.default_customer!r}"
            )
        return self._default_relation

    async def _check_products(self, items: list[Item]) -> None:
        """Every line's SKU must be a Parts Pim product or variant; else the order fails."""
        pending = [i for i in items if i.pending and i.create is not None]
        skus = {
            str(line.get("sku"))
            for item in pending
            for line in (item.create or {}).get("lines") or []
        }
        if not skus:
            return
        try:
            products = await self.runtime.target.lookup("products", "sku", sorted(skus))
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in pending:
                item.fail(f"{item.label}: could not check its products in Parts Pim: {error}")
            return
        known = {str(p["sku"]) for p in products}
        known |= {str(v["sku"]) for p in products for v in p.get("variants") or []}
        for item in pending:
            lines = (item.create or {}).get("lines") or []
            missing = list(dict.fromkeys(str(line.get("sku")) for line in lines))
            missing = [sku for sku in missing if sku not in known]
            if missing:
                item.fail(
                    f"{item.label}: field lines[].sku: "
                    + ", ".join(f"SKU {sku!r}" for sku in missing)
                    + " not in Parts Pim; the order is retried until the products exist",
                    waits_for=PRODUCTS,
                )

    async def _post(self, items: list[Item]) -> None:
        writing = [i for i in items if i.pending and i.create is not None]
        if not writing:
            return
        try:
            results = await self.runtime.target.write(
                self.target_entity, [i.create for i in writing if i.create is not None]
            )
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in writing:
                item.fail(f"{item.label}: Parts Pim did not take it: {error}")
            return
        for item, result in zip(writing, results, strict=True):
            if result.error is not None:
                item.fail(str(result.error))
                continue
            item.outcome = OutcomeKind.CREATED if result.created else OutcomeKind.UPDATED
            item.target_key = result.target_id


def _inverse(table: dict[str, Any]) -> dict[str, str]:
    """AccountView code -> Parts Pim code from the shared Parts Pim -> AccountView table; a code
    that two Parts Pim codes map to is left out (it needs an entry in the `_to_partspim` table)."""
    inverse: dict[str, str] = {}
    ambiguous: set[str] = set()
    for pim_code, av_code in table.items():
        if str(av_code) in inverse:
            ambiguous.add(str(av_code))
        inverse[str(av_code)] = str(pim_code)
    return {k: v for k, v in inverse.items() if k not in ambiguous}


def _customer_mapping(runtime: FlowRuntime) -> CompiledMapping:
    """Parts Pim's default relation mapping (canonical Customer -> relation)."""
    target_schema = runtime.target.entities[RELATIONS].schema
    spec = default_mapping(runtime.target_connection.application, CUSTOMERS, "send")
    return compile_mapping(spec, target_schema=target_schema)


__all__ = [
    "CUSTOMER_LINKS",
    "DOCUMENT_TYPES",
    "OrderToPartsPimSync",
    "normal_email",
]
