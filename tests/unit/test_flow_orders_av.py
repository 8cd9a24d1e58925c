"""Orders Parts Pim -> AccountView: price basis, address comparison, settings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from koppel.flows.orders_to_accountview import _on_basis, _same_address
from koppel.flows.settings import OrderSettings, retrieve_from_date


def test_prices_convert_between_incl_and_excl_vat_with_four_decimals() -> None:
    assert _on_basis(Decimal("45.58"), Decimal(21), includes_vat=True, wanted_incl=False) == (
        Decimal("37.6694")
    )
    assert _on_basis(Decimal("10"), Decimal(9), includes_vat=False, wanted_incl=True) == Decimal(
        "10.9000"
    )
    same = _on_basis(Decimal("12.34"), Decimal(21), includes_vat=False, wanted_incl=False)
    assert same == Decimal("12.34")


def test_addresses_differ_only_in_more_than_spacing_and_case() -> None:
    billing = {
        "street": "Dorpsstraat",
        "house_number": "12",
        "postcode": "3511 AB",
        "city": "Utrecht",
    }
    assert _same_address(billing, {**billing, "postcode": "3511ab", "city": "UTRECHT"})
    assert not _same_address(billing, {**billing, "house_number": "14"})
    assert _same_address(None, {})


def test_settings_defaults_and_clear_errors() -> None:
    settings = OrderSettings()
    assert settings.employee_number == "999999"
    assert settings.default_customer is None and not settings.default_customer_always
    assert "cancelled" not in settings.order_statuses
    parsed = OrderSettings.model_validate({"retrieve_from": "2024-03-01", "page_size": 50})
    assert retrieve_from_date(parsed) == date(2024, 3, 1)
    with pytest.raises(ValueError, match="shipping_article_code"):
        OrderSettings.model_validate({"shipping_article_code": "X" * 16})
