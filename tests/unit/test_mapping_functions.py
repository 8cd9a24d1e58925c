"""Every transform function, each with a Dutch example, and argument checks at load time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import yaml

from koppel.mapping.functions import (
    CATALOGUE,
    ArgumentError,
    TransformError,
    compile_step,
    run_chain,
    split_house_number,
)

TABLES = {"betaaltermijnen": {"14": "T14", "30": "T30"}, "betaalwijzen": {"ideal": "IDEAL"}}


def run(steps: str | list[Any], value: Any, record: dict[str, Any] | None = None) -> Any:
    written = yaml.safe_load(steps) if isinstance(steps, str) else steps
    chain = [
        compile_step(raw, TABLES) for raw in (written if isinstance(written, list) else [written])
    ]
    return run_chain(chain, value, record or {})


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_example_holds(name: str) -> None:
    """The worked example in the docs is what the function really does."""
    example = CATALOGUE[name].example
    assert run(example.step, example.value, dict(example.record)) == example.result


@pytest.mark.parametrize(
    ("steps", "value", "expected"),
    [
        ("trim", "\tBout  M8\n", "Bout M8"),
        ("upper", "'s-hertogenbosch", "'S-HERTOGENBOSCH"),
        ("lower", "INFO@JANSEN.NL", "info@jansen.nl"),
        ("{truncate: 11}", "Kruiskopschroef 4x30", "Kruiskopsch"),
        ("{truncate: 40}", "kort", "kort"),
        ('{pad: {length: 8, char: "0"}}', "4711", "00004711"),
        ("{pad: [8, '.', right]}", "Bout", "Bout...."),
        ("{pad: 3}", "12345", "12345"),
        ("{replace: [ij, y]}", "Schrijfbord", "Schryfbord"),
        ("{replace: ['-']}", "06-123-456", "06123456"),
        (r"{regex_extract: ['(?P<maat>M\d+)', maat]}", "Moer M10 RVS", "M10"),
        (r"{regex_extract: ['\d{4}']}", "geen jaartal", None),
        ("{split: ','}", "rood,wit", ["rood", "wit"]),
        ("[{split: ','}, trim]", "rood, wit ,blauw", ["rood", "wit", "blauw"]),
        ("join", ["Jan", None, "de Vries"], "Jan de Vries"),
        ("{concat: ' BV'}", "Bakkerij Jansen", "Bakkerij Jansen BV"),
        ("{default: onbekend}", None, "onbekend"),
        ("{default: onbekend}", "Utrecht", "Utrecht"),
        ("digits_only", "NL-1234-56", "123456"),
        ("parse_decimal", "1.234,56", Decimal("1234.56")),
        ("parse_decimal", "1234.56", Decimal("1234.56")),
        ("parse_decimal", "1,234.56", Decimal("1234.56")),
        ("parse_decimal", "12,5", Decimal("12.5")),
        ("parse_decimal", "1.234.567", Decimal("1234567")),
        ("parse_decimal", "-7,50", Decimal("-7.50")),
        ("parse_decimal", "", None),
        ("{parse_decimal: ','}", "1.234", Decimal("1234")),
        ("parse_decimal", 12, Decimal(12)),
        ("to_integer", "42", 42),
        ("to_integer", Decimal("42.0"), 42),
        ("to_string", 999999, "999999"),
        ("to_string", True, "true"),
        ("to_boolean", "nee", False),
        ("to_boolean", "J", True),
        ("round", Decimal("2.345"), Decimal("2.35")),
        ("{round: 0}", Decimal("2.5"), Decimal("3")),
        ("{round: 1}", Decimal("-2.25"), Decimal("-2.3")),
        ("[{excl_vat: 21}, round]", Decimal("24.20"), Decimal("20.00")),
        ("[{incl_vat: 21}, round]", Decimal("19.99"), Decimal("24.19")),
        ("[{excl_vat: 9}, round]", 10, Decimal("9.17")),
        ("parse_date", "2024-12-05", dt.date(2024, 12, 5)),
        ("parse_date", "2024-12-05T10:00:00Z", dt.date(2024, 12, 5)),
        ("{parse_date: '%d/%m/%Y'}", "05/12/2024", dt.date(2024, 12, 5)),
        ("parse_datetime", "2024-12-05T10:30:00", dt.datetime(2024, 12, 5, 10, 30)),
        ("{format_date: '%d-%m-%Y'}", "2024-12-05", "05-12-2024"),
        ("{format_date: iso}", dt.datetime(2024, 12, 5, 8, 0), "2024-12-05T08:00:00"),
        ("dutch_postcode", "1234ab", "1234 AB"),
        ("dutch_postcode", " 9711 lm ", "9711 LM"),
        ("dutch_postcode", "10115", "10115"),
        ("country_code", "Nederland", "NL"),
        ("country_code", "België", "BE"),
        ("country_code", "belgie", "BE"),
        ("country_code", "Deutschland", "DE"),
        ("country_code", "Niederlande", "NL"),
        ("country_code", "Germany", "DE"),
        ("country_code", "NLD", "NL"),
        ("country_code", "deu", "DE"),
        ("country_code", "nl", "NL"),
        ("country_code", "Holland", "NL"),
        ("country_code", "Verenigd Koninkrijk", "GB"),
        ("country_code", "Frankrijk", "FR"),
        ("{lookup: betaaltermijnen}", "14", "T14"),
        ("{lookup: betaaltermijnen}", 30, "T30"),
        ("{lookup: {table: betaalwijzen, default: BANK}}", "contant", "BANK"),
        ("{split_house_number: street}", "Hoofdstraat 12a", "Hoofdstraat"),
        ("{split_house_number: number}", "Hoofdstraat 12a", "12"),
        ("{split_house_number: addition}", "Hoofdstraat 12a", "a"),
    ],
)
def test_function(steps: str, value: Any, expected: Any) -> None:
    assert run(steps, value) == expected


def test_concat_reads_other_fields_and_absent_reads_empty() -> None:
    steps = "{concat: [' - ', {from: attributes.maat}, ' ', {from: attributes.kleur}]}"
    record = {"attributes": {"maat": "XL"}}
    assert run(steps, "Werkjas", record) == "Werkjas - XL "


def test_vat_rate_from_the_record() -> None:
    assert run("[{excl_vat: {from: btw}}, round]", Decimal("109"), {"btw": "9"}) == Decimal(
        "100.00"
    )
    with pytest.raises(TransformError, match="VAT rate at btw is absent"):
        run("{excl_vat: {from: btw}}", Decimal("109"), {})


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        ("Hoofdstraat 12a", ("Hoofdstraat", "12", "a")),
        ("Hoofdstraat 12 A", ("Hoofdstraat", "12", "A")),
        ("Kerkweg 7-2", ("Kerkweg", "7", "2")),
        ("Van Speijkstraat 2 III", ("Van Speijkstraat", "2", "III")),
        ("Laan van Meerdervoort 1001 bis", ("Laan van Meerdervoort", "1001", "bis")),
        ("2e Kostverlorenkade 10 hs", ("2e Kostverlorenkade", "10", "hs")),
        ("Dorpsstraat", ("Dorpsstraat", "", "")),
        ("  Markt   5  ", ("Markt", "5", "")),
    ],
)
def test_split_house_number(address: str, parts: tuple[str, str, str]) -> None:
    assert split_house_number(address) == parts


def test_none_passes_through_and_lists_map_per_element() -> None:
    assert run("[trim, upper, {truncate: 3}]", None) is None
    assert run("digits_only", ["A-1", None, "B-22"]) == ["1", None, "22"]


@pytest.mark.parametrize(
    ("steps", "value", "message"),
    [
        ("{lookup: betaaltermijnen}", "45", "'45' is not in table betaaltermijnen .*known: 14, 30"),
        ("parse_decimal", "twaalf", "cannot read text 'twaalf' as a number"),
        ("round", "12,50", "add `parse_decimal`"),
        ("to_integer", Decimal("2.5"), "not a whole number"),
        ("country_code", "Atlantis", "not a country name"),
        ("{dutch_postcode: {strict: true}}", "10115", "not a Dutch postcode"),
        ("{parse_date: '%d-%m-%Y'}", "2024-12-05", "cannot read text '2024-12-05' as a date"),
        ("to_boolean", "misschien", "as yes/no"),
        ("upper", {"a": 1}, "expects text, got an object"),
    ],
)
def test_function_errors_name_the_value_and_the_fix(steps: str, value: Any, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        run(steps, value)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("trimm", "unknown function 'trimm': did you mean 'trim'"),
        ({"truncate": "veertig"}, "`length` must be a whole number"),
        ({"truncate": 0}, "must be at least 1"),
        ("truncate", "needs the argument `length`"),
        ({"pad": [5, "00"]}, "`char` must be one character"),
        ({"pad": {"lenght": 5}}, "has no argument 'lenght'"),
        ({"pad": [5, "0", "middle"]}, "must be one of left, right"),
        ({"regex_extract": "(unclosed"}, "does not compile"),
        ({"regex_extract": ["(a)", 2]}, "group 2 does not exist"),
        ({"lookup": "btw_codes"}, "there is no table 'btw_codes'"),
        ({"excl_vat": -1}, "must not be negative"),
        ({"excl_vat": [{"from": "a", "to": "b"}]}, "must be a value or"),
        ({"parse_date": "dd-mm-jjjj"}, "has no % codes"),
        ({"trim": 3}, "trim takes 0 argument"),
        ({"trim": 1, "upper": 2}, "a transform step is a function name"),
    ],
)
def test_bad_arguments_are_refused_at_load(step: Any, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        compile_step(step, TABLES)
