"""A stored flow's mapping, edited: its effective rules as rows, one rule checked as it is
written, a new mapping version saved (audited), two versions compared, and real source records
to preview it on. The web pages and the REST API call these; a run uses what they save.

The flow's stored mapping is its override document (`{"get": {...}, "send": {...}}`, the format
of docs/mapping.md) on top of the connectors' defaults, exactly what `koppel config apply` stores
from an integration file: an edit here is a new version of that document.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
import yaml

from koppel.accounts.errors import N_
from koppel.connectors.base import ClientLimits, Record
from koppel.flows.mappings import Side, application_entity, default_mapping
from koppel.flows.runtime import stored_connector
from koppel.mapping import CATALOGUE, FieldRule, MappingIssue, Severity, parse_mapping
from koppel.mapping.document import UNSET, Policy, parse_value
from koppel.mapping.errors import InvalidMappingError
from koppel.services.checks import SIDES, FlowMappingView, inspect_mapping
from koppel.services.errors import InvalidRequest, NotFound
from koppel.services.mappings import MappingPreview, preview_record
from koppel.store import Flow, Store

RuleKind = Literal["from", "expr", "const"]
SAMPLE_SIZE = 100
"""How many of the source's first records a preview offers to pick from (and searches)."""
SAMPLE_DEADLINE_S = 15.0


@dataclass(frozen=True)
class MappingRow:
    """One target field of the effective mapping, as the editor's table shows it."""

    side: str
    target: str
    kind: str
    """from, expr, const or each."""
    value: str
    """The source path, the expression, the constant as YAML, or the list an `each` maps."""
    transforms: tuple[str, ...]
    """Each step as written in YAML (`trim`, `{truncate: 40}`)."""
    default: str | None
    create_only: bool
    truncate: bool
    overridden: bool
    """The flow's own rule (else the connector's default)."""
    added: bool
    """A field the default mapping does not have."""
    elements: tuple[str, ...]
    """An `each` rule's element fields."""
    issues: tuple[MappingIssue, ...]

    @property
    def editable(self) -> bool:
        return self.kind != "each"

    @property
    def transform_lines(self) -> str:
        return "\n".join(self.transforms)


@dataclass(frozen=True)
class FunctionChoice:
    """A function of the library, as the editor offers it."""

    name: str
    summary: str
    arguments: tuple[str, ...]
    example: str


@dataclass(frozen=True)
class MappingEditor:
    flow: Flow
    view: FlowMappingView
    rows: dict[str, tuple[MappingRow, ...]]
    removed: dict[str, tuple[str, ...]]
    """side -> the default fields the flow's override removes."""
    reads: dict[str, tuple[str, ...]]
    """side -> the fields that side reads (the source's schema, the canonical model)."""
    problems: dict[str, tuple[MappingIssue, ...]]
    """side -> issues that belong to no row (a section that does not parse, an unknown one)."""
    functions: tuple[FunctionChoice, ...]


@dataclass(frozen=True)
class RuleInput:
    """What the editor's form (or an API client) writes for one target field."""

    kind: RuleKind
    value: str
    transforms: str = ""
    """One step a line, as in YAML: `trim`, `truncate: 40`, `pad: [6, "0"]`."""
    default: str = ""
    """Empty: no default."""
    create_only: bool = False
    truncate: bool = False


@dataclass(frozen=True)
class SavedMapping:
    flow: str
    version: int
    changed: bool
    """False when the mapping was already this one (no new version)."""


@dataclass(frozen=True)
class DiffLine:
    where: str
    """`send.fields.ART_DESC1`, `get.remove`, `send.tables.betaaltermijnen`."""
    change: Literal["added", "removed", "changed"]
    before: str | None
    after: str | None


@dataclass(frozen=True)
class SampleRecord:
    key: str
    label: str
    record: dict[str, Any]


class MappingRefused(InvalidRequest):
    """A mapping with errors is not saved; every error is listed, each with its field."""

    message_id = N_("The mapping of %(flow)s is not saved; fix these errors: %(errors)s")

    def __init__(self, flow: str, issues: Sequence[tuple[str, MappingIssue]]) -> None:
        self.issues = tuple(issues)
        lines = "; ".join(f"{side} {issue.field}: {issue.message}" for side, issue in issues)
        self.params = {"flow": flow, "errors": lines}
        super().__init__(self.message_id % self.params)


