"""Orders, Parts Pim -> AccountView sales orders (SO1: SO_HDR with SO_LINE rows).

Per page of orders, in this order: map (and fill in the employee number); skip orders the
settings leave out (status, date) and orders already in AccountView (by link, then by ORD_REF,
so a lost link never posts an order twice); refuse orders without lines, with a quantity that
is not positive or with a negative price (`allow_negative_prices`) before anything is written;
find or create each customer by e-mail with the customers flow's DebtorWriter; check that every
SKU is an AccountView article (a missing one fails the order with the SKUs named, and the
dead-letter retry posts it once they exist); find or create the delivery address when shipping
differs from billing; post the orders in one call.
An order is posted once: later changes in Parts Pim are not sent (AccountView owns it then).

The look-ups that depend only on the page of orders (the orders in AccountView by ORD_REF, the
relations in Parts Pim, the articles in AccountView, the run's refresh of the debtor e-mail
index) go out together as soon as the orders are mapped, and the relations are mapped to
customers as soon as they arrive, while the others are still under way; each answer is used at
its step above, so what a step decides and in which order is as before. Only the debtors'
look-up and post, then the orders' post, wait for one another. The posts are handed the
look-ups just made, so the connector does not ask again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from koppel.connectors.base import Record
from koppel.connectors.errors import ConnectorError
from koppel.connectors.places import read_ahead
from koppel.flows.checks import price_problem
from koppel.flows.customers import (
    CUSTOMER_LOG_PREFIX,
    CUSTOMERS,
    DebtorWriter,
    compile_get,
    relation_label,
)
from koppel.flows.mappings import CANONICAL_MODELS, RESOLVED, default_mapping
from koppel.flows.pipeline import Item, TargetWriter, to_canonical, to_target
from koppel.flows.products import PRODUCTS
from koppel.flows.runtime import FlowRuntime
from koppel.flows.settings import OrderSettings, retrieve_from_date
from koppel.flows.turns import Turns
from koppel.mapping import CompiledMapping, MappingError, apply, compile_mapping
from koppel.store.records import LinkEntry, OutcomeKind

ORDERS = "orders"
_ARTICLES = "articles"
_ADDRESSES = "delivery_addresses"
_ADDRESS_MATCH = ("SUB_NR", "DEL_NAME", "ADDRESS1", "POST_CODE", "CITY", "CNT_CODE")
_ADDRESS_FIELDS = ("street", "house_number", "house_number_addition", "postcode", "city", "country")
FROM_ACCOUNTVIEW = "orders.from_accountview"
"""Links of the orders flow AccountView -> Parts Pim (AV order -> Parts Pim id): such orders are
not sent back, or AccountView would get each of them twice."""
_PRICE_DIGITS = Decimal("0.0001")
"""ART_PX is a currency field (four decimals): a converted price keeps four, so totals agree."""
T = TypeVar("T")


def order_label(record: Record) -> str:
    return f"order '{record.get('number') or record.get('id')}'"


def _same_address(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    def plain(address: dict[str, Any] | None) -> tuple[str, ...]:
        address = address or {}
        return tuple("".join(str(address.get(f) or "").split()).lower() for f in _ADDRESS_FIELDS)

    return plain(a) == plain(b)


def _on_basis(price: Decimal, rate: Decimal, *, includes_vat: bool, wanted_incl: bool) -> Decimal:
    if includes_vat == wanted_incl:
        return price
    factor = 1 + rate / 100
    converted = price * factor if wanted_incl else price / factor
    return converted.quantize(_PRICE_DIGITS)


class OrderSync:
    """Parts Pim orders -> AccountView sales orders; the RecordSync of the orders flow."""

    def __init__(self, runtime: FlowRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings_as(OrderSettings)
        self.debtors = DebtorWriter(runtime, log_prefix=CUSTOMER_LOG_PREFIX)
        self.recorder = TargetWriter(
            runtime.store,
            runtime.integration.id,
            runtime.flow.id,
            ORDERS,
            runtime.target,
            runtime.target_entity(ORDERS),
        )
        target_app = runtime.target_connection.application
        self.address_mapping = compile_mapping(
            default_mapping(target_app, _ADDRESSES, "send"),
            target_schema=runtime.target.entities[_ADDRESSES].schema,
        )
        self._get: CompiledMapping | None = None

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        return await self.sync_in_turns(run_id, records, Turns.after(None))

    async def sync_in_turns(
        self, run_id: str, records: Sequence[Record], turns: Turns
    ) -> dict[str, int]:
        """The page mapped and looked up before its turns, its debtors and delivery addresses
        written in its turn to decide, its orders posted in its turn to write, and recorded
        after it (`koppel.flows.turns`).

        The look-ups before the turns concern only this page's orders (their links, their
        references, their relations, their articles), which no other page holds. What must see
        the page before's writes is the debtors' look-up: a customer with orders on both pages
        gets its debtor from the first, and AccountView numbers a new debtor only when it takes
        the post, so no pending link can claim it ahead; the delivery addresses likewise (found
        or written per debtor). So the debtors (looked up, posted and recorded under the e-mail
        locks, which are the run's and must not be held by two of its pages at once) and then
        the delivery addresses go in the turn to decide, which the next page takes once they
        are recorded: its debtors are written while this page's orders post. An order's debtor
        and address are written before it is posted, as before; after a crash in between, the
        page synced again finds them (the debtor's link, the address by its debtor).
        """
        items = await self.canonical(records)
        unlinked = self._skip_linked([i for i in items if i.pending])
        lines = {i.source_key: self._lines(i) for i in unlinked}
        ahead = _InFlight()
        try:
            orders = ahead.start(self._lookup_orders(unlinked))
            customers = ahead.start(self._relation_customers(unlinked))
            articles = ahead.start(self._lookup_articles(lines))
            if self._debtors_to_find(unlinked):
                self.debtors.refresh_index()  # the run's, shared: awaited by the debtors' look-up
            adopted, absent = await self._skip_existing(unlinked, orders)
            for item in items:
                if item.pending:
                    self._check_values(item)
            # The relations mapped before the turn, not inside it (their answer, or its error,
            # is still taken up at its step below). The articles are not waited for: the
            # debtors' look-up by e-mail goes out while the last of them are under way, and
            # they are checked after the debtors, before the addresses.
            await asyncio.wait((customers,))
            resolved: dict[str, dict[str, Any]] = {i.source_key: {} for i in items}
            async with turns.decide:
                await self._customers(run_id, [i for i in items if i.pending], resolved, customers)
                await self._check_products(
                    [i for i in items if i.pending], resolved, lines, articles
                )
                await self._delivery_addresses([i for i in items if i.pending], resolved)
            async with turns.write:
                await self._post([i for i in items if i.pending], resolved, absent)
        finally:
            ahead.call_off()
        # Recorded once the next page's orders post is on its way (as products do).
        await turns.write.next_sent()
        if adopted:
            self.runtime.store.links.upsert_many(self.runtime.integration.id, ORDERS, adopted)
        return self.recorder.record(run_id, items)

    async def canonical(self, records: Sequence[Record]) -> list[Item]:
        """The orders as canonical ones; those the settings leave out (status, date) skipped,
        saying why. A reconciliation looks the rest up in AccountView by their reference."""
        items = [Item(str(r["id"]), order_label(r), r) for r in records]
        if self._get is None:
            tables = await self.debtors.code_tables()
            if self._get is None:  # not compiled by a page that awaited the tables beside this
                self._get = compile_get(self.runtime, self.runtime.mappings, ORDERS, tables)
        for item in items:
            order = to_canonical(item, self._get, CANONICAL_MODELS[ORDERS])
            if order is not None:
                order["employee_number"] = order["employee_number"] or self.settings.employee_number
                self._filter(item, order)
        return items

    def _filter(self, item: Item, order: dict[str, Any]) -> None:
        settings = self.settings
        if order["status"] not in settings.order_statuses:
            item.outcome = OutcomeKind.SKIPPED
            item.reason = (
                f"status {order['status']!r} is not in the setting order_statuses "
                f"({', '.join(settings.order_statuses)})"
            )
        elif (
            (since := retrieve_from_date(settings)) is not None
            and order["order_date"] is not None
            and order["order_date"] < since
        ):
            item.outcome = OutcomeKind.SKIPPED
            item.reason = (
                f"order date {order['order_date']} is before the setting retrieve_from {since}"
            )

    def _check_values(self, item: Item) -> None:
        """Refuse an order the books must not get, before anything is written for it (its
        debtor): no lines, a line without a positive quantity, a negative price."""
        assert item.canonical is not None
        order = item.canonical
        if not order["lines"]:
            item.fail(
                f"{item.label}: field lines: is empty; AccountView would get a sales order "
                "without lines"
            )
            return
        allow_negative = self.settings.allow_negative_prices
        for index, line in enumerate(order["lines"]):
            if line["quantity"] <= 0:
                item.fail(
                    f"{item.label}: field lines[{index}].quantity: {line['quantity']} must be "
                    "greater than 0"
                )
                return
            problem = price_problem(line["unit_price"], allow_negative=allow_negative)
            if problem is not None:
                item.fail(f"{item.label}: field lines[{index}].unit_price: {problem}")
                return
        problem = price_problem(order["shipping_cost"], allow_negative=allow_negative)
        if problem is not None:
            item.fail(f"{item.label}: field shipping_cost: {problem}")

    def _skip_linked(self, items: list[Item]) -> list[Item]:
        """Orders linked already (or made from AccountView orders) are skipped; returns the rest,
        to be looked up in AccountView by their reference."""
        if not items:
            return []
        links = self.runtime.store.links.get_many(
            self.runtime.integration.id, ORDERS, [i.source_key for i in items]
        )
        from_accountview = {
            link.target_key
            for link in self.runtime.store.links.find_by_target(
                self.runtime.integration.id, FROM_ACCOUNTVIEW, [i.source_key for i in items]
            )
        }
        unlinked: list[Item] = []
        for item in items:
            link = links.get(item.source_key)
            if link is not None:
                item.outcome = OutcomeKind.SKIPPED
                item.target_key = link.target_key
                item.reason = f"already in AccountView as order {link.target_key}"
            elif item.source_key in from_accountview:
                item.outcome = OutcomeKind.SKIPPED
                item.reason = (
                    "Koppel made it in Parts Pim from an AccountView order (the orders flow "
                    "AccountView -> Parts Pim); a record is not sent back to where it came from"
                )
            else:
                unlinked.append(item)
        return unlinked

    async def _lookup_orders(self, unlinked: list[Item]) -> list[Record]:
        references = sorted({str(i.canonical["reference"]) for i in unlinked if i.canonical})
        if not references:
            return []
        return await self.runtime.target.lookup(
            self.runtime.target_entity(ORDERS), "ORD_REF", references
        )

    async def _skip_existing(
        self, unlinked: list[Item], lookup: asyncio.Future[list[Record]]
    ) -> tuple[list[LinkEntry], set[str]]:
        """Orders already in AccountView are skipped; those found by ORD_REF get their link back.
        Also returns the references looked up that AccountView does not have."""
        if not unlinked:
            return [], set()
        references = {str(i.canonical["reference"]): i for i in unlinked if i.canonical}
        try:
            found = await lookup
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in unlinked:
                item.fail(f"{item.label}: could not look it up in AccountView: {error}")
            return [], set()
        adopted: list[LinkEntry] = []
        for order in found:
            match = references.get(str(order.get("ORD_REF")))
            if match is None or not match.pending:
                continue
            item = match
            number = str(order.get("ORD_NR") or order.get("REC_ID"))
            item.outcome = OutcomeKind.SKIPPED
            item.target_key = number
            item.reason = f"already in AccountView as order {number} (found by ORD_REF)"
            adopted.append(LinkEntry(item.source_key, number))
        return adopted, set(references) - {str(order.get("ORD_REF")) for order in found}

    def _customer_keys(self, items: list[Item]) -> list[str]:
        """The relations whose debtors these orders need (none with default_customer_always)."""
        if self.settings.default_customer_always:
            return []
        return sorted({str(i.canonical["customer"]["key"]) for i in items if i.canonical})

    async def _relation_customers(
        self, items: list[Item]
    ) -> tuple[dict[str, Record], dict[str, Item]]:
        """These orders' relations read from Parts Pim (by id), and those with an e-mail address
        mapped to canonical customers (by relation id): mapped as soon as they arrive, while the
        batch's other look-ups are still under way."""
        keys = self._customer_keys(items)
        if not keys:
            return {}, {}
        relations = await self.runtime.source.lookup(
            self.runtime.source_entity(CUSTOMERS), "id", keys
        )
        by_id = {str(r["id"]): r for r in relations}
        customers = {
            key: Item(key, relation_label(relation), relation)
            for key, relation in by_id.items()
            if str(relation.get("email") or "").strip()
        }
        await self.debtors.canonical(list(customers.values()))
        return by_id, customers

    def _debtors_to_find(self, items: list[Item]) -> bool:
        """Whether some of these orders' relations have no debtor linked yet, so the debtor
        writer will look debtors up by e-mail (and needs its index refreshed first)."""
        keys = self._customer_keys(items)
        if not keys:
            return False
        links = self.runtime.store.links.get_many(self.runtime.integration.id, CUSTOMERS, keys)
        return len(links) < len(keys)

    async def _customers(
        self,
        run_id: str,
        items: list[Item],
        resolved: dict[str, dict[str, Any]],
        relations: asyncio.Future[tuple[dict[str, Record], dict[str, Item]]],
    ) -> None:
        """Each order's debtor: the default customer, or its relation's found or created
        (`relations`: those of these orders and maybe more, see `_relation_customers`)."""
        settings = self.settings
        needing: dict[str, list[Item]] = {}
        for item in items:
            assert item.canonical is not None
            if settings.default_customer_always:
                self._set_debtor(item, settings.default_customer, resolved)
            else:
                needing.setdefault(str(item.canonical["customer"]["key"]), []).append(item)
        if not needing:
            return
        try:
            by_id, customers = await relations
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in items:
                item.fail(f"{item.label}: could not read its customer from Parts Pim: {error}")
            return
        customer_items: list[Item] = []
        for key, orders in needing.items():
            relation = by_id.get(key)
            if relation is None:
                for item in orders:
                    item.fail(f"{item.label}: field relation_id: relation {key} does not exist")
                continue
            if not str(relation.get("email") or "").strip():
                for item in orders:
                    self._set_debtor(item, settings.default_customer, resolved, no_email=True)
                continue
            customer_items.append(customers[key])
        if not customer_items:
            return
        await self.debtors.upsert(run_id, customer_items)
        for customer in customer_items:
            for item in needing[customer.source_key]:
                assert item.canonical is not None
                if customer.outcome is OutcomeKind.FAILED or not customer.target_key:
                    item.fail(f"{item.label}: its customer could not be written: {customer.reason}")
                    continue
                item.canonical["customer"] = customer.canonical
                item.warnings.extend(f"customer: {w}" for w in customer.warnings)
                self._set_debtor(item, customer.target_key, resolved)

    @staticmethod
    def _set_debtor(
        item: Item,
        number: str | None,
        resolved: dict[str, dict[str, Any]],
        *,
        no_email: bool = False,
    ) -> None:
        if number is None:
            item.fail(
                f"{item.label}: field customer.email: is empty, so no debtor can be found; "
                "add one in Parts Pim or set default_customer"
            )
            return
        resolved[item.source_key]["debtor"] = number
        if no_email:
            item.warnings.append(f"customer has no e-mail address: default customer {number}")

    def _lines(self, item: Item) -> list[dict[str, Any]] | str:
        """Order lines on AccountView's price basis, and the shipping cost as a line of its own;
        or why they cannot be posted."""
        try:
            return self._posted_lines(item)
        except ValueError as error:
            return str(error)

    def _posted_lines(self, item: Item) -> list[dict[str, Any]]:
        assert item.canonical is not None
        order = item.canonical
        wanted_incl = self.settings.accountview_prices_include_vat
        lines: list[dict[str, Any]] = []
        for number, line in enumerate(order["lines"], start=1):
            price = line["unit_price"]
            if price is not None and order["prices_include_vat"] != wanted_incl:
                if line["vat_rate"] is None:
                    raise ValueError(
                        f"field lines[{number - 1}].vat_rate: is empty, so its price cannot be "
                        "converted between incl. and excl. VAT"
                    )
                price = _on_basis(
                    price,
                    line["vat_rate"],
                    includes_vat=order["prices_include_vat"],
                    wanted_incl=wanted_incl,
                )
            lines.append({**line, "unit_price": price})
        cost = order["shipping_cost"]
        if cost:
            code = self.settings.shipping_article_code
            if code is None:
                raise ValueError(
                    f"field shipping_cost: {cost} cannot be posted: set the flow setting "
                    "shipping_article_code to the AccountView article for shipping costs"
                )
            price = _on_basis(
                cost,
                self.settings.shipping_vat_rate,
                includes_vat=order["prices_include_vat"],
                wanted_incl=wanted_incl,
            )
            lines.append(
                {
                    "sku": code,
                    "quantity": Decimal(1),
                    "unit_price": price,
                    "description": self.settings.shipping_description,
                    "vat_rate": self.settings.shipping_vat_rate,
                }
            )
        return lines

    @staticmethod
    def _article_codes(lines: list[dict[str, Any]]) -> list[str]:
        return [str(line["sku"]).strip().upper() for line in lines]

    async def _lookup_articles(self, lines: dict[str, list[dict[str, Any]] | str]) -> list[Record]:
        codes = sorted(
            {
                code
                for posted in lines.values()
                if isinstance(posted, list)
                for code in self._article_codes(posted)
            }
        )
        if not codes:
            return []
        return await self.runtime.target.lookup(_ARTICLES, "ART_CODE", codes)

    async def _check_products(
        self,
        items: list[Item],
        resolved: dict[str, dict[str, Any]],
        lines: dict[str, list[dict[str, Any]] | str],
        lookup: asyncio.Future[list[Record]],
    ) -> None:
        """Every SKU of every order must be an AccountView article before the order is posted
        (`lookup`: the articles of these orders' lines and maybe more)."""
        wanted: dict[str, list[str]] = {}
        for item in items:
            posted = lines[item.source_key]
            if isinstance(posted, str):
                item.fail(f"{item.label}: {posted}")
                continue
            resolved[item.source_key]["lines"] = posted
            wanted[item.source_key] = self._article_codes(posted)
        if not any(wanted.values()):
            return
        try:
            found = await lookup
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in items:
                if item.pending:
                    item.fail(f"{item.label}: could not check its products in AccountView: {error}")
            return
        existing = {str(a["ART_CODE"]) for a in found}
        for item in items:
            missing = sorted({c for c in wanted.get(item.source_key, []) if c not in existing})
            if missing and item.pending:
                item.fail(
                    f"{item.label}: field lines.sku: product(s) not in AccountView (ART_CODE): "
                    f"{', '.join(f'SKU {m!r}' for m in missing)}; the order is retried when "
                    "they exist (sync the products first)",
                    waits_for=PRODUCTS,
                )

    async def _delivery_addresses(
        self, items: list[Item], resolved: dict[str, dict[str, Any]]
    ) -> None:
        """DEL_CODE for orders shipped elsewhere than billed: an existing DEL_ADDR or a new one."""
        rows: dict[str, tuple[Item, Record]] = {}
        for item in items:
            assert item.canonical is not None
            order = item.canonical
            shipping = order["shipping_address"]
            if shipping is None or _same_address(shipping, order["billing_address"]):
                continue
            customer = order["customer"]
            name = (
                shipping.get("name")
                or customer.get("company_name")
                or customer.get("contact_name")
                or order["reference"]
            )
            source = {**shipping, "name": name, "debtor": resolved[item.source_key]["debtor"]}
            try:
                row = apply(self.address_mapping, source, record_key=item.label).values
                rows[item.source_key] = (item, row)
            except MappingError as error:
                item.fail(f"{item.label}: delivery address: {error}")
        if not rows:
            return
        try:
            codes = await self._address_codes([row for _, row in rows.values()])
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item, _ in rows.values():
                item.fail(f"{item.label}: could not write its delivery address: {error}")
            return
        for item, row in rows.values():
            code = codes.get(_address_key(row))
            if code is None:
                item.fail(f"{item.label}: AccountView did not take its delivery address")
            else:
                resolved[item.source_key]["delivery_address"] = code

    async def _address_codes(self, rows: list[Record]) -> dict[tuple[str, ...], str]:
        """REC_ID per address: found among the debtors' DEL_ADDR rows, or written once."""
        debtors = sorted({str(r["SUB_NR"]) for r in rows})
        codes: dict[tuple[str, ...], str] = {}
        for existing in await self.runtime.target.lookup(_ADDRESSES, "SUB_NR", debtors):
            codes.setdefault(_address_key(existing), str(existing["REC_ID"]))
        new = {_address_key(r): r for r in rows if _address_key(r) not in codes}
        if new:
            results = await self.runtime.target.write(_ADDRESSES, list(new.values()))
            for key, result in zip(new, results, strict=True):
                if result.error is None and result.target_id:
                    codes[key] = result.target_id
        return codes

    async def _post(
        self, items: list[Item], resolved: dict[str, dict[str, Any]], absent: set[str]
    ) -> None:
        """Post the orders in one write; `absent`: the references just looked up and not found,
        which the write need not look up again."""
        payloads: list[Record] = []
        writing: list[Item] = []
        for item in items:
            assert item.canonical is not None
            values = {**item.canonical, RESOLVED: resolved[item.source_key]}
            if to_target(item, self.runtime.mappings.send, values):
                assert item.create is not None
                payloads.append(item.create)
                writing.append(item)
        if not writing:
            return
        found: dict[str, Record | None] = {
            reference: None
            for payload in payloads
            if (reference := str(payload.get("ORD_REF") or "")) in absent
        }
        try:
            results = await self.runtime.target.write(
                self.runtime.target_entity(ORDERS), payloads, found=found
            )
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in writing:
                item.fail(f"{item.label}: AccountView did not take the order: {error}")
            return
        for item, result in zip(writing, results, strict=True):
            if result.error is not None:
                item.fail(f"{item.label}: {result.error}")
                continue
            record = result.record or {}
            item.outcome = OutcomeKind.CREATED if result.created else OutcomeKind.UPDATED
            item.target_key = str(record.get("ORD_NR") or result.target_id or result.key)


def _address_key(row: Record) -> tuple[str, ...]:
    return tuple(str(row.get(f) or "").strip() for f in _ADDRESS_MATCH)


class _InFlight:
    """Calls a batch starts before it needs their answers (their requests let those of the
    answers wanted now go first, `read_ahead`); those it never awaited (a step that found
    nothing left to ask about, or an error that ends the batch) are called off."""

    def __init__(self) -> None:
        self._started: list[asyncio.Future[Any]] = []

    def start(self, call: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        future = read_ahead(call)
        self._started.append(future)
        return future

    def call_off(self) -> None:
        for future in self._started:
            future.cancel()
            # An answer, or an error, nobody waited for: retrieved so asyncio does not warn.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())


__all__ = ["ORDERS", "OrderSettings", "OrderSync", "order_label"]
