"""A flow's mapping, up front: its two stages as a file makes them, checked against both
connectors' schemas the way the flow checks them when it runs; one record previewed through them;
and the stored versions, one of which can be made current again.

Inspecting reads a loaded integration file and does not apply it: the mapping is the connectors'
default with the file's overrides merged on. No API call is made, except to read a sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from koppel.config import IntegrationConfig
from koppel.connectors.base import Record
from koppel.flows.mappings import CANONICAL_MODELS, RESOLVED, application_entity
from koppel.flows.runtime import stored_connector
from koppel.mapping import compile_mapping, preview
from koppel.mapping.preview import Operation, Preview
from koppel.services.checks import SIDES, FlowMappingView, flow_config
from koppel.services.errors import InvalidRequest, NotFound
from koppel.services.setup import integration_of_file
from koppel.store import Flow, Store


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
    flow = flow_config(config, file, flow_name)
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
    "MappingPreview",
    "MappingVersionView",
    "RestoredMapping",
    "mapping_versions",
    "preview_record",
    "restore_mapping",
    "sample_record",
]
