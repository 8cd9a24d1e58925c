"""The dictionaries of sandbox and connector agree with the published ones and with each other,
every field no public source shows is named in the docs page, and schemas come from them."""

from __future__ import annotations

import re
from pathlib import Path

from koppel.connectors.accountview import ENTITIES
from koppel.connectors.accountview.dictionary import table_fields
from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.dictionary import FieldDef, published
from koppel.sandbox.accountview.dictionary import table_fields as served

DOCS = Path(__file__).parents[2] / "docs" / "connectors" / "accountview.md"


def rules(field: FieldDef) -> tuple[str, int, bool, bool, bool]:
    return (field.type, field.length, field.mandatory, field.upper, field.read_only)


def test_the_published_file_holds_the_eleven_public_dictionaries() -> None:
    counts = {table: len(fields) for table, fields in published().items()}
    assert counts == {
        "ACCT_REC": 2,
        "ADM_LIST": 40,
        "COMP_HDR": 48,
        "CONTACT": 189,
        "COST": 12,
        "DAILY": 43,
        "DJ_LINE": 49,
        "DJ_PAGE": 87,
        "LEDGER": 69,
        "TRANSACT": 58,
        "VAT": 19,
    }
    assert rules(published()["ACCT_REC"]["ACCT_NR"]) == ("C", 10, True, True, False)
    assert rules(published()["CONTACT"]["ACCT_NR"]) == ("C", 10, False, True, False)


def test_sandbox_serves_published_tables_exactly_as_published() -> None:
    for table in ("CONTACT", "VAT", "ACCT_REC"):
        fields = served(table)
        assert set(fields) == set(published()[table]), f"{table}: fields added or missing"
        for name, field in fields.items():
            assert rules(field) == rules(published()[table][name]), f"{table}.{name}"
    assert "REC_ID" not in served("VAT")


def test_connector_dictionary_equals_sandbox_dictionary() -> None:
    for table, fields in table_fields().items():
        expected = served(table)
        assert set(fields) == set(expected), table
        for name, field in fields.items():
            rule = (field.type, field.length, field.mandatory, field.upper, field.read_only)
            assert rule == rules(expected[name]), f"{table}.{name}"


def _documented_assumed_fields() -> dict[str, set[str]]:
    """The docs page's "Field dictionaries" table: table | source | fields no source shows."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Field dictionaries", 1)[1].split("\n#", 1)[0]
    documented: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"[A-Z_]+", cells[0]):
            documented[cells[0]] = set(re.findall(r"[A-Z][A-Z0-9_]+", cells[2]))
    return documented


def test_every_field_no_public_source_shows_is_in_the_docs() -> None:
    documented = _documented_assumed_fields()
    for table, rows in assumptions.ASSUMED_TABLES.items():
        assumed = {name for name, *_ in rows} - assumptions.SEEN_FIELDS[table]
        assert documented.get(table, set()) == assumed, table
    for table in ("CONTACT", "VAT", "ACCT_REC"):
        assert documented[table] == set(), f"{table} is published: it has no field of ours"


def test_entity_schemas_carry_lengths_and_rules() -> None:
    articles = ENTITIES["articles"].spec.schema
    code = articles.get("ART_CODE")
    assert code is not None and code.max_length == 15 and code.upper_case and code.required
    orders = ENTITIES["sales_orders"].spec.schema
    assert orders.knows("SO_LINE[].ART_CODE")
    debtors = ENTITIES["debtors"].spec.schema
    mail = debtors.get("MAIL_BUS")
    assert mail is not None and mail.max_length == 50
    collective = debtors.get("ACCT_NR")
    assert collective is not None and collective.required  # ACCT_REC, the AR1 dictionary
