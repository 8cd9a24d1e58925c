"""A flow's two mappings: the connectors' defaults (data files) with the flow's overrides merged on.

Default mappings live beside each connector as `mappings/<entity>.get.yaml` (the application's
record -> canonical) and `mappings/<entity>.send.yaml` (canonical -> the application's record),
where `<entity>` is the canonical entity (products, categories, customers, orders, stock).
A flow's stored mapping overrides them: `{"get": {...}, "send": {...}}`, each in the mapping format
of docs/mapping.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel

from koppel.errors import ErrorCategory, KoppelError
from koppel.mapping import (
    CompiledMapping,
    MappingIssue,
    MappingSpec,
    Severity,
    compile_mapping,
    merge_mappings,
    parse_mapping,
    validate,
)
from koppel.model import Category, Customer, Order, Product, StockLevel
from koppel.model.schema import FieldSpec, FieldType, RecordSchema, schema_from_model

Side = Literal["get", "send"]

CANONICAL_MODELS: dict[str, type[BaseModel]] = {
    "products": Product,
    "categories": Category,
    "customers": Customer,
    "orders": Order,
    "stock": StockLevel,
}

RESOLVED = "resolved"
"""Send-side mappings may read `resolved.*`: values the flow looked up in the target (e.g. the
article-group code of a product's category), beside the canonical record's own fields."""

# The connector entity that holds each canonical entity, per application.
APPLICATION_ENTITIES: dict[str, dict[str, str]] = {
    "partspim": {
        "products": "products",
        "categories": "categories",
        "customers": "relations",
        "orders": "orders",
        "stock": "stock",
    },
    "accountview": {
        "products": "articles",
        "categories": "article_groups",
        "customers": "debtors",
        "orders": "sales_orders",
        "stock": "articles",
    },
}


ATTACHED_RECORDS: dict[tuple[str, str], dict[str, str]] = {
    ("accountview", "orders"): {"debtor": "debtors", "delivery_address": "delivery_addresses"},
}
"""Records a flow looks up and attaches to each source record before its get mapping runs:
(source application, canonical entity) -> {name: the source connector's entity}. A mapping reads
them like the record's own fields, e.g. `debtor.MAIL_BUS` of an AccountView order's debtor."""


def attached_schema(schema: RecordSchema, attached: Mapping[str, RecordSchema]) -> RecordSchema:
    """The source schema with each attached record's fields under its name (`debtor.CITY`)."""
    fields = dict(schema.fields)
    open_paths = list(schema.open_paths)
    for name, other in attached.items():
        fields[name] = FieldSpec(name, FieldType.OBJECT, description=f"the attached {other.name}")
        for spec in other:
            fields[f"{name}.{spec.path}"] = replace(spec, path=f"{name}.{spec.path}")
        open_paths += [f"{name}.{path}" for path in other.open_paths]
    return RecordSchema(schema.name, fields, tuple(open_paths))


UPDATE_ONLY: set[tuple[str, str]] = {("accountview", "stock")}
"""(target application, canonical entity) whose flows only update records that exist (stock is
written to existing articles), so fields the target requires on create need no mapping."""


def _updates_only(schema: RecordSchema) -> RecordSchema:
    fields = {path: replace(spec, required=False) for path, spec in schema.fields.items()}
    return RecordSchema(schema.name, fields, schema.open_paths)


class FlowSetupError(KoppelError):
    """The flow cannot run as configured; the message says what to change."""

    category = ErrorCategory.CONFIGURATION


def application_entity(application: str, entity: str) -> str:
    try:
        return APPLICATION_ENTITIES[application][entity]
    except KeyError:
        raise FlowSetupError(f"{application} has no {entity} to sync") from None


@cache
def default_mapping(application: str, entity: str, side: Side) -> MappingSpec:
    """Parsed once per process: a run opens its flow's mappings several times (the check before
    it, each phase, the categories a products flow brings), and parsing the YAML each time was a
    quarter of an idle sync's function calls. The spec is frozen; merges copy what they change."""
    package = f"koppel.connectors.{application}"
    resource = resources.files(package).joinpath("mappings", f"{entity}.{side}.yaml")
    if not resource.is_file():
        raise FlowSetupError(f"{application} ships no {side}-side mapping for {entity}")
    return parse_mapping(resource.read_text(encoding="utf-8"))


def canonical_schema(entity: str, *, with_resolved: bool = False) -> RecordSchema:
    schema = schema_from_model(CANONICAL_MODELS[entity], name=f"canonical {entity}")
    if not with_resolved:
        return schema
    return RecordSchema(schema.name, schema.fields, (*schema.open_paths, RESOLVED))


@dataclass(frozen=True)
class FlowMappings:
    get_spec: MappingSpec
    send_spec: MappingSpec
    get: CompiledMapping
    send: CompiledMapping


def effective_spec(application: str, entity: str, side: Side, override: Any) -> MappingSpec:
    spec = default_mapping(application, entity, side)
    if override:
        spec = merge_mappings(spec, parse_mapping(override))
    return spec


def flow_mappings(
    *,
    entity: str,
    source_application: str,
    source_schema: RecordSchema,
    target_application: str,
    target_schema: RecordSchema,
    overrides: Mapping[str, Any],
    tables: Mapping[str, Mapping[str, Any]] | None = None,
) -> FlowMappings:
    """Validate and compile both stages; every error found is in the one FlowSetupError."""
    unknown = set(overrides) - {"get", "send"}
    if unknown:
        raise FlowSetupError(
            f"mapping: unknown section(s) {', '.join(sorted(unknown))}; use 'get' and/or 'send'"
        )
    get_spec = effective_spec(source_application, entity, "get", overrides.get("get"))
    send_spec = effective_spec(target_application, entity, "send", overrides.get("send"))
    if (target_application, entity) in UPDATE_ONLY:
        target_schema = _updates_only(target_schema)
    canonical = canonical_schema(entity)
    issues = [
        ("get", issue)
        for issue in validate(get_spec, source_schema, canonical, tables=dict(tables or {}))
    ]
    issues += [
        ("send", issue)
        for issue in validate(
            send_spec,
            canonical_schema(entity, with_resolved=True),
            target_schema,
            tables=dict(tables or {}),
        )
    ]
    errors = [(side, i) for side, i in issues if i.severity is Severity.ERROR]
    if errors:
        raise FlowSetupError(describe_issues(errors))
    plain_tables = {k: dict(v) for k, v in (tables or {}).items()}
    return FlowMappings(
        get_spec,
        send_spec,
        compile_mapping(get_spec, target_schema=canonical, tables=plain_tables),
        compile_mapping(send_spec, target_schema=target_schema, tables=plain_tables),
    )


def describe_issues(issues: list[tuple[str, MappingIssue]]) -> str:
    lines = [f"mapping.{side}: {issue.field}: {issue.message}" for side, issue in issues]
    return "the flow's mapping has errors:\n" + "\n".join(lines)


__all__ = [
    "APPLICATION_ENTITIES",
    "ATTACHED_RECORDS",
    "CANONICAL_MODELS",
    "RESOLVED",
    "UPDATE_ONLY",
    "FlowMappings",
    "FlowSetupError",
    "application_entity",
    "attached_schema",
    "canonical_schema",
    "default_mapping",
    "effective_spec",
    "flow_mappings",
]
