from __future__ import annotations

from datetime import date
from decimal import Decimal

from koppel.flows.keys import ascii_upper, assign_group_code, content_hash


def test_content_hash_ignores_key_order_and_number_spelling() -> None:
    a = content_hash({"ART_CODE": "123", "PX_SELL": Decimal("10.50")})
    b = content_hash({"PX_SELL": Decimal("10.5"), "ART_CODE": "123"})
    assert a == b
    assert a != content_hash({"ART_CODE": "123", "PX_SELL": Decimal("10.51")})


def test_content_hash_is_the_one_links_already_hold() -> None:
    """Links store these hashes: a hash that changed would make every linked record look
    changed (the value below is what the hash has always been for this payload)."""
    payload = {
        "ART_CODE": "123",
        "ART_DESC1": "Bremsbeläge für Zubehör",
        "PX_SELL": Decimal("10.50"),
        "DATE": date(2026, 12, 1),
        "QTY": 2.5,
        "BLOCKED": False,
        "LINES": [{"b": 1, "a": None}],
    }
    assert content_hash(payload) == (
        "2e710e42cfce745627bc5666533971f80ce5198b82d9147959a4a60cf245c4f6"
    )


def test_ascii_upper_folds_dutch_and_german_letters() -> None:
    assert ascii_upper("Bremsbeläge & Zubehör") == "BREMSBELAGEZUBEHOR"
    assert ascii_upper("Straße") == "STRASSE"
    assert ascii_upper("café-12") == "CAFE12"


def test_group_codes_are_stable_five_characters_from_the_name() -> None:
    code = assign_group_code("17", "Remschijven", lambda c: False)
    assert code == assign_group_code("17", "Remschijven", lambda c: False)
    assert len(code) == 5
    assert code.startswith("REM")
    assert code.isalnum()
    assert code == code.upper()


def test_group_codes_avoid_collisions() -> None:
    taken: set[str] = set()
    codes = []
    for key in range(1400):
        code = assign_group_code(str(key), "Remmen", taken.__contains__)
        taken.add(code)
        codes.append(code)
    assert len(set(codes)) == 1400
    assert all(len(c) == 5 for c in codes)
    assert sum(c.startswith("REM") for c in codes) == 36**2


def test_short_and_symbol_names_still_give_a_code() -> None:
    assert assign_group_code("1", "Ö", lambda c: False).startswith("OXX")
    assert len(assign_group_code("2", "%%", lambda c: False)) == 5
