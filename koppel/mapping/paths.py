"""Source paths (`a.b`, `a[0].b`, `a[-1]`, `lines[].sku`) and dotted target paths.

Paths are parsed once when a mapping is compiled; reading a record then only walks a tuple of
steps. A missing key, an index out of range or a step into the wrong kind of value reads as None
(the field is absent), so records with optional parts never fail on a read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Reader = Callable[[Any], Any]

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[-?\d*\])*)")
_INDEX = re.compile(r"\[(-?\d*)\]")


class PathSyntaxError(ValueError):
    """A path that cannot be parsed; the message says what is wrong with it."""


@dataclass(frozen=True)
class SourcePath:
    """A parsed source path. `steps` holds keys (str), indexes (int) and `None` for `[]` (each)."""

    text: str
    steps: tuple[str | int | None, ...]

    @property
    def schema_path(self) -> str:
        """The path as RecordSchema spells it: every index becomes `[]` (`prices[].amount`)."""
        return _INDEX.sub("[]", self.text)

    @property
    def yields_list(self) -> bool:
        return None in self.steps

    def reader(self) -> Reader:
        return _reader(self.steps)


def parse_source_path(text: str) -> SourcePath:
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("a path must be a non-empty text such as `name` or `lines[].sku`")
    steps: list[str | int | None] = []
    for part in text.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise PathSyntaxError(
                f"cannot read path {text!r} at {part!r}: use `a.b`, `a[0].b` or `a[].b`"
            )
        steps.append(match.group(1))
        for index in _INDEX.findall(match.group(2)):
            steps.append(int(index) if index else None)
    return SourcePath(text=text, steps=tuple(steps))


def parse_target_path(text: str) -> tuple[str, ...]:
    """Target paths are dotted keys only: lists are built with `each` rules, not with indexes."""
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("a target field name must be a non-empty text")
    parts = tuple(text.split("."))
    if any(not part or "[" in part or "]" in part for part in parts):
        raise PathSyntaxError(
            f"target field {text!r} must be dotted keys such as `billing_address.city`; "
            "build lists with an `each` rule"
        )
    return parts


def _reader(steps: tuple[str | int | None, ...]) -> Reader:
    if len(steps) == 1 and isinstance(steps[0], str):
        # Most paths are one key: read without the loop (runs for every field of every record).
        only = steps[0]

        def read_key(value: Any) -> Any:
            return value.get(only) if isinstance(value, dict) else None

        return read_key
    if all(isinstance(step, str) for step in steps):
        keys = tuple(str(step) for step in steps)

        def read_keys(value: Any) -> Any:
            for key in keys:
                if not isinstance(value, dict):
                    return None
                value = value.get(key)
            return value

        return read_keys

    def read(value: Any, position: int = 0) -> Any:
        for index in range(position, len(steps)):
            step = steps[index]
            if step is None:
                if not isinstance(value, list):
                    return None
                return [read(item, index + 1) for item in value]
            if isinstance(step, int):
                if not isinstance(value, list) or not -len(value) <= step < len(value):
                    return None
                value = value[step]
            else:
                if not isinstance(value, dict):
                    return None
                value = value.get(step)
        return value

    return read


def write_path(target: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = target
    for key in parts[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[parts[-1]] = value


def delete_path(target: dict[str, Any], parts: tuple[str, ...]) -> None:
    node: Any = target
    for key in parts[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


__all__ = [
    "PathSyntaxError",
    "Reader",
    "SourcePath",
    "delete_path",
    "parse_source_path",
    "parse_target_path",
    "write_path",
]
