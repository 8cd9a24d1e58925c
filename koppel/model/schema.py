"""Record schemas: what fields a record of an application (or the canonical model) has.

Connectors describe their records with these so the datamapper can validate a mapping before it
runs (unknown field, value too long for the target, wrong type) without importing any connector.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    OBJECT = "object"
    LIST = "list"
    ANY = "any"


@dataclass(frozen=True)
class FieldSpec:
    """One field. `path` is dotted for nested objects (`billing_address.city`); `[]` marks a list."""

    path: str
    type: FieldType = FieldType.STRING
    max_length: int | None = None
    required: bool = False
    upper_case: bool = False
    description: str = ""


@dataclass(frozen=True)
class RecordSchema:
    """The fields of one kind of record, e.g. AccountView ARTICLE or the canonical Product.

    `open_paths` lists path prefixes under which any field may appear (custom fields, attributes,
    characteristics), so a mapping may use fields the schema cannot know in advance.
    """

    name: str
    fields: Mapping[str, FieldSpec]
    open_paths: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, name: str, specs: list[FieldSpec], open_paths: tuple[str, ...] = ()) -> RecordSchema:
        return cls(name=name, fields={spec.path: spec for spec in specs}, open_paths=open_paths)

    def get(self, path: str) -> FieldSpec | None:
        return self.fields.get(path)

    def knows(self, path: str) -> bool:
        if path in self.fields:
            return True
        return any(path == p or path.startswith(p + ".") for p in self.open_paths)

    def __iter__(self) -> Iterator[FieldSpec]:
        return iter(self.fields.values())


__all__ = ["FieldSpec", "FieldType", "RecordSchema"]
