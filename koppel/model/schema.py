"""Record schemas: what fields a record of an application (or the canonical model) has.

Connectors describe their records with these so the datamapper can validate a mapping before it
runs (unknown field, value too long for the target, wrong type) without importing any connector.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from pydantic import BaseModel


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
    """A field. `path` is dotted for nested objects (`billing_address.city`); `[]` marks a list."""

    path: str
    type: FieldType = FieldType.STRING
    max_length: int | None = None
    required: bool = False
    upper_case: bool = False
    description: str = ""
    key: bool = False
    """The target finds its records by this field (SKU, ART_CODE): a value cut to fit could make
    two source records one, so no hint ever suggests truncating it."""


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
    def of(
        cls, name: str, specs: list[FieldSpec], open_paths: tuple[str, ...] = ()
    ) -> RecordSchema:
        return cls(name=name, fields={spec.path: spec for spec in specs}, open_paths=open_paths)

    def get(self, path: str) -> FieldSpec | None:
        return self.fields.get(path)

    def with_key(self, path: str) -> RecordSchema:
        """The schema with `path` marked as the field records are found by."""
        spec = self.fields.get(path)
        if spec is None:
            return self
        return RecordSchema(
            self.name, {**self.fields, path: replace(spec, key=True)}, self.open_paths
        )

    def knows(self, path: str) -> bool:
        if path in self.fields:
            return True
        return any(path == p or path.startswith(p + ".") for p in self.open_paths)

    def __iter__(self) -> Iterator[FieldSpec]:
        return iter(self.fields.values())


def schema_from_model(model: type[BaseModel], name: str | None = None) -> RecordSchema:
    """The schema of a pydantic model (a canonical model), so mappings to and from it validate.

    Nested models become dotted paths (`billing_address.city`), lists of models `lines[].sku`,
    and dict fields (attributes, custom fields) open paths that accept any key.
    """
    specs: list[FieldSpec] = []
    open_paths: list[str] = []
    _collect_model(model, "", specs, open_paths)
    return RecordSchema.of(name or model.__name__, specs, tuple(open_paths))


def _collect_model(
    model: type[BaseModel], prefix: str, specs: list[FieldSpec], open_paths: list[str]
) -> None:
    for field_name, info in model.model_fields.items():
        path = prefix + field_name
        annotation, optional = _unwrap_optional(info.annotation)
        required = info.is_required() and not optional
        description = info.description or ""
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            specs.append(FieldSpec(path, FieldType.OBJECT, required=required))
            _collect_model(annotation, path + ".", specs, open_paths)
        elif origin is list:
            (item,) = typing.get_args(annotation) or (Any,)
            specs.append(FieldSpec(path, FieldType.LIST, required=required))
            if isinstance(item, type) and issubclass(item, BaseModel):
                _collect_model(item, path + "[].", specs, open_paths)
        elif origin is dict:
            specs.append(FieldSpec(path, FieldType.OBJECT, required=required))
            open_paths.append(path)
        else:
            kind = _SCALARS.get(annotation, FieldType.ANY)
            if isinstance(annotation, type) and issubclass(annotation, Enum):
                kind = FieldType.STRING
            specs.append(FieldSpec(path, kind, required=required, description=description))


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            member = members[0]  # `Number | None`: the Annotated type's own type
            if typing.get_origin(member) is typing.Annotated:
                member = typing.get_args(member)[0]
            return member, True
        return Any, True
    return annotation, False


_SCALARS: dict[Any, FieldType] = {
    str: FieldType.STRING,
    int: FieldType.INTEGER,
    Decimal: FieldType.DECIMAL,
    float: FieldType.DECIMAL,
    bool: FieldType.BOOLEAN,
    dt.date: FieldType.DATE,
    dt.datetime: FieldType.DATETIME,
}


__all__ = ["FieldSpec", "FieldType", "RecordSchema", "schema_from_model"]
