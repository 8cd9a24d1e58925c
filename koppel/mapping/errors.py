"""Errors and findings of the datamapper.

A mapping problem is always reported with the record, the field and the rule, so a user can fix
the mapping or the data without reading code (bad input gets a clear error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from koppel.errors import ErrorCategory, KoppelError


class MappingError(KoppelError):
    """The only exception the mapper raises while mapping a record.

    `record_key` is None for problems of the mapping itself (found when it is loaded).
    """

    def __init__(self, field: str, rule: str, record_key: str | None = None) -> None:
        self.record_key = record_key
        self.category = ErrorCategory.CONFIGURATION if record_key is None else ErrorCategory.RECORD
        self.field = field
        self.rule = rule
        prefix = f"{record_key}: " if record_key is not None else ""
        super().__init__(f"{prefix}field {field}: {rule}")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class MappingIssue:
    """One finding of `validate`: an error stops the mapping from being used, a warning does not."""

    severity: Severity
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.field}: {self.message}"


class InvalidMappingError(MappingError):
    """A mapping that cannot be compiled; carries every error found, not only the first."""

    def __init__(self, issues: Sequence[MappingIssue]) -> None:
        self.issues = tuple(issues)
        first = self.issues[0]
        rest = "".join(f"\n  {issue}" for issue in self.issues[1:])
        super().__init__(first.field, first.message + rest)


@dataclass(frozen=True)
class FieldWarning:
    """Something the mapper changed or noticed in one field of one record (e.g. a truncation)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


__all__ = ["FieldWarning", "InvalidMappingError", "MappingError", "MappingIssue", "Severity"]
