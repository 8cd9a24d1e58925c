"""The sandbox's data dictionary: the published tables (fields.json) plus the assumed ones.

Every table, column, type, length and rule the sandbox enforces comes from here, so the API, the
storage and `/accountviewfields` cannot disagree.
"""

from __future__ import annotations

import json
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
    upper: bool
    read_only: bool
    mask: str
    description: str

    def dct_fld(self) -> dict[str, Any]:
        """The field as a DCT_FLD row of /accountviewfields."""
        return {
            "DBF_NAME": self.table,
            "FIELD_NAME": self.name,
            "FIELD_TYPE": self.type,
            "FIELD_LEN": self.length,
            "INP_MAND": self.mandatory,
            "FLD_FMT": "!" if self.upper else "",
            "FLD_MASK": self.mask,
            "COM_BLK": self.read_only,
            "FLD_DESC": self.description,
        }


@dataclass(frozen=True)
class TableDef:
    name: str
    fields: dict[str, FieldDef]
    paging_key: str
    upsert_key: str

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
        upper="!" in flags,
        read_only="R" in flags,
        mask="",
        description=description,
    )


def _published() -> dict[str, list[FieldDef]]:
    text = resources.files(__package__).joinpath("fields.json").read_text(encoding="utf-8")
    tables: dict[str, list[FieldDef]] = {}
    for row in json.loads(text)["DCT_FLD"]:
        tables.setdefault(row["DBF_NAME"], []).append(
            FieldDef(
                table=row["DBF_NAME"],
                name=row["FIELD_NAME"],
                type=row["FIELD_TYPE"],
                length=row["FIELD_LEN"],
                mandatory=row["INP_MAND"],
                upper=row["FLD_FMT"] == "!",
                read_only=row["COM_BLK"],
                mask=row["FLD_MASK"],
                description=row["FLD_DESC"],
            )
        )
    return tables


@cache
def tables() -> dict[str, TableDef]:
    """Every table the sandbox's business objects use, by name."""
    published = _published()
    result: dict[str, TableDef] = {}
    for bo in assumptions.BUSINESS_OBJECTS:
        for name in (bo.table, *bo.details):
            if name in published:
                fields = list(published[name])
            else:
                rows = assumptions.ASSUMED_TABLES[name] + assumptions.AUDIT_FIELDS
                fields = [_from_row(name, row) for row in rows]
            paging_key = assumptions.PAGING_KEYS.get(name, assumptions.DEFAULT_PAGING_KEY)
            if paging_key == "REC_ID" and not any(f.name == "REC_ID" for f in fields):
                fields.insert(0, _from_row(name, assumptions.REC_ID_FIELD))
            result[name] = TableDef(
                name=name,
                fields={f.name: f for f in sorted(fields, key=lambda f: f.name)},
                paging_key=paging_key,
                upsert_key=assumptions.UPSERT_KEYS.get(name, "REC_ID"),
            )
    return result


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
    "tables",
]
