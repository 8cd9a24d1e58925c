"""Properties: the mapper raises nothing but MappingError, and expressions stay in their sandbox."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koppel.mapping import MappingError, apply, compile_mapping, parse_mapping
from koppel.mapping.expressions import Expression, ExpressionError, ExpressionLimits

KEYS = ["sku", "name", "prijs", "regels", "adres", "land", "a", "b"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1.234,56", "1234ab", "Hoofdstraat 12a", "Duitsland", "2024-03-31", "ja"]),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    ),
    max_leaves=20,
)
records = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)

paths = st.builds(
    lambda parts, index: ".".join(parts) + index,
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=3),
    st.sampled_from(["", "[0]", "[-1]", "[]", "[3]"]),
)
steps = st.sampled_from(
    [
        "trim",
        "upper",
        "lower",
        "digits_only",
        {"truncate": 5},
        {"pad": [6, "0"]},
        {"replace": ["a", "b"]},
        {"regex_extract": [r"(\d+)", 1]},
        {"split": ","},
        {"join": "-"},
        {"concat": [" ", {"from": "name"}]},
        {"default": "x"},
        "parse_decimal",
        "to_integer",
        "to_string",
        "to_boolean",
        {"round": 2},
        {"excl_vat": 21},
        {"incl_vat": {"from": "prijs"}},
        "parse_date",
        "parse_datetime",
        {"format_date": "%d-%m-%Y"},
        "dutch_postcode",
        {"dutch_postcode": {"strict": True}},
        "country_code",
        {"lookup": "t"},
        {"lookup": {"table": "t", "default": "?"}},
        {"split_house_number": "number"},
    ]
)
expressions = st.sampled_from(
    [
        "name & '-' & sku",
        "$sum(regels.prijs)",
        "$count(regels)",
        "$uppercase(name)",
        "a.b.c",
        "$string($)",
        "prijs * 1.21",
        "$number(sku)",
        "$substring(name, 1, 3)",
    ]
)
sources = st.one_of(
    st.builds(lambda path: {"from": path}, paths),
    st.builds(lambda const: {"const": const}, st.one_of(st.text(max_size=10), st.integers())),
    st.builds(lambda expr: {"expr": expr}, expressions),
)
rules = st.builds(
    lambda source, chain, default: {
        **source,
        "transform": chain,
        **({"default": default} if default else {}),
    },
    sources,
    st.lists(steps, max_size=4),
    st.sampled_from([None, "leeg"]),
)
mappings = st.dictionaries(
    st.sampled_from(["t1", "t2", "obj.x", "obj2.y", "t3"]), rules, min_size=1, max_size=5
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=mappings, each_path=paths, record=records)
def test_mapper_raises_nothing_but_mapping_error(
    fields: dict[str, Any], each_path: str, record: dict[str, Any]
) -> None:
    document = {
        "tables": {"t": {"1": "een"}},
        "fields": {**fields, "lines": {"each": each_path, "fields": dict(fields)}},
    }
    mapping = compile_mapping(parse_mapping(document))
    try:
        result = apply(mapping, record, record_key="rec-1")
    except MappingError as error:
        assert error.record_key == "rec-1"
        assert error.field
        return
    assert isinstance(result.values, dict)


token_text = st.lists(
    st.sampled_from(
        [
            "$",
            "$$",
            ".",
            "name",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ":",
            ",",
            ";",
            "&",
            "+",
            "*",
            "~>",
            "$eval",
            "$string",
            "$lookup",
            "$keys",
            "function($x){$x}",
            "$f",
            ":=",
            "?",
            "'__class__'",
            "__import__",
            "'os'",
            "$open",
            "..",
            "1",
            "[1..5]",
            "%",
            "#$i",
            "@$v",
            "$map",
            "$reduce",
            "$sort",
            "/a+/",
            "$match",
            "$replace",
            "$pad",
            "|$|{}|",
        ]
    ),
    max_size=12,
).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(source=token_text, record=records)
def test_any_expression_either_refuses_to_load_or_yields_json_or_a_mapping_error(
    source: str, record: dict[str, Any]
) -> None:
    try:
        mapping = compile_mapping(parse_mapping({"fields": {"out": {"expr": source}}}))
    except MappingError:
        return
    try:
        result = apply(mapping, record, record_key="rec")
    except MappingError:
        return
    assert _is_plain_data(result.values)


def _is_plain_data(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | Decimal):
        return True
    if isinstance(value, list):
        return all(_is_plain_data(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_data(v) for k, v in value.items())
    return False


@pytest.mark.parametrize(
    "source",
    [
        "$.__class__",
        "name.__class__.__mro__",
        "$lookup($, '__class__')",
        "$keys($string)",
        "$string($string)",
        "$eval('1+1')",
        "$import('os')",
        "$open('/etc/passwd')",
        "$__import__('os')",
        "$globals()",
        "$system('ls')",
    ],
)
def test_expressions_cannot_reach_python_objects_imports_or_files(source: str) -> None:
    try:
        mapping = compile_mapping(parse_mapping({"fields": {"out": {"expr": source}}}))
        values = apply(mapping, {"name": "Bout"}).values
    except MappingError:
        return
    assert _is_plain_data(values)
    assert "root:" not in str(values)  # nothing of /etc/passwd
    assert "class" not in str(values)


RUNAWAY = [
    "($f := function($x){ $f($x + 1) }; $f(0))",
    "($loop := function($i){ $i < 1e12 ? $loop($i + 1) : $i }; $loop(0))",
    "(function($f){ $f($f) })(function($g){ $g($g) })",
    "$reduce([1..60], function($acc, $v){ $acc & $acc }, 'ab')",
    "$count([1..9999999])",
    "$map([1..99999], function($v){ $map([1..99999], function($w){ $w }) })",
    "$pad('x', 1e12)",
    "$replace($pad('a', 99999), 'a', $pad('b', 99999))",
    "$match('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab', /^((a+)(\\2)*)+$/)",
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("source", RUNAWAY)
def test_runaway_expression_ends_with_a_mapping_error(source: str) -> None:
    limits = ExpressionLimits(timeout_s=0.2)
    mapping = compile_mapping(parse_mapping({"fields": {"out": {"expr": source}}}), limits=limits)
    with pytest.raises(MappingError, match=r"rec-9: field out: expr: expression stopped: "):
        apply(mapping, {}, record_key="rec-9")


@pytest.mark.timeout(30)
def test_backtracking_pattern_in_regex_extract_ends_with_a_mapping_error() -> None:
    mapping = compile_mapping(
        parse_mapping(
            {"fields": {"out": {"from": "s", "transform": [{"regex_extract": r"^((a+)(\2)*)+$"}]}}}
        )
    )
    with pytest.raises(MappingError, match=r"rec-3: field out: .*ran longer than 0.1 s"):
        apply(mapping, {"s": "a" * 40 + "b"}, record_key="rec-3")


def test_expression_limits_are_checked_when_loading() -> None:
    with pytest.raises(ExpressionError, match="limit is 10"):
        Expression("name & name & name", ExpressionLimits(max_length=10))


def test_one_compiled_expression_serves_many_records_and_threads() -> None:
    """The deadline is per evaluation: a mapping compiled long ago still maps new records."""
    expression = Expression("$uppercase(name) & '-' & $string(n)", ExpressionLimits(timeout_s=1))
    results: list[Any] = []

    def work(start: int) -> None:
        for n in range(start, start + 200):
            results.append(expression.evaluate({"name": "bout", "n": n}))

    threads = [threading.Thread(target=work, args=(i * 1000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(
        f"BOUT-{n}" for i in range(4) for n in range(i * 1000, i * 1000 + 200)
    )


def test_expressions_read_decimals_and_dates_as_json() -> None:
    mapping = compile_mapping(
        parse_mapping(
            {"fields": {"total": {"expr": "prijs * 2"}, "dag": {"expr": "$substring(datum, 0, 4)"}}}
        )
    )
    values = apply(mapping, {"prijs": Decimal("12.25"), "datum": dt.date(2024, 3, 31)}).values
    assert values == {"total": Decimal("24.5"), "dag": "2024"}
