"""Issue 9, points 3 and 4, over real HTTP: one bad record fails alone, naming the record, the
field and the rule, and values that are surely wrong never reach AccountView."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import outcomes, run_flow
from tests.e2e.hostile import corrupt, seed_unchecked
from tests.e2e.test_product_model import articles, recent


def product(record_id: int, sku: str, **fields: Any) -> dict[str, Any]:
    """A Parts Pim product as the API shows it, with `fields` over the defaults."""
    return {
        "id": record_id,
        "sku": sku,
        "name": f"Product {sku}",
        "type": "simple",
        "price_excl_vat": "10.00",
        "price_incl_vat": "12.10",
        "vat_rate": "21.00",
        "currency": "EUR",
        "category_ids": [],
        "variant_attributes": [],
        "variants": [],
        "attributes": {},
        "characteristics": {},
        "custom_fields": {},
        "short_description": None,
        "long_description": None,
        "ean": None,
        **fields,
    }


async def test_a_bad_category_id_or_a_huge_number_fails_only_its_product(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(3, seed=2)
    seed_unchecked(
        platform.sandboxes.partspim.store,
        "products",
        [
            product(9001, "900100", category_ids=["abc"]),
            product(9002, "900200", price_excl_vat="1e308", price_incl_vat=None),
            product(9003, "900300", vat_rate="1e308", price_incl_vat=None),
            product(9004, "900400"),
            product(9005, "900500"),
        ],
    )
    # two records a page: the bad ones fill the first pages, the good ones come after them
    settings = {"retrieve_from": recent(), "page_size": 2}
    flows = {"products": {"from": "pim", "to": "av", "entity": "products", "settings": settings}}
    platform.apply(platform.sandboxes.integration(flows))
    summary = await run_flow(platform, "products")
    found = outcomes(platform, summary)
    assert {key: o.reason for key, o in found.items() if o.outcome == "failed"} == {
        "9001": "SKU '900100': field category_keys: from category_ids | to_integer: "
        "cannot read text 'abc' as a number",
        "9002": "SKU '900200': field price_excl_vat: Input should be less than 1000000000000000",
        "9003": "SKU '900300': field vat_rate: Input should be less than or equal to 100",
    }
    assert (found["9004"].outcome, found["9005"].outcome) == ("created", "created")
    assert {"900400", "900500"} <= set(articles(platform))
    assert not {"900100", "900200", "900300"} & set(articles(platform))
    dead = {d.source_key for d in platform.store.dead_letters.list(platform.flow("products").id)}
    assert dead == {"9001", "9002", "9003"}


def products_flow(**settings: Any) -> dict[str, dict[str, Any]]:
    settings = {"retrieve_from": recent(), **settings}
    return {"products": {"from": "pim", "to": "av", "entity": "products", "settings": settings}}


async def test_prices_currencies_and_control_characters_of_products(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(3, seed=2)
    seed_unchecked(
        platform.sandboxes.partspim.store,
        "products",
        [
            product(9101, "910100", price_excl_vat="-5.00", price_incl_vat=None),
            product(9102, "910200", price_excl_vat=None, price_incl_vat=None),
            product(9103, "910300", price_excl_vat="0.00", price_incl_vat=None),
            product(9104, "910400", name="Remblok\x00 set\x07\x1b[31m"),
            product(9105, "910500", currency="€"),
            product(9106, "910600", price_excl_vat="9999999999.9999", price_incl_vat=None),
            product(9107, "910700", price_excl_vat="10.12345", price_incl_vat=None),
        ],
    )
    platform.apply(platform.sandboxes.integration(products_flow()))
    summary = await run_flow(platform, "products")
    found = outcomes(platform, summary)
    assert {key: o.reason for key, o in found.items() if o.outcome == "failed"} == {
        "9101": "SKU '910100': field price_excl_vat: -5.00 is negative "
        "(the flow setting allow_negative_prices: true allows it)",
        "9102": "SKU '910200': field price_excl_vat: is empty: the article would be sold for "
        "0.00 (the flow setting allow_zero_prices: true allows it)",
        "9103": "SKU '910300': field price_excl_vat: is 0: the article would be sold for 0.00 "
        "(the flow setting allow_zero_prices: true allows it)",
        "9105": "SKU '910500': field currency: Value error, '€' is not an ISO 4217 currency "
        "code (such as EUR)",
        "9107": "articles ART_CODE '910700': field PX_SELL: 10.12345 has more than 4 decimals; "
        "AccountView's amounts hold 4 (round it in the flow's mapping: `transform: [{round: 2}]`)",
    }
    written = articles(platform)
    assert written["910400"]["ART_DESC1"] == "Remblok set[31m"
    assert list(found["9104"].warnings) == ["name: control characters removed"]
    # an amount is written as it is, never rounded into another one
    assert Decimal(str(written["910600"]["PX_SELL"])) == Decimal("9999999999.9999")
    assert not {"910100", "910200", "910300", "910500", "910700"} & set(written)

    # the settings that allow negative and missing prices, then a replay of the dead letters
    platform.apply(
        platform.sandboxes.integration(
            products_flow(allow_negative_prices=True, allow_zero_prices=True)
        )
    )
    replayed = outcomes(platform, await run_flow(platform, "products", replay=True))
    assert {k: o.outcome for k, o in replayed.items() if k in ("9101", "9102", "9103")} == {
        "9101": "created",
        "9102": "created",
        "9103": "created",
    }
    written = articles(platform)
    assert Decimal(str(written["910100"]["PX_SELL"])) == Decimal("-5.00")


async def test_negative_reserved_or_on_hand_stock_is_refused(platform_factory: Any) -> None:
    platform: Platform = platform_factory(12, seed=5)
    pim = platform.sandboxes.partspim.store
    rows = pim.all("stock")
    skus = sorted({row["sku"] for row in rows})
    platform.sandboxes.accountview.write(
        "ARTICLE", [{"ART_CODE": sku, "ART_DESC1": f"Artikel {sku}"} for sku in skus]
    )
    before = {r["ART_CODE"]: r["QTY_FREE2"] for r in platform.sandboxes.accountview.rows("ARTICLE")}
    reserved_row = next(r for r in rows if r["sku"] == skus[0])
    on_hand_row = next(r for r in rows if r["sku"] == skus[1])
    corrupt(pim, "stock", reserved_row["id"], {"reserved": "-19.95"})
    corrupt(pim, "stock", on_hand_row["id"], {"on_hand": "-3"})
    flows = {"stock": {"from": "pim", "to": "av", "entity": "stock"}}
    platform.apply(platform.sandboxes.integration(flows))
    found = outcomes(platform, await run_flow(platform, "stock"))
    where = f"in warehouse {reserved_row['warehouse_id']}"
    assert found[skus[0]].reason == (
        f"stock of SKU '{skus[0]}' {where}: field reserved: -19.95 is negative; it cannot be"
    )
    where = f"in warehouse {on_hand_row['warehouse_id']}"
    assert found[skus[1]].reason == (
        f"stock of SKU '{skus[1]}' {where}: field on_hand: -3 is negative "
        "(the flow setting allow_negative_stock: true allows it)"
    )
    after = {r["ART_CODE"]: r["QTY_FREE2"] for r in platform.sandboxes.accountview.rows("ARTICLE")}
    assert (after[skus[0]], after[skus[1]]) == (before[skus[0]], before[skus[1]])
    assert all(found[sku].outcome == "updated" for sku in skus[2:])

    flows["stock"]["settings"] = {"allow_negative_stock": True}
    platform.apply(platform.sandboxes.integration(flows))
    replayed = outcomes(platform, await run_flow(platform, "stock", replay=True))
    assert replayed[skus[1]].outcome == "updated"
    assert replayed[skus[0]].outcome == "failed"  # negative reserved stock is never allowed


async def test_orders_without_lines_or_with_wrong_lines_are_refused_before_any_debtor(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(5, seed=3)
    pim = platform.sandboxes.partspim.store
    skus = [p["sku"] for p in pim.all("products") if p["type"] == "simple"][:2]
    platform.sandboxes.accountview.write(
        "ARTICLE", [{"ART_CODE": sku, "ART_DESC1": f"Artikel {sku}"} for sku in skus]
    )
    address = {
        "street": "Dorpsstraat",
        "house_number": "1",
        "postcode": "3511 AB",
        "city": "Utrecht",
        "country": "NL",
    }

    def order(email: str, lines: list[dict[str, Any]]) -> int:
        relation = pim.create(
            "relations",
            {"type": "person", "last_name": "Jansen", "email": email, "billing_address": address},
        )
        good = [{"sku": skus[0], "quantity": "1"}]
        body = {"relation_id": relation["id"], "employee_number": "999999", "lines": good}
        record_id = int(pim.create("orders", body)["id"])
        corrupt(pim, "orders", record_id, {"lines": lines})
        return record_id

    line = {"sku": skus[0], "price": "10.00", "vat_rate": "21.00", "description": "Remblok"}
    empty = order("leeg@example.nl", [])
    zero = order("nul@example.nl", [{**line, "quantity": "0"}])
    negative_quantity = order("min@example.nl", [{**line, "quantity": "-2"}])
    negative_price = order("prijs@example.nl", [{**line, "quantity": "1", "price": "-10.00"}])
    fine = order("goed@example.nl", [{**line, "quantity": "3", "sku": skus[1]}])
    flows = {"orders": {"from": "pim", "to": "av", "entity": "orders"}}
    platform.apply(platform.sandboxes.integration(flows))
    found = outcomes(platform, await run_flow(platform, "orders"))
    number = {i: pim.get("orders", i)["number"] for i in (empty, zero, negative_quantity)}
    number[negative_price] = pim.get("orders", negative_price)["number"]
    mine = {str(i) for i in (empty, zero, negative_quantity, negative_price)}
    assert {k: o.reason for k, o in found.items() if k in mine} == {
        str(empty): f"order '{number[empty]}': field lines: is empty; AccountView would get a "
        "sales order without lines",
        str(zero): f"order '{number[zero]}': field lines[0].quantity: 0 must be greater than 0",
        str(negative_quantity): f"order '{number[negative_quantity]}': field "
        "lines[0].quantity: -2 must be greater than 0",
        str(negative_price): f"order '{number[negative_price]}': field lines[0].unit_price: "
        "-10.00 is negative (the flow setting allow_negative_prices: true allows it)",
    }
    assert found[str(fine)].outcome == "created"
    av = platform.sandboxes.accountview
    ours = {pim.get("orders", i)["number"] for i in (empty, zero, negative_quantity, fine)}
    ours.add(number[negative_price])
    posted = [r["ORD_REF"] for r in av.rows("SO_HDR") if r["ORD_REF"] in ours]
    assert posted == [pim.get("orders", fine)["number"]]
    # the refused orders' customers were not written either: check first, then write
    assert [r["MAIL_BUS"] for r in av.rows("CONTACT") if "example.nl" in r["MAIL_BUS"]] == [
        "goed@example.nl"
    ]


async def test_control_characters_never_reach_a_debtor(platform_factory: Any) -> None:
    platform: Platform = platform_factory(3, seed=3)
    relation = platform.sandboxes.partspim.store.create(
        "relations",
        {
            "type": "company",
            "company_name": "Garage\x00 Jansen\x07\x1b",
            "email": "garage@example.nl",
            "billing_address": {"street": "Ring\x1b", "house_number": "4", "city": "Ede\x00"},
        },
    )
    flows = {"customers": {"from": "pim", "to": "av", "entity": "customers"}}
    platform.apply(platform.sandboxes.integration(flows))
    found = outcomes(platform, await run_flow(platform, "customers"))
    outcome = found[str(relation["id"])]
    assert outcome.outcome == "created"
    assert sorted(outcome.warnings) == [
        "billing_address.city: control characters removed",
        "billing_address.street: control characters removed",
        "company_name: control characters removed",
    ]
    [debtor] = platform.sandboxes.accountview.rows("CONTACT", MAIL_BUS="garage@example.nl")
    assert (debtor["ACCT_NAME"], debtor["ST_STREET"], debtor["CITY"]) == (
        "Garage Jansen",
        "Ring",
        "Ede",
    )
