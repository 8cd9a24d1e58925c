"""Products, AccountView -> Parts Pim, over real HTTP: SKUs of digits only, EANs checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import counts, outcomes, run_flow

DIGITS_ONLY = {
    "get": {"fields": {"sku": {"from": "ART_CODE", "transform": ["trim", "digits_only"]}}}
}


def flows(mapping: dict[str, Any] | None = None) -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(minutes=1)
    flow: dict[str, Any] = {
        "from": "av",
        "to": "pim",
        "entity": "products",
        # leaves out the articles the sandbox generated a while ago
        "settings": {"retrieve_from": started.isoformat()},
    }
    if mapping:
        flow["mapping"] = mapping
    return {"articles": flow}


def pim_products(platform: Platform) -> dict[str, dict[str, Any]]:
    return {p["sku"]: p for p in platform.sandboxes.partspim.store.all("products")}


async def test_non_digit_sku_fails_then_passes_with_digits_only(platform_factory: Any) -> None:
    platform: Platform = platform_factory(3, seed=11)
    platform.sandboxes.accountview.write(
        "ARTICLE",
        [
            {
                "ART_CODE": "900100",
                "ART_DESC1": "Bout M8x40",
                "PX_SELL": 1.25,
                "EAN_CODE": "8712345678906",
                "ART_MEMO": "Verzinkt staal",
            },
            {"ART_CODE": "ART-900200", "ART_DESC1": "Moer M8", "PX_SELL": 0.1},
            {"ART_CODE": "900300", "ART_DESC1": "Ring M8", "EAN_CODE": "8712345678900"},
        ],
    )
    platform.apply(platform.sandboxes.integration(flows()))
    first = await run_flow(platform, "articles")
    assert counts(platform, first) == {"created": 1, "failed": 2}
    reasons = {o.reason for o in outcomes(platform, first).values() if o.outcome == "failed"}
    assert reasons == {
        "SKU 'ART-900200': field sku: must contain only digits for Parts Pim (1 to 20 digits); "
        "transform it in the flow's mapping, e.g. `sku: {from: sku, transform: [digits_only]}`",
        "SKU '900300': field ean: '8712345678900' has a wrong check digit (expected 6)",
    }
    created = pim_products(platform)["900100"]
    assert (created["name"], created["price_excl_vat"], created["price_incl_vat"]) == (
        "Bout M8x40",
        "1.25",
        "1.51",
    )
    assert created["long_description"] == "Verzinkt staal"

    platform.apply(platform.sandboxes.integration(flows(DIGITS_ONLY)))
    replay = await run_flow(platform, "articles", replay=True)
    assert counts(platform, replay) == {"created": 1, "failed": 1}
    assert pim_products(platform)["900200"]["name"] == "Moer M8"
    rerun = await run_flow(platform, "articles")
    assert counts(platform, rerun).get("created", 0) == 0
