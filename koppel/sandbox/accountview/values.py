"""Field values: from what clients post to what is stored, and from storage to JSON.

Public clients post loosely (numbers for character fields, "TRUE" for logicals, dates with a Z),
so input is read leniently and checked strictly against the dictionary.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.dictionary import DATE_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldDef

_DATETIME = re.compile(
    r"^\s*(?:\{\^)?\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d+)?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*\}?\s*$",
    re.IGNORECASE,
)
_LOCAL = ZoneInfo(assumptions.TIMEZONE)
_TRUE = frozenset({"true", "t", ".t.", "1", "yes", "y"})
_FALSE = frozenset({"false", "f", ".f.", "0", "no", "n", ""})


class ValueRuleError(ValueError):
    """A value breaks a rule of its field; the message is the rule, e.g. 'must be a number'."""


def parse_datetime(text: str) -> str | None:
    """`{^2020-01-01 12:00:00}`, `2020-1-1`, `2021-07-02T10:39:05.276+02:00` -> local time
    `2020-01-01T12:00:00`: a value with a Z or an offset is converted to the installation's local
    time (assumptions.TIMEZONE); one without is local time already."""
    match = _DATETIME.match(text)
    if match is None:
        return None
    *parts, zone = match.groups()
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in parts)
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    if zone is not None:
        moment = moment.replace(tzinfo=_zone(zone)).astimezone(_LOCAL).replace(tzinfo=None)
    return moment.strftime(assumptions.DATETIME_FORMAT)


def _zone(text: str) -> timezone:
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def coerce(field: FieldDef, raw: Any) -> Any:
    """The stored value of a posted one; ValueRuleError names the rule it breaks."""
    if field.type in TEXT_TYPES:
        return _text(field, raw)
    if field.type in NUMBER_TYPES or field.type == "I":
        return _number(field, raw)
    if field.type == "L":
        return _logical(raw)
    if field.type in DATE_TYPES:
        return _date(field, raw)
    raise ValueRuleError(f"has unknown type {field.type}")


def _text(field: FieldDef, raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueRuleError("must be text")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = str(raw).rstrip()
    if field.type == "C" and len(text) > field.length:
        raise ValueRuleError(f"is {len(text)} characters long, at most {field.length} allowed")
    if field.upper and text != text.upper():
        raise ValueRuleError("must be upper case")
    return text


def _number(field: FieldDef, raw: Any) -> int | float:
    if raw is None or raw == "":
        return 0
    if isinstance(raw, bool):
        raise ValueRuleError("must be a number")
    try:
        value = float(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ValueRuleError("must be a number") from None
    if not isinstance(value, int | float) or value != value:
        raise ValueRuleError("must be a number")
    if field.type == "I":
        if not float(value).is_integer():
            raise ValueRuleError("must be a whole number")
        return int(value)
    if field.type == "N" and len(str(abs(int(value)))) > field.length:
        raise ValueRuleError(f"has more than {field.length} digits")
    return float(value)


def _logical(raw: Any) -> int:
    if isinstance(raw, bool):
        return int(raw)
    if raw is None:
        return 0
    text = str(raw).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise ValueRuleError("must be true or false")


def _date(field: FieldDef, raw: Any) -> str:
    if raw is None or raw == "":
        return ""
    parsed = parse_datetime(raw) if isinstance(raw, str) else None
    if parsed is None:
        raise ValueRuleError("must be a date like 2021-07-02T10:39:05")
    return parsed[:10] + "T00:00:00" if field.type == "D" else parsed


def json_converter(field: FieldDef) -> Callable[[Any], Any]:
    """What makes the JSON value of a field's stored one (text trimmed, numbers as numbers,
    logicals as booleans), its type decided once: a read renders every field of every row."""
    if field.type == "L":
        return bool
    if field.type == "I":
        return _json_integer
    if field.type in NUMBER_TYPES:
        return _json_number
    return _json_text


def _json_integer(stored: Any) -> int:
    return int(stored or 0)


def _json_number(stored: Any) -> float:
    return float(stored or 0)


def _json_text(stored: Any) -> str:
    return "" if stored is None else str(stored)


def sql_type(field: FieldDef) -> str:
    if field.type in NUMBER_TYPES:
        return "REAL NOT NULL DEFAULT 0"
    if field.type in ("I", "L"):
        return "INTEGER NOT NULL DEFAULT 0"
    return "TEXT NOT NULL DEFAULT ''"


__all__ = ["ValueRuleError", "coerce", "json_converter", "parse_datetime", "sql_type"]
