"""`koppel mapping show | validate | preview | versions | restore`: a flow's mapping, up front.

show, validate and preview read the integration file (they do not apply it): the mapping shown is
the connectors' default with the file's overrides merged on, checked against the connectors'
schemas the way the flow checks it when it runs.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from koppel.commands.common import (
    ExitCode,
    console,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
    pick_flows,
    pick_integration,
    plain,
    stored_connector,
    when,
)
from koppel.config import FlowConfig, IntegrationConfig, load_config
from koppel.connectors.base import Record
from koppel.connectors.registry import build_connector
from koppel.flows.mappings import (
    ATTACHED_RECORDS,
    CANONICAL_MODELS,
    RESOLVED,
    UPDATE_ONLY,
    application_entity,
    attached_schema,
    canonical_schema,
    effective_spec,
)
from koppel.mapping import (
    InvalidMappingError,
    MappingIssue,
    MappingSpec,
    Severity,
    compile_mapping,
    preview,
    render_issues,
    render_mapping,
    render_preview,
    validate,
)
from koppel.model.schema import RecordSchema

mapping_app = typer.Typer(
    no_args_is_help=True,
    help="Show, check and try a flow's mapping; list and restore its versions.",
)


class SideChoice(StrEnum):
    get = "get"
    send = "send"


class OperationChoice(StrEnum):
    create = "create"
    update = "update"


ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the integration file (YAML, docs/config.md)")
]
FlowOption = Annotated[str, typer.Option("--flow", "-f", help="the flow's name in the file")]
SideOption = Annotated[
    SideChoice | None,
    typer.Option(help="get: source -> canonical; send: canonical -> target (default: both)"),
]


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

    def has_errors(self, sides: list[str]) -> bool:
        return any(i.severity is Severity.ERROR for side in sides for i in self.issues[side])


def _flow_config(config: IntegrationConfig, path: Path, name: str) -> FlowConfig:
    if name not in config.flows:
        fail(f"{path}: no flow named {name!r}; its flows: {', '.join(config.flows) or 'none'}")
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


def inspect_flow_mapping(path: Path, flow_name: str) -> FlowMappingView:
    """Load the file and build the flow's effective mappings and their validation issues."""
    config = load_config(path)
    flow = _flow_config(config, path, flow_name)
    schemas = asyncio.run(_schemas(config, flow))
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
    unknown = sorted(set(flow.mapping) - {"get", "send"})
    for side in ("get", "send"):
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


def _sides(side: SideChoice | None) -> list[str]:
    return [side.value] if side else ["get", "send"]


def _stage_title(view: FlowMappingView, side: str) -> str:
    if side == "get":
        return f"get side: {view.applications['get']} {view.entity} -> canonical {view.entity}"
    return f"send side: canonical {view.entity} -> {view.applications['send']} {view.entity}"


@mapping_app.command()
@friendly_errors
def show(config: ConfigOption, flow: FlowOption, side: SideOption = None) -> None:
    """The effective mapping: the connector's default with the file's overrides merged on."""
    view = inspect_flow_mapping(config, flow)
    for name in _sides(side):
        console.print(f"[bold]{_stage_title(view, name)}[/]")
        if name in view.specs:
            console.print(render_mapping(view.specs[name]))
        else:
            console.print(render_issues(view.issues[name]))
    if view.has_errors(_sides(side)):
        raise typer.Exit(int(ExitCode.FAILED))


@mapping_app.command("validate")
@friendly_errors
def validate_command(config: ConfigOption, flow: FlowOption, side: SideOption = None) -> None:
    """Check the mapping against both connectors' schemas; exit 1 when it has errors."""
    view = inspect_flow_mapping(config, flow)
    for name in _sides(side):
        console.print(f"[bold]{_stage_title(view, name)}[/]")
        console.print(render_issues(view.issues[name]))
    if view.has_errors(_sides(side)):
        fail(f"flow {flow}: the mapping has errors; fix them in {config}", ExitCode.FAILED)


async def _sample(config_path: Path, flow_name: str) -> dict[str, Any]:
    """The first record of the flow's source, read through the stored connection."""
    config = load_config(config_path)
    flow = _flow_config(config, config_path, flow_name)
    settings = load_settings()
    with opened_store(settings) as store:
        integration = pick_integration(store, config_path, None)
        connection = store.connections.get_by_name(integration.tenant_id, flow.source)
        if connection is None:
            fail(f"connection {flow.source} is not set up; apply the file: koppel config apply")
        source = stored_connector(store, connection)
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
        fail(f"{flow.source} has no {entity} to sample; give a record with --record FILE.json")
    return dict(first[0])


def _record_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: file not found")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(f"{path}: not a JSON file ({type(error).__name__}: {error})")
    if not isinstance(data, dict):
        fail(f"{path}: must hold one record: a JSON object, as the source's API returns it")
    return data


