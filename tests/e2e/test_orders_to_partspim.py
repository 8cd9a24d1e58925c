"""Orders, AccountView -> Parts Pim (orders, or invoices by a setting), over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from koppel.sandbox.common import FaultConfig
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import counts, outcomes, run_flow

PAYMENT_TABLES = {
    # the integration's shared table (Parts Pim -> AccountView), read in reverse
    "payment_terms": {"14D": "01", "30D": "02", "DIR": "03"},
    # a table of this direction only
    "payment_methods_to_partspim": {"IDEAL": "IDEAL", "BANK": "BANK"},
}
UNKNOWN_SKU = "77777777"


def simple_skus(platform: Platform, count: int) -> list[str]:
    products = platform.sandboxes.partspim.store.all("products")
    return [p["sku"] for p in products if p["type"] == "simple"][:count]


def order_platform(
    platform_factory: Any,
    settings: dict[str, Any] | None = None,
    extra_flows: dict[str, dict[str, Any]] | None = None,
) -> Platform:
    """Parts Pim with a catalogue and one relation; AccountView with two debtors, three orders.

    Debtor 50001 is a company whose e-mail Parts Pim has in another letter case; 50002 is a
    person Parts Pim does not know. Order WEB-3 names an article Parts Pim lacks.
    """
    platform: Platform = platform_factory(15, seed=7)
    pim, av = platform.sandboxes.partspim, platform.sandboxes.accountview
    pim.store.create(
        "relations",
        {
            "type": "company",
            "company_name": "Garage Jansen B.V.",
            "email": "inkoop@garage-jansen.nl",
            "billing_address": {"street": "Dorpsstraat", "house_number": "1", "country": "NL"},
        },
    )
    first, second = simple_skus(platform, 2)
    av.write(
        "ARTICLE",
        [{"ART_CODE": sku, "ART_DESC1": f"Artikel {sku}"} for sku in (first, second, UNKNOWN_SKU)],
    )
    address = {"ST_STREET": "Kerkstraat", "ST_NR": "12", "POST_CODE": "3511 AB", "CITY": "Utrecht"}
    av.write(
        "CONTACT",
        [
            {
                "SUB_NR": "50001",
                "ACCT_NR": "1210",
                "ACCT_NAME": "Garage Jansen B.V.",
                "SRC_CODE": "JANSEN",
                "MAIN_CONT": "Piet van Jansen",
                "MAIL_BUS": " Inkoop@Garage-Jansen.NL ",
                "CNT_CODE": "NL",
                **address,
            },
            {
                "SUB_NR": "50002",
                "ACCT_NR": "1210",
                "ACCT_NAME": "Els de Boer",
                "SRC_CODE": "DEBOER",
                "MAIL_BUS": "els.deboer@example.nl",
                "CNT_CODE": "NL",
                **address,
            },
        ],
    )
    av.write(
        "SO_HDR",
        [
            {
                "ORD_REF": "WEB-1",
                "RPL_INV": "50001",
                "DISC_CODE": "02",
                "PAY_TYPE": "IDEAL",
                "ORD_DATE": "2024-05-01T10:00:00",
                "SO_LINE": [{"ART_CODE": first, "ORD_QTY": 2, "ART_PX": 12.5}],
            },
            {
                "ORD_REF": "WEB-2",
                "RPL_INV": "50002",
                "DISC_CODE": "01",
                "PAY_TYPE": "BANK",
                "SO_LINE": [
                    {"ART_CODE": first, "ORD_QTY": 1},
                    {"ART_CODE": second, "ORD_QTY": 3, "ART_PX": 4},
                ],
            },
            {
                "ORD_REF": "WEB-3",
                "RPL_INV": "50002",
                "SO_LINE": [{"ART_CODE": UNKNOWN_SKU, "ORD_QTY": 1, "ART_PX": 9.95}],
            },
        ],
    )
    started = datetime.now(UTC) - timedelta(minutes=1)
    # `retrieve_from` leaves out the orders the sandbox generated a while ago
    flow_settings = {
        "tables": PAYMENT_TABLES,
        "retrieve_from": started.isoformat(),
        **(settings or {}),
    }
    flows = {"orders": {"from": "av", "to": "pim", "entity": "orders", "settings": flow_settings}}
    platform.apply(platform.sandboxes.integration({**flows, **(extra_flows or {})}))
    return platform


def documents(platform: Platform, resource: str = "orders") -> dict[str, dict[str, Any]]:
    """The test's documents in Parts Pim (the sandbox generated others), by reference."""
    found = platform.sandboxes.partspim.store.all(resource)
    return {d["reference"]: d for d in found if d["reference"] in ("WEB-1", "WEB-2", "WEB-3")}


def master_id(platform: Platform, resource: str, code: str) -> int:
    rows = platform.sandboxes.partspim.store.all(resource)
    return int(next(r["id"] for r in rows if r["code"] == code))


