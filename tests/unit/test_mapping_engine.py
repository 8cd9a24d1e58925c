"""Mapping documents, merging, paths, `each`, create vs update, overflow, validation, preview."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from koppel.mapping import (
    InvalidMappingError,
    MappingError,
    MappingIssue,
    Severity,
    apply,
    compile_mapping,
    dump_mapping,
    load_mapping,
    merge_mappings,
    parse_mapping,
    preview,
    render_issues,
    render_mapping,
    render_preview,
    to_text,
    validate,
)
from koppel.mapping.document import parse_value
from koppel.model import Order, Product
from koppel.model.schema import FieldSpec, FieldType, RecordSchema, schema_from_model

PIM_PRODUCT = {
    "id": 501,
    "sku": " 100-234 ",
    "name": "Zeskantbout M8x40 verzinkt",
    "description": {"short": "Bout M8", "long": "Verzinkte zeskantbout volgens DIN 933."},
    "prices": [{"amount": "1.234,50", "incl_vat": False}, {"amount": "9,95"}],
    "attributes": {"kleur": "zilver", "maat": "M8"},
    "categories": [{"id": 7}, {"id": 9}],
}

PIM_SCHEMA = RecordSchema.of(
    "Parts Pim product",
    [
        FieldSpec("id", FieldType.INTEGER),
        FieldSpec("sku", max_length=20),
        FieldSpec("name", max_length=120),
        FieldSpec("description", FieldType.OBJECT),
        FieldSpec("description.short", max_length=255),
        FieldSpec("description.long"),
        FieldSpec("prices", FieldType.LIST),
        FieldSpec("prices[].amount"),
        FieldSpec("prices[].incl_vat", FieldType.BOOLEAN),
        FieldSpec("categories", FieldType.LIST),
        FieldSpec("categories[].id", FieldType.INTEGER),
    ],
    open_paths=("attributes",),
)

AV_ARTICLE = RecordSchema.of(
    "AccountView ART",
    [
        FieldSpec("ART_CODE", max_length=20, required=True, upper_case=True),
        FieldSpec("ART_DESC1", max_length=40, required=True),
        FieldSpec("ART_MEMO"),
        FieldSpec("SALES_PRICE", FieldType.DECIMAL),
        FieldSpec("CUR_CODE", max_length=3),
        FieldSpec("ACTIVE", FieldType.BOOLEAN),
    ],
)

GET_PRODUCT = """
name: partspim-products
fields:
  key: {from: id, transform: [to_string]}
  sku: {from: sku, transform: [trim, digits_only]}
  name: name
  short_description: description.short
  long_description: {from: description.long, on: create}
  price_excl_vat: {from: "prices[0].amount", transform: [parse_decimal, {round: 2}]}
  currency: {const: EUR}
  category_keys: {from: "categories[].id", transform: [to_string]}
  attributes.kleur: {from: attributes.kleur, default: ""}
"""

SEND_PRODUCT = """
fields:
  ART_CODE: {from: sku, transform: [upper]}
  ART_DESC1: {from: name, transform: [{truncate: 40}]}
  ART_MEMO: {from: long_description, on: create}
  SALES_PRICE: price_excl_vat
  CUR_CODE: currency
"""


def compiled(text: str, **kwargs: Any) -> Any:
    return compile_mapping(parse_mapping(text), **kwargs)


def test_get_side_maps_a_pim_product_to_a_valid_canonical_product() -> None:
    result = apply(compiled(GET_PRODUCT), PIM_PRODUCT, record_key="SKU 100234")
    product = Product.model_validate(result.values)
    assert product.sku == "100234"
    assert product.price_excl_vat == Decimal("1234.50")
    assert product.category_keys == ["7", "9"]
    assert product.attributes == {"kleur": "zilver"}
    assert result.warnings == ()


def test_paths_reach_into_objects_lists_and_negative_indexes() -> None:
    mapping = compiled(
        """
fields:
  first: "prices[0].amount"
  last: "prices[-1].amount"
  missing: "prices[5].amount"
  every: "prices[].amount"
  deep: description.long
  wrong_kind: name.first