@mapping_app.command("preview")
@friendly_errors
def preview_command(
    config: ConfigOption,
    flow: FlowOption,
    record: Annotated[
        Path | None, typer.Option(help="a source record as JSON (the source API's shape)")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="read the first record from the source connection")
    ] = False,
    operation: Annotated[
        OperationChoice, typer.Option(help="what the target gets on create or on update")
    ] = OperationChoice.create,
) -> None:
    """One record through both stages, source -> canonical -> target, with warnings.

    Nothing is written. --sample reads through the stored connection, so apply the file first.
    """
    if (record is None) == (not sample):
        fail("give exactly one of --record FILE.json and --sample")
    view = inspect_flow_mapping(config, flow)
    if view.has_errors(["get", "send"]):
        for side in ("get", "send"):
            console.print(f"[bold]{_stage_title(view, side)}[/]")
            console.print(render_issues(view.issues[side]))
        fail(f"flow {flow}: fix the mapping errors in {config} first", ExitCode.FAILED)
    source_record = (
        _record_file(record) if record is not None else asyncio.run(_sample(config, flow))
    )
    compiled = {
        side: compile_mapping(
            view.specs[side], target_schema=view.schemas[side][1], tables=view.tables
        )
        for side in ("get", "send")
    }
    result = preview(
        compiled["get"],
        compiled["send"],
        source_record,
        canonical_model=CANONICAL_MODELS[view.entity],
        operation=operation.value,
    )
    console.print(render_preview(result))
    resolved = [
        rule.target
        for rule in view.specs["send"].fields
        if rule.source and rule.source.startswith(f"{RESOLVED}.")
    ]
    if resolved:
        console.print(
            f"note: {', '.join(resolved)} come from values the flow looks up in the target "
            "during a run; a preview leaves them empty",
            markup=False,
        )
    if result.error is not None:
        raise typer.Exit(int(ExitCode.FAILED))


def _overridden(mapping: dict[str, Any]) -> str:
    parts = []
    for side in ("get", "send"):
        section = mapping.get(side) or {}
        names = [*section.get("fields", {}), *(f"-{n}" for n in section.get("remove", []))]
        if section.get("tables"):
            names.append("tables")
        if names:
            parts.append(f"{side}: {', '.join(names)}")
    return "; ".join(parts) or "defaults"


FileOrIntegration = Annotated[
    Path | None, typer.Option("--config", "-c", help="the integration file naming the integration")
]
IntegrationOption = Annotated[
    str | None, typer.Option(help="TENANT/NAME, when the store holds several integrations")
]


@mapping_app.command()
@friendly_errors
def versions(
    flow: FlowOption, config: FileOrIntegration = None, integration: IntegrationOption = None
) -> None:
    """The flow's stored mapping versions, oldest first; the current one is marked."""
    settings = load_settings()
    with opened_store(settings) as store:
        chosen = pick_integration(store, config, integration)
        [found] = pick_flows(store, chosen, [flow])
        history = store.flows.mapping_versions(found.id)
    table = Table(title=f"Mapping versions of flow {flow} (times in UTC)")
    table.add_column("version", justify="right")
    table.add_column("created")
    table.add_column("note")
    table.add_column("overrides", overflow="fold")
    for item in history:
        current = " (current)" if item.version == found.mapping_version else ""
        table.add_row(
            *plain(
                f"v{item.version}{current}",
                when(item.created_at),
                item.note,
                _overridden(item.mapping),
            )
        )
    console.print(table)


@mapping_app.command()
@friendly_errors
def restore(
    version: Annotated[int, typer.Argument(help="the version to make current again")],
    flow: FlowOption,
    config: FileOrIntegration = None,
    integration: IntegrationOption = None,
) -> None:
    """Make an earlier mapping version current again (as a new version)."""
    settings = load_settings()
    with opened_store(settings) as store:
        chosen = pick_integration(store, config, integration)
        [found] = pick_flows(store, chosen, [flow])
        new_version = store.flows.restore_mapping(found.id, version)
        restored = next(
            v.mapping for v in store.flows.mapping_versions(found.id) if v.version == new_version
        )
    console.print(
        f"flow {flow}: mapping v{version} restored as v{new_version}; the next runs use it.\n"
        "The integration file keeps its own mapping: applying it again (sync, config apply) "
        "makes the file's mapping current. To keep this one, put it in the file:",
        markup=False,
    )
    console.print(
        yaml.safe_dump({"mapping": restored}, sort_keys=False, allow_unicode=True),
        markup=False,
        highlight=False,
    )


__all__ = ["FlowMappingView", "inspect_flow_mapping", "mapping_app"]
