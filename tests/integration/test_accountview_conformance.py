"""The shared connector conformance suite, run against the AccountView sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from koppel.connectors.accountview import ENTITIES, AccountViewConnector
from koppel.connectors.base import ClientLimits, Connector, Record
from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.accountview.assumptions import PastLastPage
from tests.connector_conformance import ConnectorHarness, EntityCase, Sandbox, conformance_suite

FAST = ClientLimits(backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=12, timeout_s=10)


def make_sandbox(products: int) -> AccountViewSandbox:
    sandbox = AccountViewSandbox()
    sandbox.generate(products)
    return sandbox


def as_av(sandbox: Sandbox) -> AccountViewSandbox:
    assert isinstance(sandbox, AccountViewSandbox)
    return sandbox


def make_connector(sandbox: Sandbox, url: str) -> Connector:
    return AccountViewConnector(as_av(sandbox).credentials(url), limits=FAST)


def make_bad_connector(sandbox: Sandbox, url: str) -> Connector:
    credentials: dict[str, Any] = as_av(sandbox).credentials(url)
    credentials.update(client_secret="wrong", access_token=None, refresh_token="bogus")
    return AccountViewConnector(credentials, limits=FAST)


def company_name(sandbox: Sandbox) -> str:
    av = as_av(sandbox)
    [company] = [c for c in av.companies() if c["Id"] == av.default_company()]
    return company["Description"]


def row_ids(sandbox: Sandbox, entity: str) -> set[str]:
    spec = ENTITIES[entity]
    id_field = spec.spec.id_field
    return {str(row[id_field]) for row in as_av(sandbox).rows(spec.table)}


def answer_past_last_page(choice: PastLastPage) -> Callable[[Sandbox], None]:
    def switch(sandbox: Sandbox) -> None:
        as_av(sandbox).past_last_page = choice

    return switch


def changed(field: str, value: str) -> Any:
    def change(record: Record) -> Record:
        return {**record, field: value}

    return change


HARNESS = ConnectorHarness(
    application="accountview",
    make_sandbox=make_sandbox,
    make_connector=make_connector,
    make_bad_connector=make_bad_connector,
    paging_entity="articles",
    row_ids=row_ids,
    account_name=company_name,
    past_last_page={
        "empty list": answer_past_last_page(PastLastPage.EMPTY),
        "error body": answer_past_last_page(PastLastPage.ERROR),
        "404": answer_past_last_page(PastLastPage.NOT_FOUND),
    },
    cases=[
        EntityCase(
            entity="articles",
            new_record=lambda i: {
                "ART_CODE": f"NEW{i:05d}",
                "ART_DESC1": f"Nieuw artikel {i}",
                "AG_CODE": "G001",
                "PX_SELL": "12.50",
                "VAT_CODE": "2",
            },
            change=changed("ART_DESC1", "Gewijzigd artikel"),
            changed_field="ART_DESC1",
            invalid_record=lambda i: {"ART_CODE": f"BAD{i:05d}", "ART_DESC1": "x" * 41},
            invalid_field="ART_DESC1",
        ),
        EntityCase(
            entity="article_groups",
            new_record=lambda i: {"AG_CODE": f"N{i:04d}", "AG_DESC": f"Nieuwe groep {i}"},
            change=changed("AG_DESC", "Gewijzigde groep"),
            changed_field="AG_DESC",
            invalid_record=lambda i: {"AG_CODE": f"TOOLONG{i}", "AG_DESC": "Te lange code"},
            invalid_field="AG_CODE",
        ),
        EntityCase(
            entity="debtors",
            new_record=lambda i: {
                "MAIL_BUS": f"nieuw{i}@example.nl",
                "ACCT_NAME": f"Klant {i}",
                "SRC_CODE": f"KLANT{i}",
                "ACCT_NR": "1210",
                "CNT_CODE": "NL",
            },
            change=changed("CITY", "Utrecht"),
            changed_field="CITY",
            invalid_record=lambda i: {
                "MAIL_BUS": f"fout{i}@example.nl",
                "SRC_CODE": "FOUT",
                "CNT_CODE": "nl",
                "ACCT_NAME": "Fout",
            },
            invalid_field="CNT_CODE",
        ),
        EntityCase(
            entity="sales_orders",
            new_record=lambda i: {
                "ORD_REF": f"TEST-{i}",
                "RPL_INV": "10000",
                "COMMENT1": f"Testorder {i}",
                "SO_LINE": [{"ART_CODE": "100000", "ORD_QTY": 2}],
            },
            change=changed("COMMENT1", "Gewijzigde order"),
            changed_field="COMMENT1",
            # The same fields as a valid order, so it goes in the same post and AccountView
            # itself refuses it: the connector must isolate it from the orders beside it.
            invalid_record=lambda i: {
                "ORD_REF": f"FOUT-{i}",
                "RPL_INV": "10000",
                "COMMENT1": f"Foute order {i}",
                "SO_LINE": [{"ART_CODE": "GEEN-ARTIKEL", "ORD_QTY": 1}],
            },
            invalid_field="ART_CODE",
        ),
    ],
)

TestAccountViewConformance = conformance_suite(HARNESS)
