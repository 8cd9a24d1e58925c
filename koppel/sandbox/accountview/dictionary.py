"""The sandbox's data dictionary: the published tables (published_fields.tsv) plus the assumed ones.

Every table, column, type, length and rule the sandbox enforces comes from here, so the API, the
storage and the dictionary it serves (DCT_FLD, DCT_FILE) cannot disagree.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from koppel.sandbox.accountview import assumptions

TEXT_TYPES = frozenset("CM")
NUMBER_TYPES = frozenset("NYB")
DATE_TYPES = frozenset("DT")
FIELD_TYPES = frozenset("CMNYBILDT")


@dataclass(frozen=True)
class FieldDef:
    table: str
    name: str
    type: str
    length: int
    mandatory: bool
    format: str
    """FLD_FMT: "!" upper case, "D" a date format, or empty."""
    read_only: bool
    mask: str
    description: str

    @property
    def upper(self) -> bool:
        return self.format == "!"

    def dct_fld(self) -> dict[str, Any]:
        """The field as a DCT_FLD row (the data dictionary's own table)."""
        return {
            "DBF_NAME": self.table,
            "FIELD_NAME": self.name,
            "FIELD_TYPE": self.type,
            "FIELD_LEN": self.length,
            "INP_MAND": self.mandatory,
            "FLD_FMT": self.format,
            "FLD_MASK": self.mask,
            "COM_BLK": self.read_only,
            "FLD_DESC": self.description,
            "PKY_TBL": "",
            "REC_CUST": False,
        }


@dataclass(frozen=True)
class TableDef:
    name: str
    fields: dict[str, FieldDef]
    key: str | None
    """The key field (assumptions.TABLE_KEYS); None: rows in insertion order, no lastKey."""

    def field(self, name: str) -> FieldDef | None:
        return self.fields.get(name.upper())


def _from_row(table: str, row: assumptions.FieldRow) -> FieldDef:
    name, type_, length, flags, description = row
    return FieldDef(
        table=table,
        name=name,
        type=type_,
        length=length,
        mandatory="M" in flags,
        format="!" if "!" in flags else "",
        read_only="R" in flags,
        mask="",
        description=description,
    )


@cache
def published() -> dict[str, dict[str, FieldDef]]:
    """The published dictionaries, by table (published_fields.tsv; docs page for its source)."""
    text = resources.files(__package__).joinpath("published_fields.tsv").read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    result: dict[str, dict[str, FieldDef]] = {}
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        result.setdefault(row["table"], {})[row["field"]] = FieldDef(
            table=row["table"],
            name=row["field"],
            type=row["type"],
            length=int(row["length"]),
            mandatory=row["mandatory"] == "1",
            format=row["format"],
            read_only=row["read_only"] == "1",
            mask=row["mask"],
            description=row["description"],
        )
    return result


@cache
def tables() -> dict[str, TableDef]:
    """Every table the sandbox's business objects store, by name."""
    result: dict[str, TableDef] = {}
    for bo in assumptions.BUSINESS_OBJECTS:
        for name in (bo.table, *bo.details):
            if name in published():
                fields = list(published()[name].values())
            else:
                fields = [_from_row(name, row) for row in assumptions.ASSUMED_TABLES[name]]
            result[name] = TableDef(
                name=name,
                fields={f.name: f for f in sorted(fields, key=lambda f: f.name)},
                key=assumptions.TABLE_KEYS[name],
            )
    return result


def mandatory_fields(bo: assumptions.BusinessObjectDef, table: TableDef) -> list[FieldDef]:
    """The fields a row of `table` must have when written through `bo`: the table's own mandatory
    fields, and for the main table those its business object's overlay marks (ACCT_REC for AR1)."""
    mandatory = {f.name: f for f in table.fields.values() if f.mandatory}
    if bo.overlay is not None and table.name == bo.table:
        for name, rule in published()[bo.overlay].items():
            if rule.mandatory and name in table.fields:
                mandatory.setdefault(name, table.fields[name])
    return sorted(mandatory.values(), key=lambda f: f.name)


def dictionary_tables() -> list[str]:
    """The tables DCT_FLD and DCT_FILE describe: every stored table and every overlay."""
    overlays = [bo.overlay for bo in assumptions.BUSINESS_OBJECTS if bo.overlay is not None]
    return sorted({*tables(), *overlays})


def table_fields(name: str) -> dict[str, FieldDef]:
    """The fields of a stored table or of an overlay."""
    return tables()[name].fields if name in tables() else published()[name]


@cache
def business_objects() -> dict[str, assumptions.BusinessObjectDef]:
    return {bo.code: bo for bo in assumptions.BUSINESS_OBJECTS}


__all__ = [
    "DATE_TYPES",
    "FIELD_TYPES",
    "NUMBER_TYPES",
    "TEXT_TYPES",
    "FieldDef",
    "TableDef",
    "business_objects",
    "dictionary_tables",
    "mandatory_fields",
    "published",
    "table_fields",
    "tables",
]