"""
    )
    values = apply(mapping, PIM_PRODUCT).values
    assert values == {
        "first": "1.234,50",
        "last": "9,95",
        "every": ["1.234,50", "9,95"],
        "deep": "Verzinkte zeskantbout volgens DIN 933.",
    }


def test_absent_values_leave_the_target_field_out() -> None:
    values = apply(compiled(SEND_PRODUCT), {"sku": "100234", "name": "Bout"}).values
    assert values == {"ART_CODE": "100234", "ART_DESC1": "Bout"}


def test_create_only_fields_are_dropped_for_updates() -> None:
    canonical = {"sku": "1", "name": "Bout", "long_description": "Tekst van de PIM"}
    result = apply(compiled(SEND_PRODUCT), canonical)
    assert result.values["ART_MEMO"] == "Tekst van de PIM"
    assert "ART_MEMO" not in result.for_update()
    assert result.for_update()["ART_DESC1"] == "Bout"
    assert result.values["ART_MEMO"] == "Tekst van de PIM"  # for_update does not change values


def test_nested_create_only_field_is_dropped_for_updates() -> None:
    mapping = compiled("fields: {address.street: {from: s, on: create}, address.city: c}")
    result = apply(mapping, {"s": "Dorpsstraat", "c": "Zwolle"})
    assert result.for_update() == {"address": {"city": "Zwolle"}}


def test_each_maps_order_lines_with_a_sub_mapping() -> None:
    mapping = compiled(
        """
fields:
  reference: number
  lines:
    each: rows
    fields:
      sku: {from: article, transform: [digits_only]}
      quantity: {from: qty, transform: [parse_decimal]}
      unit_price: {from: price, transform: [parse_decimal]}
"""
    )
    record = {
        "number": "ORD-1",
        "rows": [
            {"article": "A-100", "qty": "2", "price": "12,50"},
            {"article": "B-200", "qty": "1,5"},
        ],
    }
    values = apply(mapping, record).values
    assert values["lines"] == [
        {"sku": "100", "quantity": Decimal(2), "unit_price": Decimal("12.50")},
        {"sku": "200", "quantity": Decimal("1.5")},
    ]


def test_error_in_a_line_names_the_record_the_line_and_the_rule() -> None:
    mapping = compiled(
        "fields: {lines: {each: rows, fields: {quantity: {from: qty, transform: [parse_decimal]}}}}"
    )
    with pytest.raises(MappingError) as caught:
        apply(mapping, {"rows": [{"qty": "1"}, {"qty": "twee"}]}, record_key="order 2024-17")
    error = caught.value
    assert error.record_key == "order 2024-17"
    assert error.field == "lines[1].quantity"
    assert str(error) == (
        "order 2024-17: field lines[1].quantity: from qty | parse_decimal: "
        "cannot read text 'twee' as a number"
    )


def test_unmapped_lookup_value_fails_with_a_clear_reason() -> None:
    mapping = compiled(
        "fields: {payment_term: {from: term, transform: [{lookup: betaaltermijnen}]}}",
        tables={"betaaltermijnen": {"14": "T14", "30": "T30"}},
    )
    assert apply(mapping, {"term": "30"}).values == {"payment_term": "T30"}
    with pytest.raises(MappingError, match=r"'45' is not in table betaaltermijnen"):
        apply(mapping, {"term": "45"}, record_key="order 12")


def test_settings_tables_win_over_the_mappings_own() -> None:
    text = "tables: {t: {a: mapping}}\nfields: {x: {from: v, transform: [{lookup: t}]}}"
    assert apply(compiled(text), {"v": "a"}).values == {"x": "mapping"}
    assert apply(compiled(text, tables={"t": {"a": "settings"}}), {"v": "a"}).values == {
        "x": "settings"
    }


def test_overflow_fail_and_truncate() -> None:
    long_name = "Verzinkte zeskantbout M8x40 met moer en sluitring, doos van 100 stuks"
    failing = compiled("fields: {ART_DESC1: name, ART_CODE: sku}", target_schema=AV_ARTICLE)
    with pytest.raises(MappingError) as caught:
        apply(failing, {"name": long_name, "sku": "1"}, record_key="SKU 1")
    assert "ART_DESC1" in str(caught.value)
    assert "the target holds 40: add `truncate: 40` or `overflow: truncate`" in str(caught.value)
    truncating = compiled(
        "fields: {ART_DESC1: {from: name, overflow: truncate}, ART_CODE: sku}",
        target_schema=AV_ARTICLE,
    )
    result = apply(truncating, {"name": long_name, "sku": "1"})
    assert result.values["ART_DESC1"] == long_name[:40]
    assert [str(warning) for warning in result.warnings] == [
        f"ART_DESC1: truncated from {len(long_name)} to 40 characters"
    ]


@pytest.mark.parametrize("rule", ["name", "{from: name, transform: [trim]}", "{expr: name}"])
def test_a_text_as_long_as_its_field_fits_and_one_character_more_does_not(rule: str) -> None:
    """A plain copy, a transformed value and an expression's are each fitted to the target."""
    mapping = compiled(f"fields: {{ART_CODE: sku, ART_DESC1: {rule}}}", target_schema=AV_ARTICLE)
    assert apply(mapping, {"sku": "1", "name": "x" * 40}).values["ART_DESC1"] == "x" * 40
    with pytest.raises(MappingError, match=r"ART_DESC1: .*is 41 characters; the target holds 40"):
        apply(mapping, {"sku": "1", "name": "x" * 41})
    with pytest.raises(MappingError, match=r"ART_DESC1: .*required by the target but has no value"):
        apply(mapping, {"sku": "1"})
    with pytest.raises(MappingError, match=r"ART_DESC1: .*got list .*add `join`"):
        apply(mapping, {"sku": "1", "name": ["Bout", "M8"]})


