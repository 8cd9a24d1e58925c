"""Check a mapping against the source and target schemas before anything runs.

Every issue names the field and the fix, in the words of the mapping file, so a user can correct
it without knowing the code ("target field ART_DESC1 is 40 characters; source name may be 120:
add `truncate: 40` or the record fails").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from koppel.mapping.document import UNSET, FieldRule, MappingSpec, Overflow
from koppel.mapping.engine import CompiledRule, build_rules
from koppel.mapping.errors import MappingIssue, Severity
from koppel.mapping.expressions import DEFAULT_LIMITS, ExpressionLimits
from koppel.mapping.functions import Tables
from koppel.mapping.paths import SourcePath
from koppel.model.schema import FieldSpec, FieldType, RecordSchema

_NUMBERS = (FieldType.DECIMAL, FieldType.INTEGER)


def validate(
    spec: MappingSpec,
    source_schema: RecordSchema,
    target_schema: RecordSchema,
    *,
    tables: Tables | None = None,
    limits: ExpressionLimits = DEFAULT_LIMITS,
) -> list[MappingIssue]:
    """Every problem found, errors first; an empty list means the mapping is ready to run."""
    rules, issues = build_rules(spec, target_schema=target_schema, tables=tables, limits=limits)
    checker = _Checker(source_schema, target_schema, issues)
    checker.check_rules(rules, source_prefix="")
    # A rule that is written but does not compile has its own error: the field is not also
    # reported as "not mapped".
    checker.check_required(rules, written=set(written_fields(spec.fields)))
    return sorted(issues, key=lambda issue: issue.severity is not Severity.ERROR)


class _Checker:
    def __init__(
        self, source: RecordSchema, target: RecordSchema, issues: list[MappingIssue]
    ) -> None:
        self.source = source
        self.target = target
        self.issues = issues

    def add(self, severity: Severity, field: str, message: str) -> None:
        self.issues.append(MappingIssue(severity, field, message))

    def check_rules(self, rules: Iterable[CompiledRule], source_prefix: str) -> None:
        for compiled in rules:
            self.check_rule(compiled, source_prefix)

    def check_rule(self, compiled: CompiledRule, source_prefix: str) -> None:
        field = compiled.field
        source_spec: FieldSpec | None = None
        if compiled.source is not None:
            source_spec = self.check_source(field, compiled.source, source_prefix)
        for step in compiled.steps:
            for ref in step.refs:
                self.check_source(field, ref, source_prefix)
        if compiled.expression is not None:
            for name in compiled.expression.record_fields():
                if not self.source.knows(source_prefix + name):
                    self.add(
                        Severity.ERROR,
                        field,
                        f"the expression reads {name}, which is not in {self.source.name}"
                        f"{_close(source_prefix + name, self.source)}",
                    )
        target = compiled.target
        if target is None and not self.target.knows(field):
            self.add(
                Severity.ERROR,
                field,
                f"target field {field} is not in {self.target.name}{_close(field, self.target)}",
            )
        if compiled.rule.each is not None:
            element_prefix = (
                f"{source_prefix}{compiled.source.schema_path}[]."
                if (compiled.source is not None)
                else source_prefix
            )
            self.check_rules(compiled.elements, element_prefix)
            return
        if target is None:
            return
        value_type, longest = self.trace(compiled, source_spec)
        self.check_type(compiled, value_type, target)
        self.check_length(compiled, longest, target)
        if target.upper_case and not _makes_upper(compiled):
            self.add(
                Severity.WARNING,
                field,
                f"target field {field} is upper case: add `upper` or values may be refused",
            )

    def check_source(self, field: str, path: SourcePath, prefix: str) -> FieldSpec | None:
        schema_path = prefix + path.schema_path
        if not self.source.knows(schema_path):
            self.add(
                Severity.ERROR,
                field,
                f"source field {schema_path} is not in {self.source.name}"
                f"{_close(schema_path, self.source)}",
            )
            return None
        return self.source.get(schema_path)

    def trace(
        self, compiled: CompiledRule, source_spec: FieldSpec | None
    ) -> tuple[FieldType, int | None]:
        """The type and longest text the chain produces, as far as the schemas tell."""
        rule = compiled.rule
        value_type: FieldType
        longest: int | None = None
        if compiled.source is not None:
            value_type = source_spec.type if source_spec is not None else FieldType.ANY
            longest = source_spec.max_length if source_spec is not None else None
            if compiled.source.yields_list:
                value_type = FieldType.LIST
        elif rule.const is not UNSET:
            value_type = _type_of(rule.const)
            longest = len(rule.const) if isinstance(rule.const, str) else None
        else:
            value_type = FieldType.ANY
        for step in compiled.steps:
            function = step.function
            longest = function.length(step.args, longest)
            if function.output is None:
                value_type = FieldType.ANY if function.name == "lookup" else value_type
            elif value_type is FieldType.LIST and function.per_element:
                continue
            else:
                value_type = function.output
        return value_type, longest

    def check_type(self, compiled: CompiledRule, value_type: FieldType, target: FieldSpec) -> None:
        field = compiled.field
        wanted = target.type
        if FieldType.ANY in (value_type, wanted) or value_type == wanted:
            return
        source = compiled.describe()
        if value_type is FieldType.LIST:
            fix = 'add `join: ", "`' if wanted is FieldType.STRING else "map one element"
            self.add(Severity.ERROR, field, f"target is {wanted}; {source} gives a list: {fix}")
        elif value_type is FieldType.OBJECT or wanted in (FieldType.LIST, FieldType.OBJECT):
            self.add(Severity.ERROR, field, f"target is {wanted}; {source} gives {value_type}")
        elif wanted is FieldType.STRING:
            return  # numbers, dates and yes/no are written as text
        elif value_type is FieldType.STRING:
            fix = {
                FieldType.DECIMAL: "parse_decimal",
                FieldType.INTEGER: "to_integer",
                FieldType.BOOLEAN: "to_boolean",
                FieldType.DATE: "parse_date",
                FieldType.DATETIME: "parse_datetime",
            }[wanted]
            self.add(
                Severity.WARNING,
                field,
                f"target is {wanted}; {source} gives text: add `{fix}` or text that does not "
                "read as one fails the record",
            )
        elif value_type in _NUMBERS and wanted in _NUMBERS:
            if wanted is FieldType.INTEGER:
                self.add(
                    Severity.WARNING,
                    field,
                    f"target is a whole number; {source} may have decimals: add `round: 0`",
                )
        else:
            self.add(Severity.ERROR, field, f"target is {wanted}; {source} gives {value_type}")

    def check_length(self, compiled: CompiledRule, longest: int | None, target: FieldSpec) -> None:
        limit = target.max_length
        if limit is None or target.type is not FieldType.STRING or longest is None:
            return
        if longest <= limit or compiled.rule.overflow is Overflow.TRUNCATE:
            return
        field = compiled.field
        if compiled.rule.const is not UNSET:
            self.add(
                Severity.ERROR,
                field,
                f"target field {field} is {limit} characters; the constant is {longest}: "
                "shorten it",
            )
            return
        origin = f"source {compiled.source.text}" if compiled.source else "the value"
        if target.key:
            self.add(
                Severity.WARNING,
                field,
                f"target field {field} is {limit} characters and the target finds its records "
                f"by it; {origin} may be {longest}: a longer value fails its record (do not "
                "truncate a key: two records could become one)",
            )
            return
        self.add(
            Severity.WARNING,
            field,
            f"target field {field} is {limit} characters; {origin} may be {longest}: add "
            f"`truncate: {limit}` or the record fails",
        )

    def check_required(self, rules: tuple[CompiledRule, ...], written: set[str]) -> None:
        mapped = {compiled.field: compiled for compiled in _flatten(rules)}
        whole = [field for field, compiled in mapped.items() if compiled.rule.each is None]
        for spec in self.target:
            path = spec.path
            if not spec.required or path in mapped or path in written:
                continue
            if any(path.startswith(other + ".") for other in whole):
                continue  # an enclosing object is mapped as a whole
            if any(other.startswith(path + ".") for other in mapped):
                continue  # the object is built field by field
            parent = path.rpartition(".")[0]
            if parent and not any(other.startswith(parent + ".") for other in mapped):
                continue  # the enclosing object is not built at all
            self.add(
                Severity.ERROR,
                path,
                f"required target field {path} is not mapped: add `{path.rpartition('.')[2]}: "
                "{from: ...}` or a `const`",
            )


def written_fields(rules: Iterable[FieldRule], prefix: str = "") -> Iterable[str]:
    """Every target field a mapping writes a rule for, named as issues name them
    (`lines[].sku`)."""
    for rule in rules:
        yield prefix + rule.target
        yield from written_fields(rule.fields, f"{prefix}{rule.target}[].")


def _flatten(rules: Iterable[CompiledRule]) -> Iterable[CompiledRule]:
    for compiled in rules:
        yield compiled
        yield from _flatten(compiled.elements)


def _makes_upper(compiled: CompiledRule) -> bool:
    const = compiled.rule.const
    if isinstance(const, str) and const == const.upper():
        return True
    return any(step.name in ("upper", "country_code", "dutch_postcode") for step in compiled.steps)


def _type_of(value: Any) -> FieldType:
    if isinstance(value, bool):
        return FieldType.BOOLEAN
    if isinstance(value, int):
        return FieldType.INTEGER
    if isinstance(value, float | Decimal):
        return FieldType.DECIMAL
    if isinstance(value, str):
        return FieldType.STRING
    if isinstance(value, list):
        return FieldType.LIST
    if isinstance(value, dict):
        return FieldType.OBJECT
    return FieldType.ANY


def _close(path: str, schema: RecordSchema) -> str:
    matches = difflib.get_close_matches(path, list(schema.fields), n=3, cutoff=0.6)
    return f": did you mean {', '.join(matches)}?" if matches else ""


__all__ = ["validate", "written_fields"]
