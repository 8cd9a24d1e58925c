"""Compile a mapping once, then apply it to many records.

Compiling resolves paths, functions, arguments and expressions up front, so mapping a record is a
walk over prepared rules. Applying never raises anything but a MappingError naming the record,
the field and the rule; a target field that cannot hold its value follows the rule's `overflow`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from koppel.mapping.document import UNSET, FieldRule, MappingSpec, Overflow, Policy
from koppel.mapping.errors import (
    FieldWarning,
    InvalidMappingError,
    MappingError,
    MappingIssue,
    Severity,
)
from koppel.mapping.expressions import (
    DEFAULT_LIMITS,
    Expression,
    ExpressionError,
    ExpressionLimits,
    to_json_value,
)
from koppel.mapping.functions import (
    ArgumentError,
    CompiledStep,
    Tables,
    TransformError,
    compile_step,
)
from koppel.mapping.paths import (
    PathSyntaxError,
    Reader,
    SourcePath,
    delete_path,
    parse_source_path,
    parse_target_path,
    write_path,
)
from koppel.model.schema import FieldSpec, FieldType, RecordSchema


class _Source:
    """One source record (or list element) with its JSON shape built once, for expressions."""

    __slots__ = ("_json", "record")

    def __init__(self, record: Any) -> None:
        self.record = record
        self._json: Any = UNSET

    @property
    def json(self) -> Any:
        if self._json is UNSET:
            self._json = to_json_value(self.record)
        return self._json


class _FieldFailure(Exception):
    def __init__(self, field: str, rule: str) -> None:
        super().__init__(rule)
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class CompiledRule:
    rule: FieldRule
    field: str
    """the target field as users read it: `sku`, `lines[].sku`"""
    parts: tuple[str, ...]
    source: SourcePath | None
    reader: Reader | None
    expression: Expression | None
    steps: tuple[CompiledStep, ...]
    target: FieldSpec | None
    elements: tuple[CompiledRule, ...] = ()

    def describe(self) -> str:
        if self.rule.each is not None:
            return f"each {self.rule.each}"
        if self.source is not None:
            return f"from {self.source.text}"
        if self.expression is not None:
            return "expr"
        return "const"

    def produce(self, source: _Source, field: str) -> Any:
        rule = self.rule
        if self.reader is not None:
            value = self.reader(source.record)
        elif self.expression is not None:
            try:
                value = self.expression.evaluate(source.json)
            except ExpressionError as error:
                raise _FieldFailure(field, f"expr: {error}") from None
        else:
            value = rule.const
        for step in self.steps:
            try:
                value = step.run(value, source.record)
            except TransformError as error:
                raise _FieldFailure(field, f"{self.describe()} | {step.name}: {error}") from None
        if rule.default is not UNSET and (value is None or value == ""):
            value = rule.default
        return value


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping ready to apply; build it with `compile_mapping`."""

    spec: MappingSpec
    rules: tuple[CompiledRule, ...]
    target_schema: RecordSchema | None
    create_only: frozenset[str]


@dataclass(frozen=True)
class MappingResult:
    """One mapped record. `values` is what to send on create; `for_update()` drops the fields
    whose rule says `on: create`, so values a user enriched in the target are kept."""

    values: dict[str, Any]
    warnings: tuple[FieldWarning, ...]
    create_only: frozenset[str]

    def for_update(self) -> dict[str, Any]:
        values = _copy_dicts(self.values)
        for field in self.create_only:
            delete_path(values, tuple(field.split(".")))
        return values


def _copy_dicts(value: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _copy_dicts(item) if isinstance(item, dict) else item for key, item in value.items()
    }


