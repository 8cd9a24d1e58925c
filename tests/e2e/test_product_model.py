"""The full product model, Parts Pim -> AccountView, over real HTTP: variants with their
attributes mapped as chosen, characteristics in fields of their own, prices by VAT rate, EANs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import outcomes, run_flow


def recent() -> str:
    """A `retrieve_from` that leaves out the products the sandbox generated a while ago."""
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


def articles(platform: Platform) -> dict[str, dict[str, Any]]:
    return {row["ART_CODE"]: row for row in platform.sandboxes.accountview.rows("ARTICLE")}


def catalogue(platform: Platform) -> None:
    store = platform.sandboxes.partspim.store
    store.create(
        "products",
        {
            "sku": "500100",
            "type": "configurable",
            "name": "Regenjas Pro",
            "price_incl_vat": "60.50",
            "vat_rate": "21",
            "variant_attributes": ["maat", "kleur"],
            "characteristics": {
                "Land van herkomst": "Duitsland",
                "Type": "RJ-2",
                "Levertijd": "2 weken",
            },
            "variants": [
                {
                    "sku": "500101",
                    "name": "Regenjas Pro M zwart",
                    "attributes": {"maat": "M", "kleur": "zwart"},
                },
                {
                    "sku": "500102",
                    "name": "Regenjas Pro L blauw",
                    "attributes": {"maat": "L", "kleur": "blauw"},
                    "price_incl_vat": "72.60",
                },
            ],
        },
    )
    store.create(
        "products",
        {
            "sku": "500200",
            "name": "Remblokken set",
            "price_excl_vat": "37.67",
            "vat_rate": "9",
            "currency": "EUR",
            "characteristics": {"Land van herkomst": "IT", "Type": "P 85 020"},
        },
    )
    store.create(
        "products",
        {
            "sku": "500300",
            "name": "Oliefilter",
            "price_excl_vat": "10.00",
            "custom_fields": {"gtin": "8712345678900"},
        },
    )


async def test_variants_characteristics_prices_and_a_bad_ean(platform_factory: Any) -> None:
    platform: Platform = platform_factory(3, seed=2)
    catalogue(platform)
    mapping = {
        # prices come in incl. VAT only: the flow computes the price excl. VAT from the rate
        "get": {
            "fields": {"ean": {"from": "custom_fields.gtin"}},
            "remove": ["price_excl_vat", "variants.price_excl_vat"],
        },
        # the size goes into the second description line
        "send": {"fields": {"ART_DESC2": {"from": "attributes.maat"}}},
    }
    flows = {
        "products": {
            "from": "pim",
            "to": "av",
            "entity": "products",
            "settings": {"variant_name_attributes": ["kleur"], "retrieve_from": recent()},
            "mapping": mapping,
        }
    }
    platform.apply(platform.sandboxes.integration(flows))
    summary = await run_flow(platform, "products")
    written = articles(platform)
    assert set(written) == {"500101", "500102", "500200"}
    medium, large = written["500101"], written["500102"]
    assert (medium["ART_DESC1"], medium["ART_DESC2"]) == ("Regenjas Pro zwart", "M")
    assert (large["ART_DESC1"], large["ART_DESC2"]) == ("Regenjas Pro blauw", "L")
    assert Decimal(str(medium["PX_SELL"])) == Decimal("50.00")  # 60.50 / 1.21
    assert Decimal(str(large["PX_SELL"])) == Decimal("60.00")  # the variant's own price
    assert (medium["ORIG_CNT"], medium["ART_TYPE"], medium["DEL_TIME"]) == ("DE", "RJ-2", "2 weken")
    brakes = written["500200"]
    assert (brakes["ORIG_CNT"], brakes["ART_TYPE"], brakes["CUR_CODE"]) == ("IT", "P 85 020", "EUR")
    failed = [o for o in outcomes(platform, summary).values() if o.outcome == "failed"]
    assert [o.reason for o in failed] == [
        "SKU '500300': field ean: '8712345678900' has a wrong check digit (expected 6)"
    ]


async def test_sell_price_including_vat(platform_factory: Any) -> None:
    platform: Platform = platform_factory(3, seed=2)
    catalogue(platform)
    flows = {
        "products": {
            "from": "pim",
            "to": "av",
            "entity": "products",
            "settings": {"sell_price": "incl_vat", "retrieve_from": recent()},
        }
    }
    platform.apply(platform.sandboxes.integration(flows))
    await run_flow(platform, "products")
    written = articles(platform)
    assert Decimal(str(written["500200"]["PX_SELL"])) == Decimal("41.06")  # 37.67 * 1.09
    assert Decimal(str(written["500101"]["PX_SELL"])) == Decimal("60.50")
    assert written["500101"]["ART_DESC1"] == "Regenjas Pro M zwart"  # the variant's own name
    assert written["500300"]["EAN_CODE"] == ""