async def test_orders_reach_parts_pim_with_customers_and_a_missing_product(
    platform_factory: Any,
) -> None:
    platform = order_platform(platform_factory)
    pim = platform.sandboxes.partspim
    relations_before = {r["email"].lower(): r for r in pim.store.all("relations")}
    first = await run_flow(platform, "orders")
    assert counts(platform, first) == {"created": 2, "failed": 1}
    created = documents(platform)
    one, two = created["WEB-1"], created["WEB-2"]
    assert one["employee_number"] == two["employee_number"] == "999999"
    assert one["payment_term_id"] == master_id(platform, "payment-terms", "30D")
    assert two["payment_term_id"] == master_id(platform, "payment-terms", "14D")
    assert two["payment_method_id"] == master_id(platform, "payment-methods", "BANK")
    assert one["order_date"] == "2024-05-01"
    assert [(line["quantity"], line["price"]) for line in one["lines"]] == [("2", "12.50")]
    # the company was matched in another letter case: no second relation
    assert one["relation_id"] == relations_before["inkoop@garage-jansen.nl"]["id"]
    relations = {r["email"].lower(): r for r in pim.store.all("relations")}
    assert len(relations) == len(relations_before) + 1
    person = relations["els.deboer@example.nl"]
    assert (person["type"], person["first_name"], person["last_name"]) == (
        "person",
        "Els",
        "de Boer",
    )
    company = relations["inkoop@garage-jansen.nl"]
    assert company["contact_person"]["last_name"] == "van Jansen"
    failed = [o for o in outcomes(platform, first).values() if o.outcome == "failed"]
    assert [o.reason for o in failed] == [
        f"order 'WEB-3': field lines[].sku: SKU '{UNKNOWN_SKU}' not in Parts Pim; "
        "the order is retried until the products exist"
    ]

    rerun = await run_flow(platform, "orders")
    assert counts(platform, rerun).get("created", 0) == 0
    assert len(documents(platform)) == 2

    pim.store.create(
        "products", {"sku": UNKNOWN_SKU, "name": "Nieuw product", "price_excl_vat": "9"}
    )
    replay = await run_flow(platform, "orders", replay=True)
    assert counts(platform, replay) == {"created": 1}
    assert documents(platform)["WEB-3"]["lines"][0]["sku"] == UNKNOWN_SKU
    again = await run_flow(platform, "orders")
    assert counts(platform, again).get("created", 0) == 0
    assert len(documents(platform)) == 3


async def test_lost_links_find_orders_by_reference(platform_factory: Any) -> None:
    platform = order_platform(platform_factory)
    await run_flow(platform, "orders")
    with platform.store.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM links")
    platform.store.cursors.set(platform.flow("orders").id, "2000-01-01T00:00:00+00:00")
    rerun = await run_flow(platform, "orders")
    assert counts(platform, rerun).get("created", 0) == 0
    skipped = [o for o in outcomes(platform, rerun).values() if o.outcome == "skipped"]
    assert {str(o.reason).split(" (")[0].rsplit(" ", 1)[0] for o in skipped} == {
        "already in Parts Pim as order"
    }
    assert len(documents(platform)) == 2


async def test_invoices_and_an_unmapped_payment_term(platform_factory: Any) -> None:
    settings = {
        "document_type": "invoice",
        "employee_number": "100001",
        "tables": {"payment_terms_to_partspim": {"01": "14D"}},
    }
    platform = order_platform(platform_factory, settings)
    summary = await run_flow(platform, "orders")
    assert documents(platform, "orders") == {}
    invoices = documents(platform, "invoices")
    assert set(invoices) == {"WEB-2"}
    assert invoices["WEB-2"]["employee_number"] == "100001"
    assert invoices["WEB-2"]["payment_method_id"] == master_id(platform, "payment-methods", "BANK")
    failed = {o.reason for o in outcomes(platform, summary).values() if o.outcome == "failed"}
    assert (
        "order 'WEB-1': field payment_term: AccountView payment condition '02' is not mapped to "
        "a Parts Pim payment term: add it to the setting tables.payment_terms_to_partspim "
        "(Parts Pim has: 14D, 30D, DIR)"
    ) in failed


