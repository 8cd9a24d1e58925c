"""Mappings as data: parse them from YAML (or dicts), merge a flow's override onto a default.

The document is kept as written (rules in order, duplicates kept) so `validate` can report what
the author wrote, e.g. a target field mapped twice, which a plain dict would silently hide.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import yaml

from koppel.mapping.errors import InvalidMappingError, MappingIssue, Severity


class _Unset:
    """Marks `const`/`default` as not written (None is a valid constant)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class Policy(StrEnum):
    """When a field is written: on every write, or only when the target record is created."""

    ALWAYS = "always"
    CREATE = "create"


class Overflow(StrEnum):
    """What happens to text longer than the target field holds."""

    FAIL = "fail"
    TRUNCATE = "truncate"


@dataclass(frozen=True)
class FieldRule:
    """How one target field gets its value: exactly one of `source`, `expr`, `const`, `each`."""

    target: str
    source: str | None = None
    expr: str | None = None
    const: Any = UNSET
    each: str | None = None
    fields: tuple[FieldRule, ...] = ()
    transform: tuple[Any, ...] = ()
    default: Any = UNSET
    on: Policy = Policy.ALWAYS
    overflow: Overflow = Overflow.FAIL

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.source is not None:
            data["from"] = self.source
        if self.expr is not None:
            data["expr"] = self.expr
        if self.const is not UNSET:
            data["const"] = self.const
        if self.each is not None:
            data["each"] = self.each
            data["fields"] = {rule.target: rule.to_data() for rule in self.fields}
        if self.transform:
            data["transform"] = list(self.transform)
        if self.default is not UNSET:
            data["default"] = self.default
        if self.on is not Policy.ALWAYS:
            data["on"] = str(self.on)
        if self.overflow is not Overflow.FAIL:
            data["overflow"] = str(self.overflow)
        return data


@dataclass(frozen=True)
class MappingSpec:
    """A mapping document. `remove` is only meaningful in an override (see `merge_mappings`)."""

    fields: tuple[FieldRule, ...]
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    name: str = ""

    def rule(self, target: str) -> FieldRule | None:
        return next((rule for rule in self.fields if rule.target == target), None)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.name:
            data["name"] = self.name
        if self.tables:
            data["tables"] = {name: dict(table) for name, table in self.tables.items()}
        data["fields"] = {rule.target: rule.to_data() for rule in self.fields}
        if self.remove:
            data["remove"] = list(self.remove)
        return data


_RULE_KEYS: Final = frozenset(
    {"from", "expr", "const", "each", "fields", "transform", "default", "on", "overflow"}
)
_DOCUMENT_KEYS: Final = frozenset({"name", "fields", "tables", "remove"})


