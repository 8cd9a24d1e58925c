"""Checks a flow makes before sending: EAN/GTIN check digits, Parts Pim SKUs, VAT prices,
control characters, the prices AccountView must not get, and reasons that stay readable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from koppel.flows.checks import (
    complete_prices,
    gtin_problem,
    parts_pim_sku_problem,
    price_problem,
    without_controls,
)
from koppel.flows.pipeline import EXCERPT_TEXT_LIMIT, excerpt, shorten_quoted


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


def test_control_characters_are_removed_and_their_fields_named() -> None:
    record = {
        "name": "Rem\x00blok\x07\x1b[0m",
        "lines": [{"description": "tab\there\nnext line"}, {"description": "\x9fC1 \x7fDEL"}],
        "bidi": "\u202eevil\u202c 🚗",
        "price": Decimal("1.00"),
    }
    clean, fields = without_controls(record)
    assert clean == {
        "name": "Remblok[0m",
        "lines": [{"description": "tab\there\nnext line"}, {"description": "C1 DEL"}],
        "bidi": "\u202eevil\u202c 🚗",
        "price": Decimal("1.00"),
    }
    assert fields == ["name", "lines[1].description"]


def test_a_record_without_control_characters_is_returned_as_it_is() -> None:
    """The look for control characters copies nothing; a record that has none comes back
    itself, and one deep in a list of a list is still found."""
    record = {
        "name": "Remblok",
        "lines": [{"description": "tab\there\nnext line", "tags": ["a", None, 3, True]}],
        "price": Decimal("1.00"),
    }
    clean, fields = without_controls(record)
    assert clean is record
    assert fields == []
    nested = {"lines": [{"tags": ["ok", ["deep\x00"]]}]}
    assert without_controls(nested) == (
        {"lines": [{"tags": ["ok", ["deep"]]}]},
        ["lines[0].tags[1][0]"],
    )


def test_an_excerpt_bounds_texts_and_lists_and_keeps_only_what_json_holds() -> None:
    long = "x" * (EXCERPT_TEXT_LIMIT + 10)
    record = {
        "name": long,
        "price": Decimal("1.20"),
        "ok": True,
        "ids": list(range(60)),
        "lines": [{"text": long, 7: None}],
        "when": (1, 2),
    }
    assert excerpt(record) == {
        "name": "x" * EXCERPT_TEXT_LIMIT + "…",
        "price": "1.20",
        "ok": True,
        "ids": list(range(50)),
        "lines": [{"text": "x" * EXCERPT_TEXT_LIMIT + "…", "7": None}],
        "when": "(1, 2)",
    }


def test_what_needs_no_cutting_is_its_own_excerpt() -> None:
    """An excerpt is serialised at once: a container with nothing to change is not copied, and
    one that has something keeps the containers inside it that have not."""
    clean = {"name": "Remschijf", "ids": [1, 2], "fields": {"gewicht_kg": "3.74"}, "ok": None}
    assert excerpt(clean) is clean
    long = "x" * (EXCERPT_TEXT_LIMIT + 1)
    record = {**clean, "description": long}
    cut = excerpt(record)
    assert cut == {**clean, "description": "x" * EXCERPT_TEXT_LIMIT + "…"}
    assert cut is not record and cut["fields"] is clean["fields"] and cut["ids"] is clean["ids"]
    assert record["description"] == long
    nested = [{"a": 1}, {"b": Decimal("2.50")}]
    assert excerpt(nested) == [{"a": 1}, {"b": "2.50"}] and excerpt(nested)[0] is nested[0]
    assert excerpt({1: "a"}) == {"1": "a"}
    assert len(excerpt(list(range(51)))) == 50


def test_prices_that_must_not_reach_the_books() -> None:
    assert price_problem(Decimal("-1"), allow_negative=False) == (
        "-1 is negative (the flow setting allow_negative_prices: true allows it)"
    )
    assert price_problem(Decimal("-1"), allow_negative=True) is None
    assert price_problem(None, allow_negative=False, allow_zero=False) == (
        "is empty: the article would be sold for 0.00 "
        "(the flow setting allow_zero_prices: true allows it)"
    )
    assert price_problem(Decimal(0), allow_negative=False, allow_zero=False) is not None
    assert price_problem(Decimal(0), allow_negative=False) is None  # a free order line
    assert price_problem(Decimal("0.01"), allow_negative=False, allow_zero=False) is None


def test_a_long_quoted_value_is_cut_but_the_field_and_the_rule_stay() -> None:
    reason = "SKU '" + "x" * 10_000 + "': field ART_CODE: is 10000 characters; at most 15"
    assert shorten_quoted(reason) == (
        "SKU '"
        + "x" * 60
        + "…' (10000 characters): field ART_CODE: is 10000 characters; at most 15"
    )
    short = "order 'WEB-1': field lines.sku: product(s) not in AccountView: SKU '1', SKU '2'"
    assert shorten_quoted(short) == short
