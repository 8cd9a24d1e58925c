"""The datamapper: users map data exactly how they want it and call functions to transform it.

Two stages: a get-side mapping turns a source record into a canonical model dict, a send-side
mapping turns a canonical dict into a target record. Mappings are data (YAML, see
docs/mapping.md); connectors ship defaults, flows merge overrides onto them.

Typical use::

    spec = merge_mappings(load_mapping(default_path), parse_mapping(flow_override_yaml))
    issues = validate(spec, source_schema, target_schema, tables=settings_tables)
    mapping = compile_mapping(spec, target_schema=target_schema, tables=settings_tables)
    result = apply(mapping, record, record_key="SKU 12345")   # raises only MappingError
    payload = result.values if creating else result.for_update()
"""

from koppel.mapping.document import (
    FieldRule,
    MappingSpec,
    Overflow,
    Policy,
    dump_mapping,
    load_mapping,
    merge_mappings,
    parse_mapping,
)
from koppel.mapping.engine import CompiledMapping, MappingResult, apply, compile_mapping
from koppel.mapping.errors import (
    FieldWarning,
    InvalidMappingError,
    MappingError,
    MappingIssue,
    Severity,
)
from koppel.mapping.expressions import ExpressionLimits
from koppel.mapping.functions import CATALOGUE
from koppel.mapping.preview import (
    Preview,
    preview,
    render_issues,
    render_mapping,
    render_preview,
    to_text,
)
from koppel.mapping.validation import validate, written_fields

__all__ = [
    "CATALOGUE",
    "CompiledMapping",
    "ExpressionLimits",
    "FieldRule",
    "FieldWarning",
    "InvalidMappingError",
    "MappingError",
    "MappingIssue",
    "MappingResult",
    "MappingSpec",
    "Overflow",
    "Policy",
    "Preview",
    "Severity",
    "apply",
    "compile_mapping",
    "dump_mapping",
    "load_mapping",
    "merge_mappings",
    "parse_mapping",
    "preview",
    "render_issues",
    "render_mapping",
    "render_preview",
    "to_text",
    "validate",
    "written_fields",
]
