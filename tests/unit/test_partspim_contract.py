"""Parts Pim contract pieces that need no server: GTIN, signatures, error mapping, schemas."""

from __future__ import annotations

import time

import httpx
import pytest

from koppel.connectors.base import ClientLimits
from koppel.connectors.partspim import (
    ENTITIES,
    DuplicateRecordError,
    PartsPimClient,
    PartsPimValidationError,
    WebhookSignatureError,
    contract,
    verify_webhook,
)
from koppel.sandbox.partspim import sign
from koppel.sandbox.partspim.models import field_path, gtin_check_digit_ok

FAST = ClientLimits(max_attempts=2, backoff_base_s=0.001, backoff_max_s=0.002)


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("8712345678906", True),
        ("8712345678901", False),
        ("4006381333931", True),  # GTIN-13 from the GS1 examples
        ("96385074", True),  # GTIN-8
        ("036000291452", True),  # UPC-A / GTIN-12
        ("10036000291459", True),  # GTIN-14
        ("10036000291458", False),
    ],
)
def test_gtin_check_digit(code: str, ok: bool) -> None:
    assert gtin_check_digit_ok(code) is ok


def test_nested_field_names() -> None:
    assert field_path(("lines", 0, "sku")) == "lines[0].sku"
    assert field_path(("billing_address", "country")) == "billing_address.country"


def test_signature_round_trip_and_replay_window() -> None:
    body = b'{"id":"evt_1","event":"product.updated"}'
    stamp = str(int(time.time()))
    headers = httpx.Headers(
        {contract.TIMESTAMP_HEADER: stamp, contract.SIGNATURE_HEADER: sign("s3cret", stamp, body)}
    )
    assert verify_webhook("s3cret", body, headers) == {"id": "evt_1", "event": "product.updated"}
    with pytest.raises(WebhookSignatureError, match="off"):
        verify_webhook("s3cret", body, headers, now=int(stamp) + contract.SIGNATURE_TOLERANCE_S + 1)
    with pytest.raises(WebhookSignatureError, match="without signature"):
        verify_webhook("s3cret", body, httpx.Headers({}))
    unnamed = b'{"event":"product.updated"}'
    signed = {
        contract.TIMESTAMP_HEADER: stamp,
        contract.SIGNATURE_HEADER: sign("s3cret", stamp, unnamed),
    }
    with pytest.raises(WebhookSignatureError, match="no delivery id"):
        verify_webhook("s3cret", unnamed, httpx.Headers(signed))


def answering(status: int, body: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


async def test_422_names_every_field_and_rule() -> None:
    body = {
        "errors": [
            {"field": "sku", "code": "invalid", "message": "must contain only digits"},
            {"field": "ean", "code": "invalid", "message": "has a wrong check digit"},
        ]
    }
    transport = answering(422, body)
    client = PartsPimClient("http://pim", "k", limits=FAST, transport=transport)
    with pytest.raises(PartsPimValidationError) as info:
        await client.create("/products", {"sku": "AB"})
    await client.aclose()
    assert (info.value.field, info.value.rule) == ("sku", "must contain only digits")
    assert [e.field for e in info.value.errors] == ["sku", "ean"]
    assert str(info.value) == "POST /api/v1/products: field sku: must contain only digits"


async def test_409_carries_the_existing_id() -> None:
    body = {"errors": [{"field": "sku", "code": "duplicate", "message": "used", "existing_id": 7}]}
    transport = answering(409, body)
    client = PartsPimClient("http://pim", "k", limits=FAST, transport=transport)
    with pytest.raises(DuplicateRecordError) as info:
        await client.create("/products", {"sku": "1"})
    await client.aclose()
    assert (info.value.field, info.value.existing_id) == ("sku", 7)


def test_every_entity_has_a_schema_with_its_key_and_id() -> None:
    for name, spec in ENTITIES.items():
        assert spec.schema.knows(spec.key_field), name
        assert spec.schema.knows(spec.id_field), name
    products = ENTITIES["products"].schema
    assert products.knows("characteristics.Land van herkomst")
    sku = products.get("sku")
    assert sku is not None and sku.max_length == 20


def test_a_lookup_value_that_cannot_name_a_record_is_left_out() -> None:
    possible = contract.lookup_value_possible
    assert possible("id", "123") and possible("sku", "12345678901234567890")
    assert not possible("id", "abc") and not possible("relation_id", "-1")
    assert not possible("id", "1" + "0" * 308)  # beyond 64 bits: the API would fail the call
    assert not possible("sku", "1" * 21) and not possible("sku", "١٢٣")  # Arabic-Indic digits
    assert possible("email", "a,b@example.nl")  # other filters are the API's to judge