def _applications(store: Store, flow: Flow) -> dict[str, str]:
    source = store.connections.get(flow.source_connection_id)
    target = store.connections.get(flow.target_connection_id)
    assert source is not None and target is not None  # the flow's, in the same scope
    return {"get": source.application, "send": target.application}


def flow_of(store: Store, flow_id: int) -> Flow:
    flow = store.flows.get(flow_id)
    if flow is None:  # another workspace's, or none
        raise NotFound(f"flow {flow_id} not found")
    return flow


def inspect_flow_mapping(
    store: Store, flow: Flow, overrides: Mapping[str, Any] | None = None
) -> FlowMappingView:
    """The stored flow's effective mapping (or with `overrides` instead of its own) and its
    issues, checked against both connectors' schemas as a run checks them."""
    integration = store.integrations.get(flow.integration_id)
    assert integration is not None
    settings = {**integration.settings, **flow.settings}
    document = flow.mapping if overrides is None else overrides
    return inspect_mapping(flow.name, flow.entity, _applications(store, flow), document, settings)


def _yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def _row(
    side: str,
    rule: FieldRule,
    own: Mapping[str, Any],
    defaults: set[str],
    issues: Sequence[MappingIssue],
) -> MappingRow:
    written = {"from": rule.source, "expr": rule.expr, "each": rule.each}
    kind = (
        "const" if rule.const is not UNSET else next(k for k, v in written.items() if v is not None)
    )
    return MappingRow(
        side=side,
        target=rule.target,
        kind=kind,
        value=_yaml(rule.const) if kind == "const" else str(written[kind]),
        transforms=tuple(_yaml(step) for step in rule.transform),
        default=None if rule.default is UNSET else _yaml(rule.default),
        create_only=rule.on is Policy.CREATE,
        truncate=str(rule.overflow) == "truncate",
        overridden=rule.target in own,
        added=rule.target not in defaults,
        elements=tuple(sub.target for sub in rule.fields),
        issues=tuple(i for i in issues if _about(i, rule.target)),
    )


def _about(issue: MappingIssue, target: str) -> bool:
    return issue.field == target or issue.field.startswith((f"{target}.", f"{target}[]"))


def _default_fields(view: FlowMappingView, side: Side) -> set[str]:
    return {r.target for r in default_mapping(view.applications[side], view.entity, side).fields}


def mapping_editor(store: Store, flow: Flow) -> MappingEditor:
    """Everything the editor's page shows of the flow's current mapping."""
    view = inspect_flow_mapping(store, flow)
    rows: dict[str, tuple[MappingRow, ...]] = {}
    removed: dict[str, tuple[str, ...]] = {}
    problems: dict[str, tuple[MappingIssue, ...]] = {}
    side: Side
    for side in SIDES:
        section = flow.mapping.get(side) or {}
        own = section.get("fields") or {} if isinstance(section, Mapping) else {}
        issues = view.issues[side]
        spec = view.specs.get(side)
        rows[side] = (
            tuple(
                _row(side, rule, own, _default_fields(view, side), issues) for rule in spec.fields
            )
            if spec
            else ()
        )
        placed = {i for row in rows[side] for i in row.issues}
        problems[side] = tuple(i for i in issues if i not in placed)
        removed[side] = tuple(section.get("remove") or []) if isinstance(section, Mapping) else ()
    reads = {str(s): tuple(sorted(view.schemas[s][0].fields)) for s in SIDES}
    functions = tuple(
        FunctionChoice(
            name=function.name,
            summary=function.summary,
            arguments=tuple(param.name for param in function.params),
            example=function.example.step,
        )
        for function in sorted(CATALOGUE.values(), key=lambda f: f.name)
    )
    return MappingEditor(flow, view, rows, removed, reads, problems, functions)


