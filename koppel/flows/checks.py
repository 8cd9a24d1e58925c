"""Rules a flow checks on a record before it is sent, each failing with record, field and rule.

Both directions of the products flow use them: an EAN/GTIN with a wrong check digit, a SKU Parts
Pim cannot take, and prices where only one of excl./incl. VAT is known.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

GTIN_LENGTHS = (8, 12, 13, 14)
PARTS_PIM_SKU = re.compile(r"\d{1,20}")
CENTS = Decimal("0.01")


def gtin_problem(code: str) -> str | None:
    """Why `code` is not a valid EAN/GTIN (8, 12, 13 or 14 digits, GS1 check digit), or None."""
    if not code.isdigit() or len(code) not in GTIN_LENGTHS:
        return f"{code!r} is not an EAN/GTIN: it must be 8, 12, 13 or 14 digits"
    digits = [int(d) for d in reversed(code[:-1])]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits))
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


__all__ = ["GTIN_LENGTHS", "complete_prices", "gtin_problem", "parts_pim_sku_problem"]
