"""Orders Parts Pim -> AccountView over real HTTP, with the durable engine and both sandboxes."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest

from koppel.sandbox.common import FaultConfig
from koppel.store import DeadLetterStatus
from tests.e2e.conftest import Platform
from tests.e2e.gates import post_of

PAYMENT_TERMS = {"DIR": "03", "14D": "01", "30D": "02"}
PAYMENT_METHODS = {
    "IDEAL": "IDEAL",
    "BANK": "BANK",
    "PIN": "PIN",
    "CREDIT": "CREDITCARD",
    "REMBOURS": "CONTANT",
}
SHIPPING = "VERZEND"


def flows(**order_settings: Any) -> dict[str, dict[str, Any]]:
    return {
        "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"},
        "customers": {"from": "pim", "to": "av", "entity": "customers", "schedule": "manual"},
        "orders": {
            "from": "pim",
            "to": "av",
            "entity": "orders",
            "schedule": "manual",
            "settings": {"shipping_article_code": SHIPPING, **order_settings},
        },
    }


def integration(
    platform: Platform, payment_methods: dict[str, str] | None = None, **kw: Any
) -> None:
    tables = {
        "payment_terms": PAYMENT_TERMS,
        "payment_methods": PAYMENT_METHODS if payment_methods is None else payment_methods,
    }
    document = platform.sandboxes.integration(flows(**kw), settings={"tables": tables})
    platform.apply(document)


def master_id(platform: Platform, resource: str, code: str) -> int:
    return int(
        next(r["id"] for r in platform.sandboxes.partspim.store.all(resource) if r["code"] == code)
    )


def some_skus(platform: Platform, count: int) -> list[str]:
    products = platform.sandboxes.partspim.store.all("products")
    return [p["sku"] for p in products if p["type"] == "simple"][:count]


def add_relation(platform: Platform, **body: Any) -> dict[str, Any]:
    address = {
        "street": "Dorpsstraat",
        "house_number": "12",
        "house_number_addition": "A",
        "postcode": "3511 AB",
        "city": "Utrecht",
        "country": "NL",
    }
    defaults = {
        "billing_address": address,
        "payment_term_id": master_id(platform, "payment-terms", "14D"),
        "payment_method_id": master_id(platform, "payment-methods", "IDEAL"),
    }
    return platform.sandboxes.partspim.store.create("relations", {**defaults, **body})


def add_order(platform: Platform, relation: dict[str, Any], skus: list[str], **body: Any) -> Any:
    lines = [{"sku": sku, "quantity": "2"} for sku in skus]
    order = {"relation_id": relation["id"], "employee_number": "999999", "lines": lines, **body}
    return platform.sandboxes.partspim.store.create("orders", order)


def setup(platform: Platform) -> None:
    av = platform.sandboxes.accountview
    av.write("ARTICLE", [{"ART_CODE": SHIPPING, "ART_DESC1": "Verzendkosten", "PX_SELL": 6.95}])


def orders_in_av(platform: Platform) -> dict[str, dict[str, Any]]:
    return {r["ORD_REF"]: r for r in platform.sandboxes.accountview.rows("SO_HDR")}


def debtors_by_email(platform: Platform) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in platform.sandboxes.accountview.rows("CONTACT"):
        found.setdefault(str(row["MAIL_BUS"]).strip().lower(), []).append(row)
    return found


def lines_of(platform: Platform, order: dict[str, Any]) -> list[dict[str, Any]]:
    return platform.sandboxes.accountview.rows("SO_LINE", ORD_NR=order["ORD_NR"])


def reasons(platform: Platform, run_id: str) -> dict[str, str]:
    return {
        o.source_key: o.reason or ""
        for o in platform.store.outcomes.list(run_id)
        if o.outcome == "failed"
    }


async def test_company_and_private_orders_then_rerun_creates_nothing(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(20)
    setup(platform)
    av = platform.sandboxes.accountview
    av.write(
        "CONTACT",
        [
            {
                "ACCT_NR": "1210",
                "SRC_CODE": "BAKKERIJ",
                "ACCT_NAME": "Bakkerij de Vries",
                "MAIL_BUS": "Inkoop@Bakkerij-DeVries.NL",
            }
        ],
    )
    [existing] = av.rows("CONTACT", MAIL_BUS="Inkoop@Bakkerij-DeVries.NL")
    company = add_relation(
        platform,
        type="company",
        company_name="Bakkerij de Vries B.V.",
        contact_person={"first_name": "Piet", "last_name": "de Vries"},
        email="inkoop@bakkerij-devries.nl",
    )
    person = add_relation(
        platform,
        type="person",
        first_name="Jan",
        last_name="Jansen",
        email="jan.jansen@example.nl",
        payment_method_id=master_id(platform, "payment-methods", "BANK"),
    )
    skus = some_skus(platform, 2)
    shipped_elsewhere = {
        "street": "Industrieweg",
        "house_number": "7",
        "postcode": "3542AD",
        "city": "Utrecht",
        "country": "NL",
    }
    company_order = add_order(
        platform, company, skus, shipping_cost="6.95", shipping_address=shipped_elsewhere
    )
    person_order = add_order(
        platform,
        person,
        skus[:1],
        prices_include_vat=True,
        shipping_cost="0",
        reference="SHOP-77",
    )
    integration(platform)
    async with platform.runner() as runner:
        products = await runner.run(platform.flow("products").id)
        assert products.status == "completed", products.error
        first = await runner.run(platform.flow("orders").id)
        assert first.status == "completed", first.error
        assert reasons(platform, first.run_id) == {}
        before_rerun = (len(av.rows("SO_HDR")), len(av.rows("CONTACT")), len(av.rows("DEL_ADDR")))
        second = await runner.run(platform.flow("orders").id)
    orders = orders_in_av(platform)
    pim_orders = platform.sandboxes.partspim.store.all("orders")
    assert {o["number"] for o in pim_orders} <= set(orders)

    company_so = orders[company_order["number"]]
    debtors = debtors_by_email(platform)
    assert len(debtors["inkoop@bakkerij-devries.nl"]) == 1, "found in another letter case"
    [debtor] = debtors["inkoop@bakkerij-devries.nl"]
    assert debtor["SUB_NR"] == existing["SUB_NR"] == company_so["RPL_INV"]
    assert (debtor["ACCT_NAME"], debtor["IS_COMP"], debtor["MAIN_CONT"]) == (
        "Bakkerij de Vries B.V.",
        False,  # IS_COMP is "the relation is my competitor"
        "Piet de Vries",
    )
    assert (debtor["POST_CODE"], debtor["ST_NR"], debtor["ST_EXTRA"]) == ("3511 AB", "12", "A")
    assert company_so["EMP_NR"] == "999999"
    assert (company_so["DISC_CODE"], company_so["PAY_TYPE"]) == ("01", "IDEAL")
    [address] = av.rows("DEL_ADDR", REC_ID=company_so["DEL_CODE"])
    assert (address["SUB_NR"], address["ADDRESS1"], address["POST_CODE"]) == (
        debtor["SUB_NR"],
        "Industrieweg 7",
        "3542 AD",
    )
    lines = lines_of(platform, company_so)
    assert [line["ART_CODE"] for line in lines] == [*skus, SHIPPING]
    assert Decimal(str(lines[-1]["ART_PX"])) == Decimal("6.95")

    person_so = orders[person_order["number"]]
    [private] = debtors["jan.jansen@example.nl"]
    assert (private["ACCT_NAME"], private["IS_COMP"], private["MAIN_CONT"]) == (
        "Jan Jansen",
        False,
        "",
    )
    assert person_so["RPL_INV"] == private["SUB_NR"]
    assert person_so["PAY_TYPE"] == "BANK" and person_so["DEL_CODE"] == ""
    assert person_so["COMMENT2"] == "SHOP-77"
    [line] = lines_of(platform, person_so)
    incl = Decimal(person_order["lines"][0]["price"])
    assert Decimal(str(line["ART_PX"])) == (incl / Decimal("1.21")).quantize(Decimal("0.0001"))

    assert second.status == "completed"
    run = platform.store.runs.get(second.run_id)
    assert run is not None
    assert run.counts.get("created", 0) == 0 and run.counts.get("updated", 0) == 0
    after = (len(av.rows("SO_HDR")), len(av.rows("CONTACT")), len(av.rows("DEL_ADDR")))
    assert after == before_rerun


async def test_missing_product_fails_naming_the_sku_then_replay_posts_it(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(20)
    setup(platform)
    integration(platform, order_statuses=["new"])
    async with platform.runner() as runner:
        await runner.run(platform.flow("products").id)
        late = platform.sandboxes.partspim.store.create(
            "products", {"sku": "990001", "name": "Remklauw links", "price_excl_vat": "80.00"}
        )
        relation = add_relation(
            platform, type="person", first_name="Els", last_name="Bos", email="els@bos.nl"
        )
        order = add_order(platform, relation, [*some_skus(platform, 1), late["sku"]], status="new")
        flow_id = platform.flow("orders").id
        first = await runner.run(flow_id)
        failed = reasons(platform, first.run_id)
        assert "'990001'" in failed[str(order["id"])], failed
        assert order["number"] not in orders_in_av(platform)
        await runner.run(platform.flow("products").id)
        replay = await runner.replay(flow_id)
        assert replay.status == "completed", replay.error
    assert reasons(platform, replay.run_id) == {}
    so = orders_in_av(platform)[order["number"]]
    assert "990001" in [line["ART_CODE"] for line in lines_of(platform, so)]
    letters = platform.store.dead_letters.list(flow_id, status=DeadLetterStatus.PENDING)
    assert letters == []


async def test_unmapped_payment_method_fails_clearly(platform_factory: Any) -> None:
    platform: Platform = platform_factory(20)
    setup(platform)
    methods = {k: v for k, v in PAYMENT_METHODS.items() if k != "REMBOURS"}
    integration(platform, payment_methods=methods, order_statuses=["new"])
    rembours = master_id(platform, "payment-methods", "REMBOURS")
    relation = add_relation(
        platform, type="person", first_name="Ali", last_name="Kaya", email="ali@kaya.nl"
    )
    bad = add_order(platform, relation, some_skus(platform, 1), payment_method_id=rembours)
    good = add_order(
        platform,
        relation,
        some_skus(platform, 1),
        payment_method_id=master_id(platform, "payment-methods", "PIN"),
    )
    async with platform.runner() as runner:
        await runner.run(platform.flow("products").id)
        run = await runner.run(platform.flow("orders").id)
    failed = reasons(platform, run.run_id)
    reason = failed[str(bad["id"])]
    assert "PAY_TYPE" in reason and "'REMBOURS'" in reason and "payment_methods" in reason
    assert str(good["id"]) not in failed
    assert orders_in_av(platform)[good["number"]]["PAY_TYPE"] == "PIN"


async def test_lost_links_and_concurrent_customer_flow_never_duplicate(
    platform_factory: Any,
) -> None:
    """The customers and orders flows run at once (per-key locks on the e-mail); then a second
    integration without any links posts the same orders again: it finds them by ORD_REF."""
    platform: Platform = platform_factory(40)
    setup(platform)
    integration(platform)
    av = platform.sandboxes.accountview
    async with platform.runner() as runner:
        await runner.run(platform.flow("products").id)
        orders_run, customers_run = await asyncio.gather(
            runner.run(platform.flow("orders").id), runner.run(platform.flow("customers").id)
        )
        assert orders_run.status == customers_run.status == "completed"
        assert reasons(platform, orders_run.run_id) == {}
        assert reasons(platform, customers_run.run_id) == {}
        counts = (len(av.rows("SO_HDR")), len(av.rows("CONTACT")))
        document = platform.sandboxes.integration(
            flows(),
            name="second",
            settings={
                "tables": {"payment_terms": PAYMENT_TERMS, "payment_methods": PAYMENT_METHODS}
            },
        )
        platform.apply(document)
        [second] = [i for i in platform.store.integrations.list() if i.name == "second"]
        products = platform.store.flows.get_by_name(second.id, "products")
        flow = platform.store.flows.get_by_name(second.id, "orders")
        assert products is not None and flow is not None
        # its orders wait for its products flow to have run once (docs/engine.md)
        assert (await runner.run(products.id)).status == "completed"
        again = await runner.run(flow.id)
    assert again.status == "completed"
    outcomes = platform.store.outcomes.list(again.run_id)
    assert {o.outcome for o in outcomes if not o.source_key.startswith("customer:")} == {"skipped"}
    assert (len(av.rows("SO_HDR")), len(av.rows("CONTACT"))) == counts
    assert all(len(rows) == 1 for rows in debtors_by_email(platform).values())


async def test_faults_end_synced_or_dead_lettered_and_replay_syncs_the_rest(
    platform_factory: Any,
) -> None:
    faults = FaultConfig(error_rate=0.1, rate_429=0.05, drop_rate=0.05, seed=7)
    platform: Platform = platform_factory(100, accountview_faults=faults)
    av = platform.sandboxes.accountview
    av.faults.configure(FaultConfig())
    setup(platform)
    integration(platform)
    orders_flow = platform.flow("orders").id
    async with platform.runner() as runner:
        products = await runner.run(platform.flow("products").id)
        assert products.status == "completed"
        av.faults.log.clear()
        av.faults.configure(faults)
        run = await runner.run(orders_flow)
        assert run.status == "completed", run.error
        assert any(e.status >= 429 for e in av.faults.log.entries()), "no fault was injected"
        pim_orders = platform.sandboxes.partspim.store.all("orders")
        synced = set(orders_in_av(platform))
        pending = {
            d.source_key
            for d in platform.store.dead_letters.list(orders_flow, status=DeadLetterStatus.PENDING)
        }
        for order in pim_orders:
            assert order["number"] in synced or str(order["id"]) in pending, order["number"]
        av.faults.configure(FaultConfig())
        replay = await runner.replay(orders_flow)
        assert replay.status == "completed"
    assert {o["number"] for o in pim_orders} <= set(orders_in_av(platform))
    refs = [r["ORD_REF"] for r in av.rows("SO_HDR")]
    assert len(refs) == len(set(refs)), "an order was posted twice"
    assert all(len(rows) == 1 for rows in debtors_by_email(platform).values())


def locked_race_platform(
    platform_factory: Any, lock_wait_seconds: float
) -> tuple[Platform, dict[str, Any]]:
    """A relation with one order (RACE-1); the orders flow waits `lock_wait_seconds` for a
    debtor lock."""
    platform: Platform = platform_factory(20, gated=True)
    setup(platform)
    relation = add_relation(
        platform,
        type="company",
        company_name="Racebaan B.V.",
        contact_person={"first_name": "Ria", "last_name": "Snel"},
        email="inkoop@racebaan.nl",
    )
    add_order(platform, relation, some_skus(platform, 1), reference="RACE-1")
    integration(platform, customer_lock_wait_seconds=lock_wait_seconds)
    return platform, relation


async def test_a_debtor_being_written_by_one_flow_is_not_created_again_by_the_other(
    platform_factory: Any,
) -> None:
    """DESIGN guarantee 2, forced: the customers flow is held inside its e-mail lock, between
    its lookup and its post of the debtor, while the orders flow wants the same debtor. The
    orders flow must not create it (with no wait it fails the record, to be retried), and once
    retried it books the order on the debtor the customers flow made."""
    platform, relation = locked_race_platform(platform_factory, 0)
    assert platform.gates is not None
    async with platform.runner() as runner:
        await runner.run(platform.flow("products").id)
        debtor_post = platform.gates.accountview.hold(post_of("AR1"))
        customers = asyncio.ensure_future(runner.run(platform.flow("customers").id))
        await debtor_post.arrived()
        orders = await runner.run(platform.flow("orders").id)
        debtor_post.release()
        assert (await customers).status == "completed"
        failed = reasons(platform, orders.run_id)
        assert (
            "another flow is writing the debtor with e-mail inkoop@racebaan.nl"
            in (failed[f"customer:{relation['id']}"])
        )
        assert "RACE-1" not in {o["COMMENT2"] for o in orders_in_av(platform).values()}
        replay = await runner.replay(platform.flow("orders").id)
        assert reasons(platform, replay.run_id) == {}
    [debtor] = debtors_by_email(platform)["inkoop@racebaan.nl"]
    [order] = [o for o in orders_in_av(platform).values() if o["COMMENT2"] == "RACE-1"]
    assert order["RPL_INV"] == debtor["SUB_NR"]


async def test_the_other_flow_waits_for_a_debtor_lock_then_uses_that_debtor(
    platform_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """customer_lock_wait_seconds: within the wait, the orders flow waits for the customers
    flow's debtor and then books the order on it: no failure, no second debtor."""
    caplog.set_level(logging.INFO, logger="koppel.flows.customers")
    platform, _ = locked_race_platform(platform_factory, 600)
    assert platform.gates is not None
    async with platform.runner() as runner:
        await runner.run(platform.flow("products").id)
        debtor_post = platform.gates.accountview.hold(post_of("AR1"))
        customers = asyncio.ensure_future(runner.run(platform.flow("customers").id))
        await debtor_post.arrived()
        orders = asyncio.ensure_future(runner.run(platform.flow("orders").id))
        await until(lambda: any("waits up to 600s" in r.getMessage() for r in caplog.records))
        assert not orders.done()
        debtor_post.release()
        assert (await customers).status == "completed"
        orders_run = await orders
    assert reasons(platform, orders_run.run_id) == {}
    [debtor] = debtors_by_email(platform)["inkoop@racebaan.nl"]
    [order] = [o for o in orders_in_av(platform).values() if o["COMMENT2"] == "RACE-1"]
    assert order["RPL_INV"] == debtor["SUB_NR"]


async def until(condition: Any) -> None:
    """Wait for a state of the run (a bound, not a timing: fails after two minutes)."""
    for _ in range(2400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the state never came")