def test_target_types_are_enforced_with_the_fix() -> None:
    mapping = compiled(
        "fields: {ART_CODE: sku, ART_DESC1: name, SALES_PRICE: price, ACTIVE: active}",
        target_schema=AV_ARTICLE,
    )
    good = apply(mapping, {"sku": 12, "name": "Bout", "price": "12.5", "active": True}).values
    assert good == {
        "ART_CODE": "12",
        "ART_DESC1": "Bout",
        "SALES_PRICE": Decimal("12.5"),
        "ACTIVE": True,
    }
    with pytest.raises(MappingError, match=r"SALES_PRICE: from price: .*add `parse_decimal`"):
        apply(mapping, {"sku": "1", "name": "Bout", "price": "12,50"})
    with pytest.raises(MappingError, match=r"ART_DESC1: from name: .*got list .*add `join`"):
        apply(mapping, {"sku": "1", "name": ["Bout", "M8"]})
    with pytest.raises(MappingError, match="required by the target but has no value"):
        apply(mapping, {"sku": "1"})


def test_default_fills_absent_and_empty_values() -> None:
    mapping = compiled("fields: {country: {from: land, default: NL}, note: {const: null}}")
    assert apply(mapping, {"land": ""}).values == {"country": "NL"}
    assert apply(mapping, {}).values == {"country": "NL"}
    assert apply(mapping, {"land": "BE"}).values == {"country": "BE"}


def test_yaml_keeps_on_and_no_as_text() -> None:
    spec = parse_mapping("fields: {land: {const: NO, on: create}, actief: {const: true}}")
    assert spec.fields[0].const == "NO"
    assert str(spec.fields[0].on) == "create"
    assert spec.fields[1].const is True


def test_override_replaces_adds_removes_and_extends_tables(tmp_path: Path) -> None:
    default_path = tmp_path / "products.yaml"
    default_path.write_text(SEND_PRODUCT + "tables: {btw: {hoog: '21', laag: '9'}}\n")
    default = load_mapping(default_path)
    assert default.name == "products"
    override = parse_mapping(
        """
fields:
  ART_DESC1: {from: name, transform: [upper, {truncate: 40}]}
  ART_GRP: {const: BOUT}
remove: [ART_MEMO]
tables: {btw: {nul: '0'}}
"""
    )
    merged = merge_mappings(default, override)
    targets = [rule.target for rule in merged.fields]
    assert targets == ["ART_CODE", "ART_DESC1", "SALES_PRICE", "CUR_CODE", "ART_GRP"]
    assert merged.rule("ART_DESC1") is not None
    assert merged.rule("ART_DESC1").transform == ("upper", {"truncate": 40})  # type: ignore[union-attr]
    assert merged.tables == {"btw": {"hoog": "21", "laag": "9", "nul": "0"}}
    values = apply(compile_mapping(merged), {"sku": "a1", "name": "bout", "long_description": "x"})
    assert values.values == {"ART_CODE": "A1", "ART_DESC1": "BOUT", "ART_GRP": "BOUT"}


