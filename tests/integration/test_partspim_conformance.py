"""The shared connector conformance suite, run against the Parts Pim sandbox."""

from __future__ import annotations

from typing import Any

from koppel.connectors.base import ClientLimits, Connector, Record
from koppel.connectors.partspim import PartsPimConnector
from koppel.sandbox.partspim import PartsPimSandbox
from tests.connector_conformance import ConnectorHarness, EntityCase, Sandbox, conformance_suite

FAST = ClientLimits(backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=12, timeout_s=10)
FIRST_SKU = "10000001"  # the generator's first product, always a simple one


def make_sandbox(products: int) -> PartsPimSandbox:
    sandbox = PartsPimSandbox(seed=7)
    sandbox.generate(products, seed=7)
    return sandbox


def as_pim(sandbox: Sandbox) -> PartsPimSandbox:
    assert isinstance(sandbox, PartsPimSandbox)
    return sandbox


def make_connector(sandbox: Sandbox, url: str) -> Connector:
    return PartsPimConnector(**as_pim(sandbox).credentials(url), limits=FAST)


def make_bad_connector(sandbox: Sandbox, url: str) -> Connector:
    return PartsPimConnector(url, "ppk_wrong", limits=FAST)


def row_ids(sandbox: Sandbox, entity: str) -> set[str]:
    table = entity  # the sandbox's tables carry the connector's entity names
    return {str(row["id"]) for row in as_pim(sandbox).store.sql(f"SELECT id FROM {table}")}


def changed(field: str, value: Any) -> Any:
    def change(record: Record) -> Record:
        return {**record, field: value}

    return change


def document(reference: str, **fields: Any) -> Record:
    return {
        "reference": reference,
        "relation_id": 1,
        "employee_number": "999999",
        "lines": [{"sku": FIRST_SKU, "quantity": "2"}],
        **fields,
    }


HARNESS = ConnectorHarness(
    application="partspim",
    make_sandbox=make_sandbox,
    make_connector=make_connector,
    make_bad_connector=make_bad_connector,
    paging_entity="products",
    row_ids=row_ids,
    account_name=lambda sandbox: as_pim(sandbox).store.company,
    cases=[
        EntityCase(
            entity="products",
            new_record=lambda i: {
                "sku": f"77{i:06d}",
                "name": f"Bosch Oliefilter P {i} voor VW Golf VII 1.6 TDI",
                "price_excl_vat": "8.95",
                "ean": "8712345678906",
            },
            change=changed("name", "Bosch Oliefilter (gewijzigd)"),
            changed_field="name",
            invalid_record=lambda i: {"sku": f"AB-{i}", "name": "Ongeldige SKU"},
            invalid_field="sku",
        ),
        EntityCase(
            entity="categories",
            new_record=lambda i: {"code": f"NIEUW-{i}", "name": f"Nieuwe categorie {i}"},
            change=changed("name", "Gewijzigde categorie"),
            changed_field="name",
            invalid_record=lambda i: {"code": f"LANG-{i}", "name": "x" * 101},
            invalid_field="name",
        ),
        EntityCase(
            entity="relations",
            new_record=lambda i: {
                "type": "company",
                "company_name": f"Garage {i} B.V.",
                "contact_person": {"first_name": "Piet", "last_name": "Jansen"},
                "email": f"info{i}@garage-nieuw.nl",
            },
            change=changed("phone", "030-1234567"),
            changed_field="phone",
            invalid_record=lambda i: {"type": "person", "email": f"fout{i}@example.nl"},
            invalid_field="last_name",
        ),
        EntityCase(
            entity="orders",
            new_record=lambda i: document(f"KOPPEL-{i}"),
            change=changed("status", "processing"),
            changed_field="status",
            invalid_record=lambda i: {**document(f"FOUT-{i}"), "employee_number": None},
            invalid_field="employee_number",
        ),
        EntityCase(
            entity="invoices",
            new_record=lambda i: document(f"KOPPEL-F{i}"),
            change=changed("status", "paid"),
            changed_field="status",
            invalid_record=lambda i: document(f"FOUT-F{i}", employee_number="12a"),
            invalid_field="employee_number",
        ),
    ],
)

TestPartsPimConformance = conformance_suite(HARNESS)