class _Builder:
    """Compiles rules and collects every problem as an issue instead of stopping at the first."""

    def __init__(
        self,
        tables: Tables,
        target_schema: RecordSchema | None,
        limits: ExpressionLimits,
    ) -> None:
        self.tables = tables
        self.target_schema = target_schema
        self.limits = limits
        self.issues: list[MappingIssue] = []

    def error(self, field: str, message: str) -> None:
        self.issues.append(MappingIssue(Severity.ERROR, field, message))

    def build(self, rules: tuple[FieldRule, ...], prefix: str) -> tuple[CompiledRule, ...]:
        seen: dict[str, str] = {}
        compiled: list[CompiledRule] = []
        for rule in rules:
            field = prefix + rule.target
            for other in seen:
                if other == rule.target:
                    self.error(field, "target field is mapped twice: keep one rule")
                elif other.startswith(rule.target + ".") or rule.target.startswith(other + "."):
                    self.error(
                        field,
                        f"target field overlaps {prefix + other}: map the object or its fields, "
                        "not both",
                    )
            seen[rule.target] = field
            if prefix and rule.on is Policy.CREATE:
                self.error(field, "`on: create` applies to whole fields: put it on the list rule")
            built = self.build_rule(rule, field, prefix)
            if built is not None:
                compiled.append(built)
        return tuple(compiled)

    def build_rule(self, rule: FieldRule, field: str, prefix: str) -> CompiledRule | None:
        ok = True
        try:
            parts = parse_target_path(rule.target)
        except PathSyntaxError as error:
            self.error(field, str(error))
            return None
        source: SourcePath | None = None
        path_text = rule.source if rule.source is not None else rule.each
        if path_text is not None:
            try:
                source = parse_source_path(path_text)
            except PathSyntaxError as error:
                self.error(field, str(error))
                ok = False
        expression: Expression | None = None
        if rule.expr is not None:
            try:
                expression = Expression(rule.expr, self.limits)
            except ExpressionError as error:
                self.error(field, str(error))
                ok = False
        steps: list[CompiledStep] = []
        for raw in rule.transform:
            try:
                steps.append(compile_step(raw, self.tables))
            except ArgumentError as error:
                self.error(field, f"transform: {error}")
                ok = False
        target = self.target_schema.get(field) if self.target_schema else None
        elements: tuple[CompiledRule, ...] = ()
        if rule.each is not None:
            if rule.transform:
                self.error(field, "an `each` rule transforms its element fields, not the list")
            elements = self.build(rule.fields, f"{field}[].")
        if not ok:
            return None
        return CompiledRule(
            rule=rule,
            field=field,
            parts=parts,
            source=source,
            reader=source.reader() if source is not None else None,
            expression=expression,
            steps=tuple(steps),
            target=target,
            elements=elements,
        )


def build_rules(
    spec: MappingSpec,
    *,
    target_schema: RecordSchema | None,
    tables: Tables | None,
    limits: ExpressionLimits,
) -> tuple[tuple[CompiledRule, ...], list[MappingIssue]]:
    """Compile what can be compiled and report the rest; `validate` builds on this."""
    builder = _Builder({**spec.tables, **(tables or {})}, target_schema, limits)
    if spec.remove:
        builder.error("remove", "`remove` only applies to an override merged onto a default")
    rules = builder.build(spec.fields, "")
    return rules, builder.issues


def compile_mapping(
    spec: MappingSpec,
    *,
    target_schema: RecordSchema | None = None,
    tables: Tables | None = None,
    limits: ExpressionLimits = DEFAULT_LIMITS,
) -> CompiledMapping:
    """Compile for `apply`. `tables` (from the flow settings) extend and win over the mapping's
    own. With a `target_schema`, values are checked against the target's types and lengths."""
    rules, issues = build_rules(spec, target_schema=target_schema, tables=tables, limits=limits)
    errors = [issue for issue in issues if issue.severity is Severity.ERROR]
    if errors:
        raise InvalidMappingError(errors)
    create_only = frozenset(rule.rule.target for rule in rules if rule.rule.on is Policy.CREATE)
    return CompiledMapping(spec, rules, target_schema, create_only)


def apply(
    mapping: CompiledMapping, record: Mapping[str, Any], *, record_key: str | None = None
) -> MappingResult:
    """Map one record. Raises only MappingError, which names the record, the field and the rule."""
    key = record_key if record_key is not None else "record"
    warnings: list[FieldWarning] = []
    field = "(record)"
    try:
        if not isinstance(record, Mapping):
            raise _FieldFailure(field, f"a record must be an object, got {type(record).__name__}")
        values = _apply_rules(mapping.rules, _Source(record), "", warnings)
    except _FieldFailure as failure:
        raise MappingError(failure.field, failure.rule, key) from None
    except MappingError:
        raise
    except Exception as error:  # a bug must still name the record, never escape as a crash
        raise MappingError(field, f"unexpected {type(error).__name__}: {error}", key) from None
    return MappingResult(values, tuple(warnings), mapping.create_only)