def test_override_removes_a_field_inside_an_each_rule() -> None:
    default = parse_mapping("fields: {lines: {each: rows, fields: {sku: a, vat: b}}}")
    merged = merge_mappings(default, parse_mapping("remove: [lines.vat]"))
    assert [rule.target for rule in merged.fields[0].fields] == ["sku"]


def test_removing_an_unknown_field_is_an_error() -> None:
    default = parse_mapping(SEND_PRODUCT)
    with pytest.raises(InvalidMappingError, match="ART_MEMMO: remove: the default mapping"):
        merge_mappings(default, parse_mapping("remove: [ART_MEMMO]"))


def test_dump_and_parse_round_trip() -> None:
    spec = parse_mapping(GET_PRODUCT)
    assert parse_mapping(dump_mapping(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fields: {sku: {form: sku}}", "unknown key(s) form"),
        ("fields: {sku: {from: sku, const: 1}}", "exactly one of"),
        ("fields: {sku: {from: sku, on: later}}", "`on` is create or always"),
        ("fields: [sku]", "must map target field names"),
        ("field: {}", "unknown key"),
        ("fields: {sku: {from: sku", "not valid YAML"),
        ("fields: {lines: {each: rows}}", "needs `fields`"),
    ],
)
def test_malformed_documents_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidMappingError) as caught:
        parse_mapping(text)
    assert message in str(caught.value)


def issues_of(
    text: str, source: RecordSchema = PIM_SCHEMA, target: RecordSchema = AV_ARTICLE, **kwargs: Any
) -> list[str]:
    found: list[MappingIssue] = validate(parse_mapping(text), source, target, **kwargs)
    return [str(issue) for issue in found]


def test_validate_accepts_a_good_mapping() -> None:
    text = """
fields:
  ART_CODE: {from: sku, transform: [digits_only, upper]}
  ART_DESC1: {from: name, transform: [{truncate: 40}]}
  SALES_PRICE: {from: "prices[0].amount", transform: [parse_decimal]}
  ACTIVE: {const: true}
"""
    assert issues_of(text) == []


def test_validate_reports_every_kind_of_problem() -> None:
    text = """
fields:
  ART_CODE: {from: skuu, transform: [upper]}
  ART_DESC1: name
  ART_DESCR: name
  ART_MEMO: {from: "categories[].id"}
  CUR_CODE: {const: EURO}
  SALES_PRICE: {from: name, transform: [trimm, {round: x}]}
  ACTIVE: {expr: "name &"}
"""
    issues = issues_of(text)
    expected = [
        "error: ART_CODE: source field skuu is not in Parts Pim product: did you mean sku?",
        "error: ART_DESCR: target field ART_DESCR is not in AccountView ART: did you mean "
        "ART_DESC1, ART_CODE?",
        'error: ART_MEMO: target is string; from categories[].id gives a list: add `join: ", "`',
        "error: CUR_CODE: target field CUR_CODE is 3 characters; the constant is 4: shorten it",
        "error: SALES_PRICE: transform: unknown function 'trimm': did you mean 'trim'?",
        "error: SALES_PRICE: transform: round: argument `digits` must be a whole number, got 'x'",
        "warning: ART_DESC1: target field ART_DESC1 is 40 characters; source name may be 120: "
        "add `truncate: 40` or the record fails",
    ]
    for line in expected:
        assert line in issues
    assert any(line.startswith("error: ACTIVE: expression does not parse") for line in issues)
    assert issues.index(expected[0]) < issues.index(expected[-1])  # errors before warnings


