"""Stock calculations over the warehouses of one SKU."""

from __future__ import annotations

from decimal import Decimal

import pytest

from koppel.flows.stock import stock_quantity

LEVELS = [
    {"on_hand": Decimal(10), "reserved": Decimal(3), "incoming": Decimal(5)},
    {"on_hand": Decimal("2.5"), "reserved": Decimal(4), "incoming": Decimal(0)},
]


@pytest.mark.parametrize(
    ("calculation", "expected"),
    [("on_hand", Decimal("12.5")), ("available", Decimal("5.5")), ("economic", Decimal("10.5"))],
)
def test_calculations_sum_the_warehouses(calculation: str, expected: Decimal) -> None:
    assert stock_quantity(LEVELS, calculation) == expected


def test_over_reserved_stock_stays_negative() -> None:
    assert stock_quantity(LEVELS[1:], "available") == Decimal("-1.5")


def test_no_warehouse_is_zero() -> None:
    assert stock_quantity([], "economic") == 0


def test_unknown_calculation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stock calculation 'free'"):
        stock_quantity(LEVELS, "free")
