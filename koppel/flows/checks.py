"""Rules a flow checks on a record before it is sent, each failing with record, field and rule.

Both directions of the products flow use them: an EAN/GTIN with a wrong check digit, a SKU Parts
Pim cannot take, and prices where only one of excl./incl. VAT is known. The flows to AccountView
also refuse values that are surely wrong in the books (negative or missing prices, order lines
without a quantity, negative stock), each unless a setting allows it; every canonical record
loses its control characters. docs/flows.md, "Values Koppel refuses", lists the rules.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

GTIN_LENGTHS = (8, 12, 13, 14)
PARTS_PIM_SKU = re.compile(r"\d{1,20}")
CENTS = Decimal("0.01")


def gtin_problem(code: str) -> str | None:
    """Why `code` is not a valid EAN/GTIN (8, 12, 13 or 14 digits, GS1 check digit), or None."""
    if not code.isdigit() or len(code) not in GTIN_LENGTHS:
        return f"{code!r} is not an EAN/GTIN: it must be 8, 12, 13 or 14 digits"
    body = code[-2::-1]  # the digits before the check digit, the last one first (weight 3)
    total = 3 * sum(map(int, body[0::2])) + sum(map(int, body[1::2]))
    expected = (10 - total % 10) % 10
    if int(code[-1]) != expected:
        return f"{code!r} has a wrong check digit (expected {expected})"
    return None


def parts_pim_sku_problem(sku: str) -> str | None:
    """Why Parts Pim would refuse `sku` (digits only, 1 to 20), or None."""
    if PARTS_PIM_SKU.fullmatch(sku):
        return None
    return (
        "must contain only digits for Parts Pim (1 to 20 digits); transform it in the flow's "
        "mapping, e.g. `sku: {from: sku, transform: [digits_only]}`"
    )


def complete_prices(
    excl: Decimal | None, incl: Decimal | None, vat_rate: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """Both prices when one of them and the VAT rate are known (half up to cents, as invoices)."""
    if vat_rate is None:
        return excl, incl
    factor = 1 + vat_rate / 100
    if excl is None and incl is not None:
        excl = (incl / factor).quantize(CENTS, rounding=ROUND_HALF_UP)
    elif incl is None and excl is not None:
        incl = (excl * factor).quantize(CENTS, rounding=ROUND_HALF_UP)
    return excl, incl


KEPT_CONTROLS = frozenset("\t\n\r")
"""Control characters that text may hold (tabs and line breaks); every other one (NUL, BEL,
ESC, DEL, C1) is removed, as no field of either system means anything by them."""

_REMOVED = re.compile(
    "["
    + "".join(
        re.escape(chr(code))
        for code in (*range(0x20), *range(0x7F, 0xA0))
        if chr(code) not in KEPT_CONTROLS
    )
    + "]"
)
"""Unicode's control characters (category Cc, which is exactly U+0000-U+001F and U+007F-U+009F)
but the kept ones: one search in C per text that is not printable (a text with a line break),
not a look-up per character."""


def without_controls(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """`value` with the control characters removed from every text in it, and the paths of the
    fields that had any (`name`, `lines[0].description`). A value without any is returned as
    it is: the look for them allocates nothing, the copy and the paths are made only when a
    text has one (this ran for every field of every record)."""
    if not _has_removed(value):
        return value, []
    return _cleaned(value, path)


def _has_removed(value: Any) -> bool:
    """Whether any text in `value` has a control character to remove. Nested dicts and lists
    wait on a stack rather than costing a call each (a product has a dozen of them)."""
    pending = [value]
    while pending:
        node = pending.pop()
        kind = type(node)
        if kind is dict:  # plain dicts and lists first: the ABC check of Mapping is slow
            items: Any = node.values()
        elif kind is list:
            items = node
        elif isinstance(node, str):  # the value itself, or a text of a str subclass (an enum)
            if not node.isprintable() and _REMOVED.search(node):
                return True
            continue
        elif isinstance(node, list):
            items = node
        elif isinstance(node, dict | Mapping):
            items = node.values()
        else:
            continue
        for item in items:
            kind = type(item)
            if kind is str:
                if not item.isprintable() and _REMOVED.search(item):
                    return True
            elif kind not in _LEAVES:
                pending.append(item)
    return False


_LEAVES = frozenset({int, float, bool, Decimal, type(None), dt.date, dt.datetime})
"""Values that hold no text: nothing to look into."""


def _cleaned(value: Any, path: str) -> tuple[Any, list[str]]:
    if isinstance(value, str):
        if value.isprintable() or not _REMOVED.search(value):
            return value, []
        return _REMOVED.sub("", value), [path or "(value)"]
    if isinstance(value, Mapping):
        cleaned: dict[str, Any] = {}
        paths: list[str] = []
        for key, item in value.items():
            cleaned[key], found = _cleaned(item, f"{path}.{key}" if path else str(key))
            paths += found
        return cleaned, paths
    if isinstance(value, list):
        items: list[Any] = []
        paths = []
        for index, item in enumerate(value):
            clean, found = _cleaned(item, f"{path}[{index}]")
            items.append(clean)
            paths += found
        return items, paths
    return value, []


def allowed_by(setting: str) -> str:
    """The end of a refusal that a setting can lift."""
    return f"(the flow setting {setting}: true allows it)"


def price_problem(
    value: Decimal | None, *, allow_negative: bool, allow_zero: bool = True
) -> str | None:
    """Why a price must not reach AccountView, or None: negative (a sale that pays the buyer),
    or missing or zero (an article sold for nothing) when that is not allowed."""
    if value is None or value == 0:
        if allow_zero:
            return None
        shown = "is empty" if value is None else "is 0"
        return f"{shown}: the article would be sold for 0.00 {allowed_by('allow_zero_prices')}"
    if value < 0 and not allow_negative:
        return f"{value} is negative {allowed_by('allow_negative_prices')}"
    return None


__all__ = [
    "GTIN_LENGTHS",
    "KEPT_CONTROLS",
    "allowed_by",
    "complete_prices",
    "gtin_problem",
    "parts_pim_sku_problem",
    "price_problem",
    "without_controls",
]