def test_validate_reports_a_field_mapped_twice_and_overlaps() -> None:
    issues = issues_of("fields:\n  ART_CODE: sku\n  ART_DESC1: name\n  ART_CODE: id\n")
    assert "error: ART_CODE: target field is mapped twice: keep one rule" in issues
    overlap = validate(
        parse_mapping("fields: {billing_address: adres, billing_address.city: plaats}"),
        RecordSchema.of("bron", [FieldSpec("adres", FieldType.OBJECT), FieldSpec("plaats")]),
        schema_from_model(Order),
    )
    assert any("overlaps billing_address" in issue.message for issue in overlap)


def test_validate_reports_required_target_fields_left_unmapped() -> None:
    issues = issues_of("fields: {ART_CODE: {from: sku, transform: [upper]}}")
    assert (
        "error: ART_DESC1: required target field ART_DESC1 is not mapped: add `ART_DESC1: "
        "{from: ...}` or a `const`" in issues
    )
    order_issues = validate(
        parse_mapping(
            "fields: {key: id, reference: id, customer.email: id, "
            "lines: {each: rows, fields: {sku: id}}}"
        ),
        RecordSchema.of(
            "bron", [FieldSpec("id"), FieldSpec("rows", FieldType.LIST), FieldSpec("rows[].id")]
        ),
        schema_from_model(Order),
    )
    missing = {issue.field for issue in order_issues if "is not mapped" in issue.message}
    assert missing == {"customer.key", "lines[].quantity"}


def test_validate_warns_for_text_into_numbers_and_upper_case_targets() -> None:
    issues = issues_of(
        "fields: {ART_CODE: sku, ART_DESC1: {from: name, overflow: truncate}, "
        'SALES_PRICE: "prices[0].amount"}'
    )
    assert any(
        line.startswith(
            "warning: SALES_PRICE: target is decimal; from prices[0].amount "
            "gives text: add `parse_decimal`"
        )
        for line in issues
    )
    assert (
        "warning: ART_CODE: target field ART_CODE is upper case: add `upper` or values may "
        "be refused" in issues
    )


def test_validate_reports_unknown_lookup_tables_and_accepts_settings_tables() -> None:
    text = (
        "fields: {ART_CODE: {from: sku, transform: [upper, {lookup: codes}]}, "
        "ART_DESC1: {const: x}}"
    )
    assert any("there is no table 'codes'" in line for line in issues_of(text))
    assert issues_of(text, tables={"codes": {"a": "B"}}) == []


def test_compile_refuses_an_invalid_mapping_with_every_error() -> None:
    with pytest.raises(InvalidMappingError) as caught:
        compiled("fields: {a: {from: x, transform: [nope]}, b: {expr: '(('}}")
    assert {issue.field for issue in caught.value.issues} == {"a", "b"}
    assert all(issue.severity is Severity.ERROR for issue in caught.value.issues)


def test_preview_shows_all_three_stages_and_warnings() -> None:
    get = compiled(GET_PRODUCT)
    send = compiled(
        SEND_PRODUCT.replace("transform: [{truncate: 40}]", "overflow: truncate"),
        target_schema=RecordSchema.of(
            "AV",
            [
                FieldSpec("ART_CODE"),
                FieldSpec("ART_DESC1", max_length=10),
                FieldSpec("ART_MEMO"),
                FieldSpec("SALES_PRICE", FieldType.DECIMAL),
                FieldSpec("CUR_CODE"),
            ],
        ),
    )
    result = preview(get, send, PIM_PRODUCT, canonical_model=Product, operation="update")
    assert result.error is None
    assert result.canonical is not None and result.canonical["kind"] == "simple"
    assert result.target == {
        "ART_CODE": "100234",
        "ART_DESC1": "Zeskantbou",
        "SALES_PRICE": Decimal("1234.50"),
        "CUR_CODE": "EUR",
    }
    assert [str(w) for w in result.warnings] == [
        "target ART_DESC1: truncated from 26 to 10 characters"
    ]
    text = to_text(render_preview(result), width=200)
    assert "ART_DESC1 = 'Zeskantbou'" in text
    assert "sku = ' 100-234 '" in text
    assert "warning: target ART_DESC1" in text