class _YamlMap(dict[Any, Any]):
    """A YAML mapping that remembers keys written twice (PyYAML keeps only the last one)."""

    duplicates: list[tuple[Any, Any]]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads `on`, `no`, `yes` as booleans,
    which would turn the rule key `on:` and the country code `NO` into True and False."""


_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _YamlMap:
    result = _YamlMap()
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        value = loader.construct_object(value_node, deep=True)
        if key in result:
            result.duplicates.append((key, value))
        else:
            result[key] = value
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_mapping(source: str | Mapping[str, Any]) -> MappingSpec:
    """A mapping from YAML text or an already loaded dict; InvalidMappingError lists every fault."""
    if isinstance(source, str):
        try:
            data = yaml.load(source, Loader=_Loader)  # _Loader is a SafeLoader
        except yaml.YAMLError as error:
            raise InvalidMappingError(
                [MappingIssue(Severity.ERROR, "(document)", f"is not valid YAML: {error}")]
            ) from None
    else:
        data = source
    issues: list[MappingIssue] = []
    spec = _parse_document(data if data is not None else {}, issues)
    if issues:
        raise InvalidMappingError(issues)
    return spec


def parse_value(text: str, field: str, what: str) -> Any:
    """One YAML value as a mapping document reads it (YAML 1.2 booleans: `NO` stays text),
    e.g. a transform step `{truncate: 40}` or a constant typed into a form."""
    try:
        return _plain(yaml.load(text, Loader=_Loader))  # _Loader is a SafeLoader
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidMappingError(
            [MappingIssue(Severity.ERROR, field, f"{what} is not valid YAML ({problem}): {text}")]
        ) from None


def load_mapping(path: Path) -> MappingSpec:
    spec = parse_mapping(path.read_text(encoding="utf-8"))
    return spec if spec.name else replace(spec, name=path.stem)


def dump_mapping(spec: MappingSpec) -> str:
    return yaml.safe_dump(spec.to_data(), sort_keys=False, allow_unicode=True)


def _error(issues: list[MappingIssue], where: str, message: str) -> None:
    issues.append(MappingIssue(Severity.ERROR, where, message))


def _parse_document(data: Any, issues: list[MappingIssue]) -> MappingSpec:
    if not isinstance(data, Mapping):
        _error(issues, "(document)", "must be a mapping with `fields:`")
        return MappingSpec(fields=())
    for key in data:
        if key not in _DOCUMENT_KEYS:
            _error(issues, str(key), f"unknown key (known: {', '.join(sorted(_DOCUMENT_KEYS))})")
    tables: dict[str, dict[str, Any]] = {}
    raw_tables = data.get("tables") or {}
    if not isinstance(raw_tables, Mapping):
        _error(issues, "tables", "must map table names to {from-value: to-value} tables")
    else:
        for name, table in raw_tables.items():
            if not isinstance(table, Mapping):
                _error(issues, f"tables.{name}", "must be a {from-value: to-value} mapping")
            else:
                tables[str(name)] = {str(key): value for key, value in table.items()}
    remove = data.get("remove") or []
    if not isinstance(remove, list) or not all(isinstance(item, str) for item in remove):
        _error(issues, "remove", "must be a list of target field names")
        remove = []
    name = data.get("name") or ""
    return MappingSpec(
        fields=_parse_fields(data.get("fields") or {}, "", issues),
        tables=tables,
        remove=tuple(remove),
        name=str(name),
    )


def _parse_fields(raw: Any, prefix: str, issues: list[MappingIssue]) -> tuple[FieldRule, ...]:
    if not isinstance(raw, Mapping):
        _error(issues, prefix or "fields", "must map target field names to rules")
        return ()
    pairs = list(raw.items()) + list(getattr(raw, "duplicates", []))
    return tuple(
        rule
        for target, body in pairs
        if (rule := _parse_rule(str(target), body, prefix, issues)) is not None
    )


def _parse_rule(
    target: str, body: Any, prefix: str, issues: list[MappingIssue]
) -> FieldRule | None:
    where = prefix + target
    if isinstance(body, str):
        return FieldRule(target=target, source=body)
    if not isinstance(body, Mapping):
        _error(issues, where, f"a rule is a source path or {{from: ...}}, got {body!r}")
        return None
    unknown = [str(key) for key in body if key not in _RULE_KEYS]
    if unknown:
        _error(
            issues,
            where,
            f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_RULE_KEYS))})",
        )
    kinds = [key for key in ("from", "expr", "const", "each") if key in body]
    if len(kinds) != 1:
        _error(issues, where, "needs exactly one of `from`, `expr`, `const` or `each`")
        return None
    for key in ("from", "expr", "each"):
        if key in body and not isinstance(body[key], str):
            _error(issues, where, f"`{key}` must be text, got {body[key]!r}")
            return None
    if "fields" in body and "each" not in body:
        _error(issues, where, "`fields` belongs to an `each` rule")
    transform = body.get("transform") or []
    if not isinstance(transform, list):
        transform = [transform]
    try:
        on = Policy(body.get("on", "always"))
        overflow = Overflow(body.get("overflow", "fail"))
    except ValueError:
        _error(issues, where, "`on` is create or always; `overflow` is fail or truncate")
        return None
    sub_rules: tuple[FieldRule, ...] = ()
    if "each" in body:
        sub_rules = _parse_fields(body.get("fields") or {}, f"{where}[].", issues)
        if not sub_rules:
            _error(issues, where, "an `each` rule needs `fields` for the elements")
    return FieldRule(
        target=target,
        source=body.get("from"),
        expr=body.get("expr"),
        const=_plain(body.get("const", UNSET)),
        each=body.get("each"),
        fields=sub_rules,
        transform=tuple(_plain(step) for step in transform),
        default=_plain(body.get("default", UNSET)),
        on=on,
        overflow=overflow,
    )


def _plain(value: Any) -> Any:
    """Loaded YAML as plain dicts and lists, so a rule compares equal and dumps back to YAML."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def merge_mappings(base: MappingSpec, override: MappingSpec) -> MappingSpec:
    """A flow's override on a connector's default: replace or add rules, remove, extend tables.

    A removal names a target field, or `list_field.element_field` inside an `each` rule. Naming a
    field the default does not have is an error: a typo would otherwise keep a field mapped.
    """
    issues: list[MappingIssue] = []
    fields = list(base.fields)
    for name in override.remove:
        before = len(fields)
        fields = [rule for rule in fields if rule.target != name]
        if len(fields) == before and not _remove_element_field(fields, name):
            _error(issues, name, "remove: the default mapping has no such field")
    for rule in override.fields:
        positions = [i for i, existing in enumerate(fields) if existing.target == rule.target]
        if positions:
            fields[positions[0]] = rule
        else:
            fields.append(rule)
    if issues:
        raise InvalidMappingError(issues)
    tables = {name: dict(table) for name, table in base.tables.items()}
    for name, table in override.tables.items():
        tables[name] = {**tables.get(name, {}), **table}
    return MappingSpec(fields=tuple(fields), tables=tables, name=override.name or base.name)


def _remove_element_field(fields: list[FieldRule], name: str) -> bool:
    head, _, element_field = name.partition(".")
    for index, rule in enumerate(fields):
        if rule.target == head and rule.each is not None:
            kept = tuple(sub for sub in rule.fields if sub.target != element_field)
            if len(kept) < len(rule.fields):
                fields[index] = replace(rule, fields=kept)
                return True
    return False


__all__ = [
    "UNSET",
    "FieldRule",
    "MappingSpec",
    "Overflow",
    "Policy",
    "dump_mapping",
    "load_mapping",
    "merge_mappings",
    "parse_mapping",
    "parse_value",
]
