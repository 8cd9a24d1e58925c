"""Two source records never become one target record (guarantee 2), over real HTTP.

A mapping that cuts or cleans keys (`overflow: truncate`, `digits_only`) can give two source
records one target key; the second must fail, naming both records and the key, and never
overwrite what the first one wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import outcomes, run_flow

TRUNCATED_ART_CODE = {
    "send": {
        "fields": {
            "ART_CODE": {"from": "sku", "transform": ["trim", "upper"], "overflow": "truncate"}
        }
    }
}
DIGITS_ONLY = {
    "get": {"fields": {"sku": {"from": "ART_CODE", "transform": ["trim", "digits_only"]}}}
}


def add_product(platform: Platform, sku: str, name: str) -> None:
    body = {"sku": sku, "name": name, "price_excl_vat": "9.95"}
    platform.sandboxes.partspim.store.create("products", body, over_api=False)


async def test_two_truncated_skus_do_not_become_one_article(platform_factory: Any) -> None:
    platform: Platform = platform_factory(3, seed=5)
    add_product(platform, "1234567890123451", "Eerste artikel")
    add_product(platform, "1234567890123452", "Tweede artikel")
    flow = {"from": "pim", "to": "av", "entity": "products", "mapping": TRUNCATED_ART_CODE}
    platform.apply(platform.sandboxes.integration({"products": flow}))

    summary = await run_flow(platform, "products")

    by_reason = {o.reason: o for o in outcomes(platform, summary).values()}
    articles = {a["ART_CODE"]: a for a in platform.sandboxes.accountview.rows("ARTICLE")}
    assert articles["123456789012345"]["ART_DESC1"] == "Eerste artikel"
    expected = (
        "SKU '1234567890123452': field ART_CODE: target key '123456789012345' is already taken "
        "by SKU '1234567890123451' (source key '"
    )
    failed = [r for r in by_reason if r and r.startswith(expected)]
    assert len(failed) == 1, sorted(r for r in by_reason if r)
    assert "in the same batch; two source records never become one target record" in failed[0]
    assert platform.store.dead_letters.list(platform.flow("products").id)


async def test_digits_only_codes_that_meet_fail_the_second_now_and_later(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(3, seed=11)
    av, pim = platform.sandboxes.accountview, platform.sandboxes.partspim
    av.write(
        "ARTICLE",
        [
            {"ART_CODE": "AB-12", "ART_DESC1": "Bout AB", "PX_SELL": 1.25},
            {"ART_CODE": "CD-12", "ART_DESC1": "Bout CD", "PX_SELL": 2.5},
        ],
    )
    started = datetime.now(UTC) - timedelta(minutes=1)
    flow = {
        "from": "av",
        "to": "pim",
        "entity": "products",
        "settings": {"retrieve_from": started.isoformat()},
        "mapping": DIGITS_ONLY,
    }
    platform.apply(platform.sandboxes.integration({"articles": flow}))

    first = await run_flow(platform, "articles")

    result = outcomes(platform, first)
    assert result["AB-12"].outcome == "created"
    assert result["CD-12"].outcome == "failed"
    assert result["CD-12"].reason == (
        "SKU '12': field sku: target key '12' is already taken by SKU '12' (source key 'AB-12') "
        "in the same batch; two source records never become one target record: change the "
        "mapping of sku (or the source) so the keys differ"
    )
    products = [p for p in pim.store.all("products") if p["sku"] == "12"]
    assert [p["name"] for p in products] == ["Bout AB"]

    av.write("ARTICLE", [{"ART_CODE": "EF-12", "ART_DESC1": "Bout EF", "PX_SELL": 3}])
    later = await run_flow(platform, "articles")

    result = outcomes(platform, later)
    assert result["EF-12"].outcome == "failed"
    assert "is already taken by source record 'AB-12', synced earlier" in str(
        result["EF-12"].reason
    )
    assert [p["name"] for p in pim.store.all("products") if p["sku"] == "12"] == ["Bout AB"]
