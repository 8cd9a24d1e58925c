"""The plain evaluation of expressions gives the interpreter's result and error, every time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koppel.mapping.expressions import Expression, ExpressionError, to_json_value

MAPPINGS = sorted(Path(__file__).parents[2].glob("koppel/connectors/*/mappings/*.yaml"))
FIELDS = ["a", "b", "company_name", "contact_name", "type", "reference", "billing_address"]
EXPRESSIONS = [
    "company_name ? company_name : contact_name",
    "company_name and contact_name ? contact_name : ''",
    "$join([billing_address.street, $join([billing_address.house_number, "
    "billing_address.house_number_addition][$], '')][$], ' ')",
    "'Parts Pim order ' & reference",
    "$join((type = 'company' ? [a.first_name, a.last_name] : [b.first_name, b.last_name])[$], ' ')",
    "$trim(a) != '' ? $trim(a) : b",
    "type = 'company' ? $substringBefore(a, ' ') : $substringAfter(a, b)",
    "$contains(a, ' ') or $contains(b, a)",
    "a = b",
    "a != null",
    "[a, b, null, false][$]",
    "[a, b]",
    "(a; b)[$]",
    "a ? [a, b]",
    "$join(a, '-')",
    "$join([a, b.c], b)",
    "a.b.c & a",
    "$trim(type)",
    "a & 'x' & a & 'x' & a",
]
texts = st.one_of(
    st.sampled_from(["", " ", "x", "x y", "  a \t b\n", "company", "X Y Z"]),
    st.text(max_size=8),
    st.just("long " * 25_000),
)
scalars = st.one_of(
    st.none(),
    texts,
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["first_name", "last_name", "street", "house_number", "c", "b"]),
            children,
            max_size=4,
        ),
    ),
    max_leaves=10,
)
records = st.dictionaries(st.sampled_from(FIELDS), values, max_size=7)


@dataclass
class _Record:
    record: Any

    @property
    def json(self) -> Any:
        return to_json_value(self.record)


def _outcome(evaluate: Any, data: Any) -> tuple[str, Any]:
    try:
        return "result", evaluate(data)
    except ExpressionError as error:
        return "error", str(error)


def _shipped_expressions() -> list[str]:
    found: list[str] = []

    def collect(fields: dict[str, Any]) -> None:
        for rule in fields.values():
            if isinstance(rule, dict):
                if "expr" in rule:
                    found.append(rule["expr"])
                collect(rule.get("fields") or {})

    for path in MAPPINGS:
        collect(yaml.safe_load(path.read_text())["fields"])
    return found


@pytest.mark.parametrize("source", EXPRESSIONS + _shipped_expressions())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records)
def test_plain_evaluation_matches_the_interpreter(source: str, record: dict[str, Any]) -> None:
    expression = Expression(source)
    interpreted = _outcome(expression._interpret, to_json_value(record))
    assert _outcome(expression.evaluate, to_json_value(record)) == interpreted
    assert _outcome(expression.evaluate_record, _Record(record)) == interpreted


def test_the_shipped_mappings_expressions_are_evaluated_plainly() -> None:
    shipped = _shipped_expressions()
    assert len(shipped) >= 10
    assert [s for s in shipped if Expression(s)._plain is None] == []


def test_a_value_the_plain_evaluation_does_not_model_goes_to_the_interpreter() -> None:
    expression = Expression("'Parts Pim order ' & reference")
    assert expression._plain is not None
    assert expression.evaluate_record(_Record({"reference": "SO-1"})) == "Parts Pim order SO-1"
    assert expression.evaluate_record(_Record({"reference": Decimal("12.50")})) == (
        "Parts Pim order 12.5"
    )
    assert expression.evaluate_record(_Record({"reference": dt.date(2026, 3, 1)})) == (
        "Parts Pim order 2026-03-01"
    )
    assert expression.evaluate_record(_Record({"reference": None})) == "Parts Pim order null"
    with pytest.raises(ExpressionError, match="exceeds the limit of 100000"):
        expression.evaluate_record(_Record({"reference": "x" * 100_001}))
