"""Compile a mapping once, then apply it to many records.

Compiling resolves paths, functions, arguments and expressions up front and makes each rule one
function that does only what the rule needs, so mapping a record runs one function per field.
Applying never raises anything but a MappingError naming the record, the field and the rule; a
target field that cannot hold its value follows the rule's `overflow`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

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


Producer = Callable[[_Source, str, list[FieldWarning]], Any]
"""produce(source, prefix, warnings): one field's value for the target (None leaves it out).
`prefix` is where the record sits in the one being mapped (`variants[2].`, or ""), so a failure
names the field as users read it."""

RecordMapper = Callable[[_Source, str, list[FieldWarning]], dict[str, Any]]


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping ready to apply; build it with `compile_mapping`."""

    spec: MappingSpec
    rules: tuple[CompiledRule, ...]
    target_schema: RecordSchema | None
    create_only: frozenset[str]
    map_record: RecordMapper
    """the rules made into one function per field once (see `_record_mapper`)"""


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
    return CompiledMapping(spec, rules, target_schema, create_only, _record_mapper(rules))


def apply(
    mapping: CompiledMapping, record: Mapping[str, Any], *, record_key: str | None = None
) -> MappingResult:
    """Map one record. Raises only MappingError, which names the record, the field and the rule."""
    key = record_key if record_key is not None else "record"
    warnings: list[FieldWarning] = []
    field = "(record)"
    try:
        if type(record) is not dict and not isinstance(record, Mapping):  # dict: no ABC check
            raise _FieldFailure(field, f"a record must be an object, got {type(record).__name__}")
        values = mapping.map_record(_Source(record), "", warnings)
    except _FieldFailure as failure:
        raise MappingError(failure.field, failure.rule, key) from None
    except MappingError:
        raise
    except Exception as error:  # a bug must still name the record, never escape as a crash
        raise MappingError(field, f"unexpected {type(error).__name__}: {error}", key) from None
    return MappingResult(values, tuple(warnings), mapping.create_only)


# -- compiling rules into functions ----------------------------------------------------------
#
# Everything a rule's shape decides (where the value comes from, whether it has steps or a
# default, the target's type, length and overflow policy) is decided here, once per mapping, by
# choosing which small function to build; mapping a record then runs only what its rules need.
# A field copied as it is costs one call, its value checked against the target's type in line;
# only a value to convert, too long or absent calls the target's `fit` (this runs for every
# field of every record).