async def test_faults_neither_duplicate_nor_lose_orders(platform_factory: Any) -> None:
    faults = FaultConfig(error_rate=0.1, rate_429=0.05, drop_rate=0.05, seed=3)
    platform: Platform = platform_factory(
        15, seed=7, partspim_faults=faults, accountview_faults=faults
    )
    pim, av = platform.sandboxes.partspim, platform.sandboxes.accountview
    skus = simple_skus(platform, 3)
    av.write("ARTICLE", [{"ART_CODE": sku, "ART_DESC1": f"Artikel {sku}"} for sku in skus])
    av.write(
        "CONTACT",
        [
            {
                "SUB_NR": str(60000 + n),
                "ACCT_NR": "1210",
                "ACCT_NAME": f"Klant {n}",
                "SRC_CODE": f"KLANT{n}",
                "MAIL_BUS": f"klant{n}@example.nl",
                "CNT_CODE": "NL",
            }
            for n in range(8)
        ],
    )
    references = [f"FLT-{n}" for n in range(40)]
    av.write(
        "SO_HDR",
        [
            {
                "ORD_REF": reference,
                "RPL_INV": str(60000 + n % 8),
                "SO_LINE": [{"ART_CODE": skus[n % 3], "ORD_QTY": 1 + n % 4}],
            }
            for n, reference in enumerate(references)
        ],
    )
    started = datetime.now(UTC) - timedelta(minutes=1)
    settings = {"retrieve_from": started.isoformat(), "page_size": 10}
    flows = {"orders": {"from": "av", "to": "pim", "entity": "orders", "settings": settings}}
    platform.apply(platform.sandboxes.integration(flows))
    flow = platform.flow("orders")
    async with platform.runner() as runner:
        await runner.run(flow.id)
        faulted = [e for e in pim.faults.log.entries() + av.faults.log.entries() if e.status >= 429]
        assert faulted, "the faults were injected"
        pim.faults.configure(FaultConfig())
        av.faults.configure(FaultConfig())
        replay = await runner.replay(flow.id)
        assert replay.status == "completed", replay.error
        after = await runner.run(flow.id)
        assert after.status == "completed", after.error
    orders = [
        o["reference"] for o in pim.store.all("orders") if str(o["reference"]).startswith("FLT-")
    ]
    assert sorted(orders) == sorted(references)  # each once: none lost, none twice
    emails = [r["email"] for r in pim.store.all("relations") if str(r["email"]).startswith("klant")]
    assert sorted(emails) == sorted(f"klant{n}@example.nl" for n in range(8))
    assert counts(platform, after).get("created", 0) == 0


async def test_customers_made_from_accountview_are_not_sent_back(platform_factory: Any) -> None:
    customers = {
        "customers": {
            "from": "pim",
            "to": "av",
            "entity": "customers",
            "schedule": "manual",
            "settings": {"tables": PAYMENT_TABLES, "retrieve_from": "2000-01-01T00:00:00+00:00"},
        }
    }
    platform = order_platform(platform_factory, extra_flows=customers)
    av = platform.sandboxes.accountview
    async with platform.runner() as runner:
        orders = await runner.run(platform.flow("orders").id)
        assert orders.status == "completed", orders.error
        debtors_before = {d["SUB_NR"]: d for d in av.rows("CONTACT")}
        synced = await runner.run(platform.flow("customers").id)
        assert synced.status == "completed", synced.error
    outcomes = platform.store.outcomes.list(synced.run_id, limit=10_000)
    echoed = [o for o in outcomes if o.reason and "came from AccountView" in o.reason]
    # The orders flow linked both debtors to a relation: 50001 to Garage Jansen (matched by
    # e-mail), 50002 to the relation it made for Els de Boer. Both are skipped, nothing else.
    linked = {
        str(r["id"])
        for r in platform.sandboxes.partspim.store.all("relations")
        if r["email"] in ("inkoop@garage-jansen.nl", "els.deboer@example.nl")
    }
    assert len(linked) == 2
    assert {o.source_key for o in echoed} == linked
    assert len(echoed) == 2 and {o.outcome for o in echoed} == {"skipped"}
    debtors_after = {d["SUB_NR"]: d for d in av.rows("CONTACT")}
    for number in ("50001", "50002"):
        assert debtors_after[number]["CNG_NR"] == debtors_before[number]["CNG_NR"], number


async def test_an_order_that_cannot_be_posted_makes_no_relation(platform_factory: Any) -> None:
    platform = order_platform(platform_factory)
    pim, av = platform.sandboxes.partspim, platform.sandboxes.accountview
    av.write(
        "CONTACT",
        [
            {
                "SUB_NR": number,
                "ACCT_NR": "1210",
                "ACCT_NAME": name,
                "SRC_CODE": name.upper()[:10],
                "MAIL_BUS": email,
                "CNT_CODE": "NL",
            }
            for number, name, email in (
                ("50003", "Kees Zonderregels", "kees@example.nl"),
                ("50004", "Anna Onbekend", "anna@example.nl"),
            )
        ],
    )
    av.write(
        "SO_HDR",
        [
            {"ORD_REF": "WEB-4", "RPL_INV": "50003", "SO_LINE": []},
            {
                "ORD_REF": "WEB-5",
                "RPL_INV": "50004",
                "SO_LINE": [{"ART_CODE": UNKNOWN_SKU, "ORD_QTY": 1, "ART_PX": 9.95}],
            },
        ],
    )
    summary = await run_flow(platform, "orders")
    reasons = {o.source_key: o.reason for o in outcomes(platform, summary).values()}
    labelled = {r.split(":")[0]: r for r in reasons.values() if r}
    assert labelled["order 'WEB-4'"] == (
        "order 'WEB-4': field lines: the order has no lines; Parts Pim takes an order only with "
        "at least one line: add them in AccountView, the order is retried"
    )
    assert "not in Parts Pim" in labelled["order 'WEB-5'"]
    emails = {str(r["email"]).lower() for r in pim.store.all("relations")}
    assert not emails & {"kees@example.nl", "anna@example.nl"}, "a relation was made first"
