"""Checks a flow makes before sending: EAN/GTIN check digits, Parts Pim SKUs, VAT prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from koppel.flows.checks import complete_prices, gtin_problem, parts_pim_sku_problem


@pytest.mark.parametrize("code", ["8712345678906", "96385074", "036000291452", "10012345678902"])
def test_valid_gtins_pass(code: str) -> None:
    assert gtin_problem(code) is None


def test_wrong_check_digit_names_the_expected_one() -> None:
    assert gtin_problem("8712345678900") == "'8712345678900' has a wrong check digit (expected 6)"


@pytest.mark.parametrize("code", ["871234567890", "87123456789061", "ABC12345", "123"])
def test_wrong_shapes_fail(code: str) -> None:
    problem = gtin_problem(code)
    assert problem is not None
    assert code in problem


def test_parts_pim_sku_takes_digits_only() -> None:
    assert parts_pim_sku_problem("00123") is None
    problem = parts_pim_sku_problem("AB-12")
    assert problem is not None and problem.startswith("must contain only digits for Parts Pim")
    assert parts_pim_sku_problem("1" * 21) is not None
    assert parts_pim_sku_problem("") is not None


def test_missing_price_follows_from_the_rate() -> None:
    assert complete_prices(None, Decimal("60.50"), Decimal(21)) == (
        Decimal("50.00"),
        Decimal("60.50"),
    )
    assert complete_prices(Decimal("37.67"), None, Decimal(9)) == (
        Decimal("37.67"),
        Decimal("41.06"),
    )


def test_prices_stay_as_they_are_without_a_rate_or_when_both_are_known() -> None:
    assert complete_prices(Decimal(1), None, None) == (Decimal(1), None)
    assert complete_prices(Decimal(1), Decimal(5), Decimal(21)) == (Decimal(1), Decimal(5))
