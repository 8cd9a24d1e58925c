"""The connector's dictionary copy agrees with the sandbox's, and schemas come from it."""

from __future__ import annotations

from koppel.connectors.accountview import ENTITIES
from koppel.connectors.accountview.dictionary import table_fields
from koppel.sandbox.accountview.dictionary import tables


def test_connector_dictionary_equals_sandbox_dictionary() -> None:
    for table, fields in table_fields().items():
        served = {f.name: f.dct_fld() for f in tables()[table].fields.values()}
        assert set(fields) == set(served), table
        for name, field in fields.items():
            row = served[name]
            assert (field.type, field.length, field.mandatory, field.upper, field.read_only) == (
                row["FIELD_TYPE"],
                row["FIELD_LEN"],
                row["INP_MAND"],
                row["FLD_FMT"] == "!",
                row["COM_BLK"],
            ), f"{table}.{name}"


def test_entity_schemas_carry_lengths_and_rules() -> None:
    articles = ENTITIES["articles"].spec.schema
    code = articles.get("ART_CODE")
    assert code is not None and code.max_length == 15 and code.upper_case and code.required
    orders = ENTITIES["sales_orders"].spec.schema
    assert orders.knows("SO_LINE[].ART_CODE")
    mail = ENTITIES["debtors"].spec.schema.get("MAIL_BUS")
    assert mail is not None and mail.max_length == 50