def test_preview_reports_the_stage_that_failed() -> None:
    get = compiled("fields: {key: id, sku: sku}")
    result = preview(get, compiled(SEND_PRODUCT), {"id": "1", "sku": "2"}, canonical_model=Product)
    assert result.error is not None
    assert result.error.startswith("canonical Product: name: Field required")
    assert result.target is None
    assert "error: canonical Product" in to_text(render_preview(result))


def test_renderers_give_plain_text() -> None:
    spec = parse_mapping(GET_PRODUCT + "tables: {betaaltermijnen: {'14': T14}}\n")
    shown = to_text(render_mapping(spec), width=200)
    assert "long_description" in shown and "create" in shown
    assert "table betaaltermijnen: 14 -> T14" in shown
    assert "mapping is valid" in to_text(render_issues([]))
    issues = validate(parse_mapping("fields: {ART_CODE: x}"), PIM_SCHEMA, AV_ARTICLE)
    assert "source field x is not in Parts Pim product" in to_text(render_issues(issues), 200)


KEYED_ARTICLE = RecordSchema.of("AccountView ART", [FieldSpec("ART_CODE", max_length=15)]).with_key(
    "ART_CODE"
)


def test_the_length_hint_never_suggests_truncating_a_key_field() -> None:
    warnings = issues_of("fields: {ART_CODE: sku}", target=KEYED_ARTICLE)
    assert warnings == [
        "warning: ART_CODE: target field ART_CODE is 15 characters and the target finds its "
        "records by it; source sku may be 20: a longer value fails its record (do not truncate a "
        "key: two records could become one)"
    ]
    mapping = compiled("fields: {ART_CODE: sku}", target_schema=KEYED_ARTICLE)
    with pytest.raises(MappingError) as caught:
        apply(mapping, {"sku": "1234567890123456"}, record_key="SKU '1234567890123456'")
    assert "truncate" not in str(caught.value)
    assert "shorten it in the source" in str(caught.value)


def test_connectors_mark_the_field_their_records_are_found_by() -> None:
    from koppel.connectors.accountview.connector import ENTITIES as AV_ENTITIES
    from koppel.connectors.partspim.connector import ENTITIES as PIM_ENTITIES

    assert AV_ENTITIES["articles"].spec.schema.fields["ART_CODE"].key
    assert not AV_ENTITIES["articles"].spec.schema.fields["ART_DESC1"].key
    assert PIM_ENTITIES["products"].schema.fields["sku"].key


def test_validate_names_a_field_an_expression_reads_that_the_source_lacks() -> None:
    text = """
fields:
  ART_CODE: {expr: "$uppercase(skuu)"}
  ART_DESC1: {expr: "$join([nmae, attributes.kleur], ' ')", transform: [{truncate: 40}]}
  ART_MEMO: {expr: "$map(categories, function($c) { $c.label })"}
  CUR_CODE: {expr: "prices[incl_vat = false].amount ? 'EUR' : 'USD'"}
"""
    issues = issues_of(text)
    assert (
        "error: ART_CODE: the expression reads skuu, which is not in Parts Pim product: "
        "did you mean sku?"
    ) in issues
    assert (
        "error: ART_DESC1: the expression reads nmae, which is not in Parts Pim product: "
        "did you mean name?"
    ) in issues
    # What is read relative to an element (a lambda's argument, a predicate) is not checked,
    # and a field under an open path (attributes) is known.
    assert not [line for line in issues if "ART_MEMO" in line or "CUR_CODE" in line]
    assert not [line for line in issues if "attributes" in line]


def test_a_value_typed_into_the_editor_is_read_as_the_mapping_reads_yaml() -> None:
    assert parse_value("NO", "ORIG_CNT", "the constant") == "NO"
    assert parse_value("{truncate: 40}", "ART_DESC1", "transform step 1") == {"truncate": 40}
    assert parse_value("pad: [6, '0']", "ART_CODE", "transform step 1") == {"pad": [6, "0"]}
    with pytest.raises(InvalidMappingError) as raised:
        parse_value("{truncate: 40", "ART_DESC1", "transform step 2")
    (issue,) = raised.value.issues
    assert issue.field == "ART_DESC1" and issue.message.startswith("transform step 2 is not valid")