def rule_data(target: str, rule: RuleInput) -> dict[str, Any]:
    """The rule as the mapping document writes it; InvalidMappingError names the field and the
    step that is not valid YAML."""
    data: dict[str, Any] = {}
    if rule.kind == "const":
        data["const"] = parse_value(rule.value, target, "the constant")
    else:
        data[rule.kind] = rule.value.strip()
    steps = []
    for number, line in enumerate(rule.transforms.splitlines(), start=1):
        if line.strip():
            step = parse_value(line.strip(), target, f"transform step {number}")
            steps.append(step)
    if steps:
        data["transform"] = steps
    if rule.default.strip():
        data["default"] = parse_value(rule.default.strip(), target, "the default")
    if rule.create_only:
        data["on"] = "create"
    if rule.truncate:
        data["overflow"] = "truncate"
    return data


def with_rule(
    overrides: Mapping[str, Any], side: str, target: str, rule: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The override document with `target`'s rule on `side` replaced (None: the flow's own rule
    dropped, so the connector's default applies again)."""
    if side not in SIDES:
        raise InvalidRequest(f"side {side!r}: use 'get' or 'send'")
    document = copy.deepcopy(dict(overrides))
    section = dict(document.get(side) or {})
    fields = dict(section.get("fields") or {})
    if rule is None:
        fields.pop(target, None)
    else:
        fields[target] = dict(rule)
    if fields:
        section["fields"] = fields
    else:
        section.pop("fields", None)
    if section:
        document[side] = section
    else:
        document.pop(side, None)
    return document


def _errors(view: FlowMappingView) -> list[tuple[str, MappingIssue]]:
    return [
        (side, issue)
        for side in SIDES
        for issue in view.issues[side]
        if issue.severity is Severity.ERROR
    ]


def check_rule(
    store: Store, flow: Flow, side: str, target: str, rule: RuleInput
) -> tuple[MappingIssue, ...]:
    """What validation says of `target` with this rule in the flow's mapping (errors first,
    with the datamapper's "did you mean"); nothing is saved."""
    try:
        data = rule_data(target, rule)
        parse_mapping({"fields": {target: data}})
    except InvalidMappingError as error:
        return error.issues
    view = inspect_flow_mapping(store, flow, with_rule(flow.mapping, side, target, data))
    found = [
        issue
        for issue in view.issues[side]
        if _about(issue, target) or (issue.severity is Severity.ERROR and side not in view.specs)
    ]
    return tuple(sorted(found, key=lambda i: i.severity is not Severity.ERROR))


def save_mapping(
    store: Store, flow: Flow, overrides: Mapping[str, Any], *, actor: str, note: str
) -> SavedMapping:
    """Make `overrides` the flow's mapping, as a new version, audited with `actor`; a mapping
    with errors is refused (MappingRefused), and an equal one changes nothing."""
    errors = _errors(inspect_flow_mapping(store, flow, overrides))
    if errors:
        raise MappingRefused(flow.name, errors)
    with store.transaction() as tx:
        before = flow.mapping_version
        version = tx.flows.set_mapping(flow.id, dict(overrides), note)
        if version == before:
            return SavedMapping(flow.name, version, changed=False)
        integration = tx.integrations.get(flow.integration_id)
        assert integration is not None
        tx.audit.record(
            integration.tenant_id,
            actor=actor,
            action="flow.mapping_saved",
            subject=f"flow:{integration.name}/{flow.name}",
            detail={"version": version, "note": note},
        )
    return SavedMapping(flow.name, version, changed=True)


def save_rule(
    store: Store,
    flow: Flow,
    side: str,
    target: str,
    rule: RuleInput | None,
    *,
    actor: str,
) -> SavedMapping:
    """One row edited (None: back to the connector's default) and saved as a new version."""
    try:
        data = rule_data(target, rule) if rule is not None else None
    except InvalidMappingError as error:
        raise MappingRefused(flow.name, [(side, issue) for issue in error.issues]) from None
    note = f"{side} {target}: " + ("edited" if rule is not None else "back to the default")
    return save_mapping(
        store, flow, with_rule(flow.mapping, side, target, data), actor=actor, note=note
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _flat(document: Mapping[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for side, section in document.items():
        if not isinstance(section, Mapping):
            flat[str(side)] = _json(section)
            continue
        for key, value in section.items():
            if key in ("fields", "tables") and isinstance(value, Mapping):
                for name, item in value.items():
                    flat[f"{side}.{key}.{name}"] = _json(item)
            else:
                flat[f"{side}.{key}"] = _json(value)
    return flat


def mapping_diff(store: Store, flow: Flow, older: int, newer: int) -> tuple[DiffLine, ...]:
    """What changed in the flow's own rules from version `older` to `newer`."""
    documents = {v.version: v.mapping for v in store.flows.mapping_versions(flow.id)}
    for version in (older, newer):
        if version not in documents:
            raise NotFound(f"flow {flow.name}: mapping version {version} not found")
    before, after = _flat(documents[older]), _flat(documents[newer])
    lines: list[DiffLine] = []
    for where in sorted(set(before) | set(after)):
        old, new = before.get(where), after.get(where)
        if old == new:
            continue
        change: Literal["added", "removed", "changed"] = (
            "added" if old is None else "removed" if new is None else "changed"
        )
        lines.append(DiffLine(where, change, old, new))
    return tuple(lines)


def _for_a_sample(limits: ClientLimits) -> ClientLimits:
    """One try and short timeouts: a preview says what is wrong within seconds."""
    return replace(
        limits, timeout_s=min(limits.timeout_s, 10.0), connect_timeout_s=2.0, max_attempts=1
    )


def _label(record: Mapping[str, Any], key: str) -> str:
    texts = [str(v) for v in record.values() if isinstance(v, str | int) and str(v) != key]
    return " · ".join([key, *texts[:3]])


async def sample_records(
    store: Store,
    flow: Flow,
    *,
    search: str = "",
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[SampleRecord, ...]:
    """The source's first records (up to SAMPLE_SIZE) through the stored connection, those that
    contain `search` (in any field, any case) when it is given; nothing is written."""
    connection = store.connections.get(flow.source_connection_id)
    assert connection is not None
    entity = application_entity(connection.application, flow.entity)
    source = stored_connector(store, connection, transport=transport, adjust=_for_a_sample)
    try:
        async with asyncio.timeout(SAMPLE_DEADLINE_S):
            pages = source.read(entity, page_size=SAMPLE_SIZE)
            try:
                first: list[Record] = await anext(pages, [])
            finally:
                await pages.aclose()
        id_field = source.entities[entity].id_field
    except TimeoutError:
        raise InvalidRequest(
            f"{connection.name} did not answer within {SAMPLE_DEADLINE_S:.0f} s; test the "
            "connection on the Connections page"
        ) from None
    finally:
        await source.aclose()
    needle = search.strip().casefold()
    found = []
    for record in first:
        key = str(record.get(id_field, ""))
        if needle and needle not in json.dumps(record, default=str).casefold():
            continue
        found.append(SampleRecord(key, _label(record, key), dict(record)))
    return tuple(found)


def preview_sample(
    store: Store, flow: Flow, samples: Sequence[SampleRecord], key: str
) -> MappingPreview:
    """The sample record `key` (of `samples`, as `sample_records` read them) through the flow's
    current mapping; nothing is written."""
    view = inspect_flow_mapping(store, flow)
    if view.has_errors():
        raise MappingRefused(flow.name, _errors(view))
    for sample in samples:
        if sample.key == key:
            return preview_record(view, sample.record)
    raise NotFound(
        f"record {key!r} is not among the first {SAMPLE_SIZE} records of the source; "
        "pick one from the list"
    )


__all__ = [
    "SAMPLE_SIZE",
    "DiffLine",
    "FunctionChoice",
    "MappingEditor",
    "MappingRefused",
    "MappingRow",
    "RuleInput",
    "SampleRecord",
    "SavedMapping",
    "check_rule",
    "flow_of",
    "inspect_flow_mapping",
    "mapping_diff",
    "mapping_editor",
    "preview_sample",
    "rule_data",
    "sample_records",
    "save_mapping",
    "save_rule",
    "with_rule",
]