def _record_mapper(rules: tuple[CompiledRule, ...]) -> RecordMapper:
    fields = tuple(
        (_producer(compiled), compiled.parts[0] if len(compiled.parts) == 1 else None, compiled)
        for compiled in rules
    )

    def map_record(source: _Source, prefix: str, warnings: list[FieldWarning]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for produce, key, compiled in fields:
            try:
                value = produce(source, prefix, warnings)
            except _FieldFailure:
                raise
            except Exception as error:
                raise _FieldFailure(
                    prefix + compiled.rule.target,
                    f"{compiled.describe()}: unexpected {type(error).__name__}: {error}",
                ) from None
            if value is not None:
                if key is not None:
                    values[key] = value
                else:
                    write_path(values, compiled.parts, value)
        return values

    return map_record


def _producer(compiled: CompiledRule) -> Producer:
    if compiled.rule.each is not None:
        return _each_producer(compiled)
    fit = _fitter(compiled)
    rule = compiled.rule
    target = rule.target
    describe = compiled.describe()
    source_path = compiled.source
    key = (
        source_path.steps[0]
        if source_path is not None
        and len(source_path.steps) == 1
        and isinstance(source_path.steps[0], str)
        else None
    )
    steps = tuple((step.run, step.name) for step in compiled.steps)
    default = rule.default
    has_default = default is not UNSET
    if key is not None and not steps and not has_default:
        return _copier(key, fit)  # a field copied as it is: the most common rule by far
    reader = compiled.reader if key is None else None
    compute = _computed_value(compiled)
    held = fit.held if fit is not None else None
    longest = fit.longest if fit is not None else None
    fit_value = fit.fit if fit is not None else None

    def produce(source: _Source, prefix: str, warnings: list[FieldWarning]) -> Any:
        record = source.record
        value: Any
        if key is not None:
            value = record.get(key) if isinstance(record, dict) else None
        elif reader is not None:
            value = reader(record)
        else:
            value = compute(source, prefix)
        for run, name in steps:
            try:
                value = run(value, record)
            except TransformError as error:
                raise _FieldFailure(prefix + target, f"{describe} | {name}: {error}") from None
        if has_default and (value is None or value == ""):
            value = default
        if fit_value is None or (
            type(value) is held and (longest is None or len(value) <= longest)
        ):
            return value
        return fit_value(value, prefix, warnings)

    return produce


def _copier(key: str, fit: _Target | None) -> Producer:
    if fit is None:

        def copy(source: _Source, _prefix: str, _warnings: list[FieldWarning]) -> Any:
            record = source.record
            return record.get(key) if isinstance(record, dict) else None

        return copy
    held, longest, fit_value = fit

    def copy_fitted(source: _Source, prefix: str, warnings: list[FieldWarning]) -> Any:
        record = source.record
        value: Any = record.get(key) if isinstance(record, dict) else None
        if type(value) is held and (longest is None or len(value) <= longest):
            return value
        return fit_value(value, prefix, warnings)

    return copy_fitted


def _computed_value(compiled: CompiledRule) -> Callable[[_Source, str], Any]:
    """The value of a rule that reads no source path: its expression's, or its constant."""
    expression = compiled.expression
    if expression is not None:
        target = compiled.rule.target

        def evaluate(source: _Source, prefix: str) -> Any:
            try:
                return expression.evaluate_record(source)
            except ExpressionError as error:
                raise _FieldFailure(prefix + target, f"expr: {error}") from None

        return evaluate
    const = compiled.rule.const
    return lambda _source, _prefix: const


def _each_producer(compiled: CompiledRule) -> Producer:
    reader = compiled.reader
    assert reader is not None  # an each rule always has its path
    map_element = _record_mapper(compiled.elements)
    fit = _fitter(compiled)
    target = compiled.rule.target
    each = compiled.rule.each

    def produce_list(
        source: _Source, prefix: str, warnings: list[FieldWarning]
    ) -> list[dict[str, Any]] | None:
        items = reader(source.record)
        if items is None:
            if fit is not None:
                fit.fit(None, prefix, warnings)  # fails the record if the target requires it
            return None
        field = prefix + target
        if not isinstance(items, list):
            raise _FieldFailure(field, f"each {each}: is not a list")
        result = []
        for index, item in enumerate(items):
            if type(item) is not dict and not isinstance(item, Mapping):
                raise _FieldFailure(f"{field}[{index}]", f"each {each}: not an object")
            result.append(map_element(_Source(item), f"{field}[{index}].", warnings))
        return result

    return produce_list


Fit = Callable[[Any, str, list[FieldWarning]], Any]
"""fit(value, prefix, warnings): the value as the target field holds it, or the record fails."""


class _Unfit(Exception):
    """A value of a type the target field cannot hold; the message is the reason and the fix."""


class _Target(NamedTuple):
    """How a rule's values become what its target field holds."""

    held: Any
    """a value of exactly this type (a text no longer than `longest`) is held as it is: the
    caller returns it without calling `fit` (a type or None; typed Any so that the caller's
    `type(value) is held` leaves `value` what it was for the type checker)"""
    longest: int | None
    fit: Fit


def _fitter(compiled: CompiledRule) -> _Target | None:
    """Make the value what the target field holds, or fail the record with the reason (None:
    there is no target field to fit)."""
    spec = compiled.target
    if spec is None:
        return None
    describe = compiled.describe()
    target = compiled.rule.target
    kind = spec.type
    required = spec.required
    limit = spec.max_length if kind is FieldType.STRING else None
    too_long = _overflow(compiled, limit) if limit is not None else None

    def fit(value: Any, prefix: str, warnings: list[FieldWarning]) -> Any:
        if value is None:
            if required:
                raise _FieldFailure(
                    prefix + target,
                    f"{describe}: is required by the target but has no value: "
                    "add `default:` or fix the source",
                )
            return None
        try:
            value = _convert(kind, value)
        except _Unfit as unfit:
            raise _FieldFailure(prefix + target, f"{describe}: {unfit}") from None
        if too_long is not None:
            return too_long(value, prefix, warnings)
        return value

    return _Target(_HELD.get(kind), limit, fit)


_HELD: dict[FieldType, type] = {
    FieldType.STRING: str,
    FieldType.DECIMAL: Decimal,
    FieldType.INTEGER: int,
    FieldType.BOOLEAN: bool,
    FieldType.DATE: dt.date,
    FieldType.DATETIME: dt.datetime,
    FieldType.OBJECT: dict,
    FieldType.LIST: list,
}
"""A value of exactly this type is what a field of the kind holds as it is: no conversion."""


def _overflow(compiled: CompiledRule, limit: int) -> Fit:
    """A text as its target field of `limit` characters holds it: a longer one as the rule's
    `overflow` says."""
    describe = compiled.describe()
    target = compiled.rule.target
    if compiled.rule.overflow is Overflow.TRUNCATE:

        def truncate(value: str, prefix: str, warnings: list[FieldWarning]) -> str:
            if len(value) <= limit:
                return value
            warnings.append(
                FieldWarning(prefix + target, f"truncated from {len(value)} to {limit} characters")
            )
            return value[:limit]

        return truncate
    if compiled.target is not None and compiled.target.key:
        way_out = (
            " and finds its records by this field: shorten it in the source (a key cut to "
            "fit could make two records one)"
        )
    else:
        way_out = f": add `truncate: {limit}` or `overflow: truncate`"

    def fail(value: str, prefix: str, _warnings: list[FieldWarning]) -> str:
        if len(value) <= limit:
            return value
        raise _FieldFailure(
            prefix + target,
            f"{describe}: is {len(value)} characters; the target holds {limit}{way_out}",
        )

    return fail


def _convert(kind: FieldType, value: Any) -> Any:
    """A value that is not None as a field of `kind` holds it; _Unfit says why it cannot be."""
    if kind is FieldType.ANY:
        return value
    if kind is FieldType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
            raise _Unfit(
                _mismatch(value, "text", "join" if isinstance(value, list) else "to_string")
            )
        return str(value)
    if kind in (FieldType.DECIMAL, FieldType.INTEGER):
        if isinstance(value, bool):
            raise _Unfit(_mismatch(value, "a number", "to_integer"))
        if isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise _Unfit(_mismatch(value, "a number", "parse_decimal")) from None
        elif isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        else:
            raise _Unfit(_mismatch(value, "a number", "parse_decimal"))
        if kind is FieldType.DECIMAL:
            return number
        if number != number.to_integral_value():
            raise _Unfit(f"{number} is not a whole number: add `round: 0`")
        return int(number)
    if kind is FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise _Unfit(_mismatch(value, "yes/no", "to_boolean"))
        return value
    if kind in (FieldType.DATE, FieldType.DATETIME):
        if isinstance(value, dt.date):
            return value
        raise _Unfit(_mismatch(value, "a date", "parse_date"))
    if kind is FieldType.OBJECT:
        if not isinstance(value, Mapping):
            raise _Unfit(_mismatch(value, "an object", "expr"))
        return value
    if not isinstance(value, list):  # FieldType.LIST
        raise _Unfit(_mismatch(value, "a list", "split"))
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
