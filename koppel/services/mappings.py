"""A flow's mapping, up front: its two stages as a file makes them, checked against both
connectors' schemas the way the flow checks them when it runs; one record previewed through them;
and the stored versions, one of which can be made current again.

Inspecting reads a loaded integration file and does not apply it: the mapping is the connectors'
default with the file's overrides merged on. No API call is made, except to read a sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from koppel.config import FlowConfig, IntegrationConfig
from koppel.connectors.base import Record
from koppel.connectors.registry import build_connector
from koppel.flows.mappings import (
    ATTACHED_RECORDS,
    CANONICAL_MODELS,
    RESOLVED,
    UPDATE_ONLY,
    Side,
    application_entity,
    attached_schema,
    canonical_schema,
    effective_spec,
)
from koppel.flows.runtime import stored_connector
from koppel.mapping import (
    InvalidMappingError,
    MappingIssue,
    MappingSpec,
    Severity,
    compile_mapping,
    preview,
    validate,
)
from koppel.mapping.preview import Operation, Preview
from koppel.model.schema import RecordSchema
from koppel.services.errors import InvalidRequest, NotFound
from koppel.services.setup import integration_of_file
from koppel.store import Flow, Store

SIDES: tuple[Side, ...] = ("get", "send")
"""get: source -> canonical; send: canonical -> target."""


@dataclass(frozen=True)
class FlowMappingView:
    """A flow's two mapping stages as the file makes them, with what validation says of each."""

    name: str
    entity: str
    applications: dict[str, str]
    """side -> the application it reads (get) or writes (send)."""
    specs: dict[str, MappingSpec]
    """side -> the effective mapping; a side is missing when its override does not parse."""
    schemas: dict[str, tuple[RecordSchema, RecordSchema]]
    """side -> (what it reads, what it writes)."""
    issues: dict[str, list[MappingIssue]]
    tables: dict[str, dict[str, Any]]

    def has_errors(self, sides: Sequence[str] = SIDES) -> bool:
        return any(i.severity is Severity.ERROR for side in sides for i in self.issues[side])


@dataclass(frozen=True)
class MappingPreview:
    preview: Preview
    """The record at each stage, with the warnings; `error` when a stage failed."""
    resolved: tuple[str, ...]
    """Target fields the flow looks up in the target during a run: empty in a preview."""


@dataclass(frozen=True)
class MappingVersionView:
    version: int
    current: bool
    created_at: datetime
    note: str
    overrides: dict[str, tuple[str, ...]]
    """side -> the fields it overrides (`-NAME`: removed, `tables`); no side: the defaults."""
    mapping: dict[str, Any]


@dataclass(frozen=True)
class RestoredMapping:
    flow: str
    restored: int
    """The version that was asked for."""
    version: int
    """The new current version, with the restored one's content."""
    mapping: dict[str, Any]


def _flow_config(config: IntegrationConfig, file: Path, name: str) -> FlowConfig:
    if name not in config.flows:
        raise NotFound(
            f"{file}: no flow named {name!r}; its flows: {', '.join(config.flows) or 'none'}"
        )
    return config.flows[name]


async def _schemas(
    config: IntegrationConfig, flow: FlowConfig
) -> dict[str, tuple[RecordSchema, RecordSchema]]:
    """Both stages' schemas, from the connectors (built from the file; no API call is made)."""
    source_connection = config.connections[flow.source]
    target_connection = config.connections[flow.target]
    source_app, target_app = source_connection.application, target_connection.application
    source = build_connector(source_app, source_connection.base_url, source_connection.credentials)
    target = build_connector(target_app, target_connection.base_url, target_connection.credentials)
    try:
        attached = ATTACHED_RECORDS.get((source_app, flow.entity), {})
        source_schema = attached_schema(
            source.entities[application_entity(source_app, flow.entity)].schema,
            {name: source.entities[entity].schema for name, entity in attached.items()},
        )
        target_schema = target.entities[application_entity(target_app, flow.entity)].schema
    finally:
        await source.aclose()
        await target.aclose()
    if (target_app, flow.entity) in UPDATE_ONLY:
        # Such flows only update records that exist: the target's create-only needs do not apply.
        target_schema = RecordSchema(
            target_schema.name,
            {path: replace(spec, required=False) for path, spec in target_schema.fields.items()},
            target_schema.open_paths,
        )
    return {
        "get": (source_schema, canonical_schema(flow.entity)),
        "send": (canonical_schema(flow.entity, with_resolved=True), target_schema),
    }


