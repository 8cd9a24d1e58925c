"""Preview a record through both stages, and render mappings, issues and previews for people.

The CLI (`koppel mapping show | validate | preview`) and the web app call these; they return Rich
renderables, and `to_text` turns any of them into plain text for logs, e-mails and tests.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from koppel.mapping.document import MappingSpec
from koppel.mapping.engine import CompiledMapping, MappingResult, apply
from koppel.mapping.errors import FieldWarning, MappingError, MappingIssue, Severity

Operation = Literal["create", "update"]


@dataclass(frozen=True)
class Preview:
    """One record on its way: source -> canonical -> target, with what each stage said.

    `error` is set when a stage failed; the stages before it are still shown.
    """

    source: Mapping[str, Any]
    canonical: dict[str, Any] | None
    target: dict[str, Any] | None
    operation: Operation
    warnings: tuple[FieldWarning, ...] = ()
    error: str | None = None
    create_only: frozenset[str] = field(default_factory=frozenset)


def preview(
    get_mapping: CompiledMapping,
    send_mapping: CompiledMapping,
    source_record: Mapping[str, Any],
    *,
    canonical_model: type[BaseModel] | None = None,
    operation: Operation = "create",
    record_key: str | None = None,
) -> Preview:
    """Map one record through both stages as a flow would, without sending anything.

    With `canonical_model`, the canonical values are validated by it and its defaults filled in,
    exactly what the send side gets in a real run.
    """
    warnings: list[FieldWarning] = []
    try:
        got = apply(get_mapping, source_record, record_key=record_key)
    except MappingError as error:
        return Preview(source_record, None, None, operation, error=f"get side: {error}")
    warnings.extend(FieldWarning(f"canonical {w.field}", w.message) for w in got.warnings)
    canonical = got.values
    if canonical_model is not None:
        try:
            canonical = canonical_model.model_validate(canonical).model_dump()
        except ValidationError as error:
            return Preview(
                source_record,
                got.values,
                None,
                operation,
                tuple(warnings),
                f"canonical {canonical_model.__name__}: {_pydantic_reason(error)}",
            )
    try:
        sent: MappingResult = apply(send_mapping, canonical, record_key=record_key)
    except MappingError as error:
        return Preview(
            source_record, canonical, None, operation, tuple(warnings), f"send side: {error}"
        )
    warnings.extend(FieldWarning(f"target {w.field}", w.message) for w in sent.warnings)
    target = sent.values if operation == "create" else sent.for_update()
    return Preview(
        source_record, canonical, target, operation, tuple(warnings), None, sent.create_only
    )


def _pydantic_reason(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
    )


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaf paths and values (`lines[0].sku`), the way people read a record side by side."""
    if isinstance(value, Mapping):
        if not value and prefix:
            return [(prefix, {})]
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(value, list) and value:
        rows = []
        for index, item in enumerate(value):
            rows.extend(flatten(item, f"{prefix}[{index}]"))
        return rows
    return [(prefix, value)]


def _show(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Decimal | dt.date):
        return str(value)
    return repr(value)


def _cell(value: Mapping[str, Any] | None, marks: frozenset[str] = frozenset()) -> Text:
    if value is None:
        return Text("-", style="dim")
    text = Text()
    for path, item in flatten(value):
        create_only = path.split(".")[0].split("[")[0] in marks
        text.append(f"{path}", style="bold")
        text.append(f" = {_show(item)}")
        if create_only:
            text.append("  (create only)", style="yellow")
        text.append("\n")
    text.rstrip()
    return text


def render_preview(result: Preview) -> RenderableType:
    table = Table(title=f"Preview ({result.operation})", show_lines=False, expand=True)
    table.add_column("source", overflow="fold")
    table.add_column("canonical", overflow="fold")
    table.add_column(f"target ({result.operation})", overflow="fold")
    table.add_row(
        _cell(result.source), _cell(result.canonical), _cell(result.target, result.create_only)
    )
    parts: list[RenderableType] = [table]
    for warning in result.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    if result.error is not None:
        parts.append(Text(f"error: {result.error}", style="bold red"))
    return Group(*parts)


def render_issues(issues: Sequence[MappingIssue]) -> RenderableType:
    if not issues:
        return Text("mapping is valid", style="green")
    table = Table(title="Mapping issues", expand=True)
    table.add_column("severity")
    table.add_column("field")
    table.add_column("problem and fix", overflow="fold")
    for issue in issues:
        style = "bold red" if issue.severity is Severity.ERROR else "yellow"
        table.add_row(Text(str(issue.severity), style=style), issue.field, issue.message)
    return table


def render_mapping(spec: MappingSpec) -> RenderableType:
    table = Table(title=f"Mapping {spec.name}".strip(), expand=True)
    table.add_column("target field", style="bold")
    table.add_column("value from", overflow="fold")
    table.add_column("transform", overflow="fold")
    table.add_column("on")
    for rule in spec.fields:
        _mapping_rows(table, rule.target, rule.to_data())
    parts: list[RenderableType] = [table]
    for name, lookup in spec.tables.items():
        rows = ", ".join(f"{key} -> {value}" for key, value in lookup.items())
        parts.append(Text(f"table {name}: {rows}"))
    return Group(*parts)


def _mapping_rows(table: Table, target: str, data: Mapping[str, Any]) -> None:
    if "each" in data:
        table.add_row(target, f"each {data['each']}", "", data.get("on", "always"))
        for sub_target, sub in data["fields"].items():
            _mapping_rows(table, f"{target}[].{sub_target}", sub)
        return
    if "from" in data:
        origin = str(data["from"])
    elif "expr" in data:
        origin = f"expr {data['expr']}"
    else:
        origin = f"const {data['const']!r}"
    steps = [str(step) for step in data.get("transform", [])]
    if "default" in data:
        steps.append(f"default {data['default']!r}")
    if "overflow" in data:
        steps.append(f"overflow {data['overflow']}")
    table.add_row(target, origin, ", ".join(steps), data.get("on", "always"))


def to_text(renderable: RenderableType, width: int = 120) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(renderable)
    return buffer.getvalue()


__all__ = [
    "Operation",
    "Preview",
    "flatten",
    "preview",
    "render_issues",
    "render_mapping",
    "render_preview",
    "to_text",
]