def _apply_rules(
    rules: tuple[CompiledRule, ...], source: _Source, prefix: str, warnings: list[FieldWarning]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for compiled in rules:
        rule = compiled.rule
        field = prefix + rule.target if prefix else rule.target
        try:
            if rule.each is not None:
                value: Any = _apply_each(compiled, source, field, warnings)
            else:
                value = compiled.produce(source, field)
                if compiled.target is not None:
                    value = _fit(compiled, value, field, warnings)
        except _FieldFailure:
            raise
        except Exception as error:
            raise _FieldFailure(
                field, f"{compiled.describe()}: unexpected {type(error).__name__}: {error}"
            ) from None
        if value is not None:
            parts = compiled.parts
            if len(parts) == 1:
                values[parts[0]] = value
            else:
                write_path(values, parts, value)
    return values


def _apply_each(
    compiled: CompiledRule, source: _Source, field: str, warnings: list[FieldWarning]
) -> list[dict[str, Any]] | None:
    assert compiled.reader is not None  # an each rule always has its path
    items = compiled.reader(source.record)
    if items is None:
        _fit(compiled, None, field, warnings)  # fails the record if the target requires the list
        return None
    if not isinstance(items, list):
        raise _FieldFailure(field, f"each {compiled.rule.each}: is not a list")
    result = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _FieldFailure(f"{field}[{index}]", f"each {compiled.rule.each}: not an object")
        element_prefix = f"{field}[{index}]."
        result.append(_apply_rules(compiled.elements, _Source(item), element_prefix, warnings))
    return result


_NUMBER_HINT = "add `parse_decimal` to read it"


def _fit(compiled: CompiledRule, value: Any, field: str, warnings: list[FieldWarning]) -> Any:
    """Make the value what the target field holds, or fail the record with the reason."""
    spec = compiled.target
    if spec is None:
        return value
    if value is None:
        if spec.required:
            raise _FieldFailure(
                field,
                f"{compiled.describe()}: is required by the target but has no value: "
                "add `default:` or fix the source",
            )
        return None
    value = _coerce(compiled, spec, value, field)
    limit = spec.max_length
    if spec.type is FieldType.STRING and limit is not None and len(value) > limit:
        if compiled.rule.overflow is Overflow.TRUNCATE:
            warnings.append(
                FieldWarning(field, f"truncated from {len(value)} to {limit} characters")
            )
            return value[:limit]
        if spec.key:
            raise _FieldFailure(
                field,
                f"{compiled.describe()}: is {len(value)} characters; the target holds {limit} "
                "and finds its records by this field: shorten it in the source (a key cut to "
                "fit could make two records one)",
            )
        raise _FieldFailure(
            field,
            f"{compiled.describe()}: is {len(value)} characters; the target holds {limit}: "
            f"add `truncate: {limit}` or `overflow: truncate`",
        )
    return value


def _coerce(compiled: CompiledRule, spec: FieldSpec, value: Any, field: str) -> Any:
    kind = spec.type
    if kind is FieldType.STRING and isinstance(value, str):
        return value  # the common case first: no closure made for it

    def fail(reason: str) -> _FieldFailure:
        return _FieldFailure(field, f"{compiled.describe()}: {reason}")

    if kind is FieldType.ANY:
        return value
    if kind is FieldType.STRING:
        if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
            raise fail(_mismatch(value, "text", "join" if isinstance(value, list) else "to_string"))
        return str(value)
    if kind in (FieldType.DECIMAL, FieldType.INTEGER):
        if isinstance(value, bool):
            raise fail(_mismatch(value, "a number", "to_integer"))
        if isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise fail(_mismatch(value, "a number", "parse_decimal")) from None
        elif isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        else:
            raise fail(_mismatch(value, "a number", "parse_decimal"))
        if kind is FieldType.DECIMAL:
            return number
        if number != number.to_integral_value():
            raise fail(f"{number} is not a whole number: add `round: 0`")
        return int(number)
    if kind is FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise fail(_mismatch(value, "yes/no", "to_boolean"))
        return value
    if kind in (FieldType.DATE, FieldType.DATETIME):
        if isinstance(value, dt.date):
            return value
        raise fail(_mismatch(value, "a date", "parse_date"))
    if kind is FieldType.OBJECT:
        if not isinstance(value, Mapping):
            raise fail(_mismatch(value, "an object", "expr"))
        return value
    if not isinstance(value, list):  # FieldType.LIST
        raise fail(_mismatch(value, "a list", "split"))
    return value


def _mismatch(value: Any, expected: str, fix: str) -> str:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"the target holds {expected}, got {type(value).__name__} {shown}: add `{fix}`"


__all__ = [
    "CompiledMapping",
    "CompiledRule",
    "MappingResult",
    "apply",
    "build_rules",
    "compile_mapping",
]
