"""Checking an integration file before it is applied: what a run would find wrong, found
up front and all at once, so a file with a problem is refused (exit 2 at the command line, a form
error on the web) instead of failing its runs later.

`inspect_file_mapping` makes a flow's two mapping stages as the file makes them (the connectors'
defaults with the file's overrides merged on) and validates them against both connectors'
schemas, as a run compiles them; `check_config` does that for every flow of the file. Nothing is
applied and no API call is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from koppel.config import ConfigError, FlowConfig, IntegrationConfig
from koppel.config.loader import unknown_key
from koppel.connectors.registry import check_credentials, entity_specs
from koppel.errors import KoppelError
from koppel.flows.mappings import (
    ATTACHED_RECORDS,
    UPDATE_ONLY,
    Side,
    application_entity,
    attached_schema,
    canonical_schema,
    effective_spec,
)
from koppel.flows.registry import flow_type
from koppel.flows.settings import flow_settings, settings_model, shared_setting_names
from koppel.mapping import (
    InvalidMappingError,
    MappingIssue,
    MappingSpec,
    Severity,
    parse_mapping,
    validate,
    written_fields,
)
from koppel.model.schema import RecordSchema
from koppel.services.errors import NotFound

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


def flow_config(config: IntegrationConfig, file: Path, name: str) -> FlowConfig:
    if name not in config.flows:
        raise NotFound(
            f"{file}: no flow named {name!r}; its flows: {', '.join(config.flows) or 'none'}"
        )
    return config.flows[name]


def mapping_schemas(
    source_app: str, target_app: str, entity: str
) -> dict[str, tuple[RecordSchema, RecordSchema]]:
    """Both stages' schemas, from the connectors' entities (no connector is built, no API call
    is made)."""
    source, target = entity_specs(source_app), entity_specs(target_app)
    attached = ATTACHED_RECORDS.get((source_app, entity), {})
    source_schema = attached_schema(
        source[application_entity(source_app, entity)].schema,
        {name: source[other].schema for name, other in attached.items()},
    )
    target_schema = target[application_entity(target_app, entity)].schema
    if (target_app, entity) in UPDATE_ONLY:
        # Such flows only update records that exist: the target's create-only needs do not apply.
        target_schema = RecordSchema(
            target_schema.name,
            {path: replace(spec, required=False) for path, spec in target_schema.fields.items()},
            target_schema.open_paths,
        )
    return {
        "get": (source_schema, canonical_schema(entity)),
        "send": (canonical_schema(entity, with_resolved=True), target_schema),
    }


def inspect_mapping(
    name: str,
    entity: str,
    applications: dict[str, str],
    overrides: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> FlowMappingView:
    """A flow's effective mappings (the connectors' defaults with `overrides` merged on) and
    their issues; `applications`: side -> application, `settings`: the flow's merged settings
    (for their lookup tables). An integration file's flow and a stored flow both come here."""
    schemas = mapping_schemas(applications["get"], applications["send"], entity)
    tables: dict[str, dict[str, Any]] = {
        table: dict(values) for table, values in (settings.get("tables") or {}).items()
    }
    specs: dict[str, MappingSpec] = {}
    issues: dict[str, list[MappingIssue]] = {}
    unknown = sorted(set(overrides) - set(SIDES))
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
        override = overrides.get(side)
        try:
            spec = effective_spec(applications[side], entity, side, override)
        except InvalidMappingError as error:
            issues[side].extend(error.issues)
            continue
        specs[side] = spec
        source_schema, target_schema = schemas[side]
        # Warnings only for what the override writes: the connector's default is its own concern.
        written = set(written_fields(parse_mapping(override).fields)) if override else set()
        issues[side].extend(
            issue
            for issue in validate(spec, source_schema, target_schema, tables=tables)
            if issue.severity is Severity.ERROR or issue.field in written
        )
    return FlowMappingView(name, entity, applications, specs, schemas, issues, tables)


def inspect_file_mapping(config: IntegrationConfig, file: Path, flow_name: str) -> FlowMappingView:
    """The flow's effective mappings as the (loaded) file makes them, and their issues;
    credentials that lack a field are named here, as a run would name them."""
    flow = flow_config(config, file, flow_name)
    for connection in (config.connections[flow.source], config.connections[flow.target]):
        check_credentials(connection.application, connection.base_url, connection.credentials)
    applications = {
        "get": config.connections[flow.source].application.value,
        "send": config.connections[flow.target].application.value,
    }
    settings = {**config.settings, **flow.settings}
    return inspect_mapping(flow_name, flow.entity, applications, flow.mapping, settings)


def _settings_problems(config: IntegrationConfig) -> list[tuple[str, str]]:
    """Unknown settings and wrong values: the integration's shared ones (each must be a setting
    of some flow type) and each flow's (against its type's model, with the shared ones)."""
    known = sorted(shared_setting_names())
    problems = [
        (f"settings.{key}", unknown_key(key, known, "setting"))
        for key in config.settings
        if key not in known
    ]
    for name, flow in config.flows.items():
        source = config.connections.get(flow.source)
        if source is None:
            continue
        model = settings_model(source.application, flow.entity)
        try:
            flow_settings(model, config.settings, flow.settings)
        except ValidationError as error:
            for detail in error.errors(include_input=False, include_url=False):
                loc = [str(part) for part in detail["loc"]]
                own = loc[0] in flow.settings
                where = f"flows.{name}.settings" if own else "settings"
                if detail["type"] == "extra_forbidden":
                    message = unknown_key(loc[0], sorted(model.model_fields), "setting")
                    if not own:
                        continue  # a shared setting of another flow type: said above if unknown
                else:
                    message = str(detail["msg"])
                problems.append((f"{where}.{'.'.join(loc)}", message))
    return list(dict.fromkeys(problems))


def check_config(config: IntegrationConfig, file: Path) -> None:
    """Every problem a run would find in the file, at once, as a ConfigError (file, path, what
    to fix): unknown or wrong settings, each flow's type and its mapping (parsed, merged and
    validated against both connectors' schemas). Connection options are typed in the file's
    own model, so the loader has refused those already."""
    problems = _settings_problems(config)
    for name, flow in config.flows.items():
        where = f"flows.{name}"
        source = config.connections.get(flow.source)
        if source is None or flow.target not in config.connections:
            continue  # the file's own rules have said so
        try:
            flow_type(source.application, flow.entity)
        except LookupError as error:
            problems.append((f"{where}.entity", str(error)))
            continue
        try:
            view = inspect_file_mapping(config, file, name)
        except KoppelError as error:
            problems.append((f"{where}.mapping", str(error)))
            continue
        problems += [
            (f"{where}.mapping.{side}", f"{issue.field}: {issue.message}")
            for side, issues in view.issues.items()
            for issue in issues
            if issue.severity is Severity.ERROR
        ]
    if problems:
        raise ConfigError(file, problems)


__all__ = [
    "SIDES",
    "FlowMappingView",
    "check_config",
    "flow_config",
    "inspect_file_mapping",
    "inspect_mapping",
    "mapping_schemas",
]