async def inspect_file_mapping(
    config: IntegrationConfig, file: Path, flow_name: str
) -> FlowMappingView:
    """The flow's effective mappings as the (loaded) file makes them, and their issues."""
    flow = _flow_config(config, file, flow_name)
    schemas = await _schemas(config, flow)
    settings = {**config.settings, **flow.settings}
    tables: dict[str, dict[str, Any]] = {
        name: dict(table) for name, table in (settings.get("tables") or {}).items()
    }
    applications = {
        "get": config.connections[flow.source].application.value,
        "send": config.connections[flow.target].application.value,
    }
    specs: dict[str, MappingSpec] = {}
    issues: dict[str, list[MappingIssue]] = {}
    unknown = sorted(set(flow.mapping) - set(SIDES))
    for side in SIDES:
        issues[side] = []
        if side == "get" and unknown:
            issues[side].append(
                MappingIssue(
                    Severity.ERROR,
                    "mapping",
                    f"unknown section(s) {', '.join(unknown)}; use 'get' and/or 'send'",
                )
            )
        try:
            spec = effective_spec(applications[side], flow.entity, side, flow.mapping.get(side))
        except InvalidMappingError as error:
            issues[side].extend(error.issues)
            continue
        specs[side] = spec
        source_schema, target_schema = schemas[side]
        issues[side].extend(validate(spec, source_schema, target_schema, tables=tables))
    return FlowMappingView(flow_name, flow.entity, applications, specs, schemas, issues, tables)


def preview_record(
    view: FlowMappingView, record: Mapping[str, Any], *, operation: Operation = "create"
) -> MappingPreview:
    """One source record (in the source API's shape) through both stages; nothing is written."""
    if view.has_errors():
        raise InvalidRequest(f"flow {view.name}: fix the mapping errors first")
    compiled = {
        side: compile_mapping(
            view.specs[side], target_schema=view.schemas[side][1], tables=view.tables
        )
        for side in SIDES
    }
    result = preview(
        compiled["get"],
        compiled["send"],
        dict(record),
        canonical_model=CANONICAL_MODELS[view.entity],
        operation=operation,
    )
    resolved = tuple(
        rule.target
        for rule in view.specs["send"].fields
        if rule.source and rule.source.startswith(f"{RESOLVED}.")
    )
    return MappingPreview(result, resolved)


async def sample_record(
    store: Store,
    config: IntegrationConfig,
    file: Path,
    flow_name: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """The first record of the flow's source, read through the stored (applied) connection."""
    flow = _flow_config(config, file, flow_name)
    integration = integration_of_file(store, config, file)
    connection = store.connections.get_by_name(integration.tenant_id, flow.source)
    if connection is None:
        raise NotFound(
            f"connection {flow.source} is not set up; apply the file: koppel config apply"
        )
    source = stored_connector(store, connection, transport=transport)
    entity = application_entity(connection.application, flow.entity)
    try:
        pages = source.read(entity, page_size=1)
        try:
            first: list[Record] = await anext(pages, [])
        finally:
            await pages.aclose()
    finally:
        await source.aclose()
    if not first:
        raise NotFound(
            f"{flow.source} has no {entity} to sample; give a record with --record FILE.json"
        )
    return dict(first[0])


def _overrides(mapping: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    overrides: dict[str, tuple[str, ...]] = {}
    for side in SIDES:
        section = mapping.get(side) or {}
        names = [*section.get("fields", {}), *(f"-{n}" for n in section.get("remove", []))]
        if section.get("tables"):
            names.append("tables")
        if names:
            overrides[side] = tuple(names)
    return overrides


def mapping_versions(store: Store, flow: Flow) -> tuple[MappingVersionView, ...]:
    """The flow's stored mapping versions, oldest first."""
    return tuple(
        MappingVersionView(
            version=item.version,
            current=item.version == flow.mapping_version,
            created_at=item.created_at,
            note=item.note,
            overrides=_overrides(item.mapping),
            mapping=item.mapping,
        )
        for item in store.flows.mapping_versions(flow.id)
    )


def restore_mapping(store: Store, flow: Flow, version: int, *, actor: str) -> RestoredMapping:
    """Make an earlier version current again, as a new version (audited with `actor`).

    The integration file keeps its own mapping: applying it again makes the file's current.
    """
    with store.transaction() as tx:
        new_version = tx.flows.restore_mapping(flow.id, version)
        restored = next(
            v.mapping for v in tx.flows.mapping_versions(flow.id) if v.version == new_version
        )
        integration = tx.integrations.get(flow.integration_id)
        assert integration is not None  # the flow's, in the same scope
        tx.audit.record(
            integration.tenant_id,
            actor=actor,
            action="flow.mapping_restored",
            subject=f"flow:{integration.name}/{flow.name}",
            detail={"restored": version, "version": new_version},
        )
    return RestoredMapping(flow.name, version, new_version, restored)


__all__ = [
    "SIDES",
    "FlowMappingView",
    "MappingPreview",
    "MappingVersionView",
    "RestoredMapping",
    "inspect_file_mapping",
    "mapping_versions",
    "preview_record",
    "restore_mapping",
    "sample_record",
]
