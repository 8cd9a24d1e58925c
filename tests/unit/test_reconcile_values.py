"""How a reconciliation compares a value the flow would send with the one the target holds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from koppel.services.reconcile import same, shown


@pytest.mark.parametrize(
    ("sent", "held"),
    [
        (Decimal("12.5"), "12.50"),
        (Decimal("12.50"), 12.5),
        (7, Decimal("7.000")),
        (None, ""),
        ("", None),
        ("  Regenjas ", "Regenjas"),
        ("EUR", "EUR"),
    ],
)
def test_the_same_value_in_another_form_is_no_drift(sent: object, held: object) -> None:
    assert same(sent, held)


@pytest.mark.parametrize(
    ("sent", "held"),
    [
        (Decimal("12.5"), "12.51"),
        (None, "0"),
        ("Regenjas", "regenjas"),
        ("EUR", None),
        (True, "1"),
    ],
)
def test_another_value_is_drift(sent: object, held: object) -> None:
    assert not same(sent, held)


def test_values_are_shown_as_people_read_them() -> None:
    assert shown(Decimal("18.550")) == "18.55"
    assert shown(Decimal("1E+2")) == "100"
    assert shown(2.0) == "2"
    assert shown("  ") is None
    assert shown(date(2026, 12, 1)) == "2026-12-01"
    assert shown("AB-12") == "AB-12"
