"""Customers, Parts Pim relations -> AccountView debtors, over real HTTP with the engine."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.test_orders_to_accountview import (
    add_relation,
    debtors_by_email,
    integration,
    reasons,
)


async def test_customers_create_then_update_only_on_change(platform_factory: Any) -> None:
    platform: Platform = platform_factory(20)
    av = platform.sandboxes.accountview
    av.write(
        "CONTACT",
        [
            {
                "ACCT_NR": "1210",
                "SRC_CODE": "GARAGE",
                "ACCT_NAME": "Garage",
                "MAIL_BUS": "INFO@GARAGE.NL",
            }
        ],
    )
    company = add_relation(
        platform,
        type="company",
        company_name="Garage Jansen B.V.",
        contact_person={"first_name": "Piet", "last_name": "Jansen", "email": "piet@garage.nl"},
        email=" Info@Garage.nl",
    )
    person = add_relation(
        platform, type="person", first_name="Anna", last_name="Bakker", email="anna@bakker.nl"
    )
    supplier = add_relation(
        platform, type="company", company_name="Onderdelen GmbH", email="a@o.de", role="supplier"
    )
    relations = platform.sandboxes.partspim.store.all("relations")
    integration(platform)
    flow_id = platform.flow("customers").id
    async with platform.runner() as runner:
        first = await runner.run(flow_id)
        assert first.status == "completed", first.error
        assert reasons(platform, first.run_id) == {}
        second = await runner.run(flow_id)
        platform.sandboxes.partspim.store.update("relations", person["id"], {"phone": "06-1234"})
        third = await runner.run(flow_id)

    debtors = debtors_by_email(platform)
    [garage] = debtors["info@garage.nl"]
    assert (garage["ACCT_NAME"], garage["IS_COMP"], garage["MAIN_CONT"], garage["MC_MAILB"]) == (
        "Garage Jansen B.V.",
        False,  # IS_COMP is "the relation is my competitor"
        "Piet Jansen",
        "piet@garage.nl",
    )
    assert garage["SRC_CODE"] == "GARAGE", "the search code is written on create only"
    [anna] = debtors["anna@bakker.nl"]
    assert (anna["ACCT_NAME"], anna["IS_COMP"], anna["ACCT_NR"], anna["SRC_CODE"]) == (
        "Anna Bakker",
        False,
        "1210",
        "ANNABAKKER",
    )
    assert anna["DISC_CODE"] == "01" and anna["TEL_BUS"] == "06-1234"
    assert "a@o.de" not in debtors
    customers = [r for r in relations if r.get("role") != "supplier"]
    assert all(len(debtors[r["email"].strip().lower()]) == 1 for r in customers)

    outcomes = {o.source_key: o for o in platform.store.outcomes.list(first.run_id)}
    assert outcomes[str(company["id"])].outcome == "updated"
    assert outcomes[str(person["id"])].outcome == "created"
    assert outcomes[str(supplier["id"])].outcome == "skipped"
    for run, updated in ((second, 0), (third, 1)):
        summary = platform.store.runs.get(run.run_id)
        assert summary is not None
        assert summary.counts.get("created", 0) == 0
        assert summary.counts.get("updated", 0) == updated
