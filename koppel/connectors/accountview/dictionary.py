"""The AccountView data dictionary the connector validates against and builds schemas from.

dictionary.json holds DCT_FLD rows of the tables the connector uses: CONTACT, VAT and ACCT_REC as
published, the others as assumed in the sandbox's assumptions module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

from koppel.model.schema import FieldSpec, FieldType, RecordSchema

_FIELD_TYPES = {
    "C": FieldType.STRING,
    "M": FieldType.STRING,
    "N": FieldType.DECIMAL,
    "Y": FieldType.DECIMAL,
    "B": FieldType.DECIMAL,
    "I": FieldType.INTEGER,
    "L": FieldType.BOOLEAN,
    "D": FieldType.DATE,
    "T": FieldType.DATETIME,
}


@dataclass(frozen=True)
class AVField:
    name: str
    type: str
    length: int
    mandatory: bool
    upper: bool
    read_only: bool
    description: str

    @property
    def filter_type(self) -> str:
        """FilterValueType for this field: C, N, D or T."""
        if self.type in "NYBI":
            return "N"
        if self.type in "DT":
            return self.type
        return "C"


@cache
def table_fields() -> dict[str, dict[str, AVField]]:
    text = resources.files(__package__).joinpath("dictionary.json").read_text(encoding="utf-8")
    result: dict[str, dict[str, AVField]] = {}
    for row in json.loads(text)["DCT_FLD"]:
        result.setdefault(row["DBF_NAME"], {})[row["FIELD_NAME"]] = AVField(
            name=row["FIELD_NAME"],
            type=row["FIELD_TYPE"],
            length=row["FIELD_LEN"],
            mandatory=row["INP_MAND"],
            upper=row["FLD_FMT"] == "!",
            read_only=row["COM_BLK"],
            description=row["FLD_DESC"],
        )
    return result


def object_fields(table: str, overlay: str | None = None) -> dict[str, AVField]:
    """A table's fields as a business object writes them: an overlay table's dictionary (ACCT_REC
    for AR1) makes the table's fields it names mandatory when it marks them so."""
    fields = dict(table_fields()[table])
    for name, rule in table_fields()[overlay].items() if overlay is not None else ():
        if rule.mandatory and name in fields:
            fields[name] = replace(fields[name], mandatory=True)
    return fields


def record_schema(
    table: str, fields: Mapping[str, AVField], *, details: tuple[str, ...] = ()
) -> RecordSchema:
    """A table's fields as a RecordSchema; detail rows appear as a list under the detail's name."""
    specs = [_spec(field.name, field) for field in fields.values()]
    for detail in details:
        specs.append(FieldSpec(path=detail, type=FieldType.LIST, description="lines"))
        specs += [_spec(f"{detail}[].{f.name}", f) for f in table_fields()[detail].values()]
    return RecordSchema.of(table, specs)


def _spec(path: str, field: AVField) -> FieldSpec:
    return FieldSpec(
        path=path,
        type=_FIELD_TYPES[field.type],
        max_length=field.length if field.type == "C" else None,
        required=field.mandatory,
        upper_case=field.upper,
        description=field.description + (" (read-only)" if field.read_only else ""),
    )


__all__ = ["AVField", "object_fields", "record_schema", "table_fields"]
