"""Issue 9, points 3 and 4, over real HTTP: one bad record fails alone, naming the record, the
field and the rule, and values that are surely wrong never reach AccountView."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import outcomes, run_flow
from tests.e2e.hostile import seed_unchecked
from tests.e2e.test_product_model import articles, recent


def product(record_id: int, sku: str, **fields: Any) -> dict[str, Any]:
    """A Parts Pim product as the API shows it, with `fields` over the defaults."""
    return {
        "id": record_id,
        "sku": sku,
        "name": f"Product {sku}",
        "type": "simple",
        "price_excl_vat": "10.00",
        "price_incl_vat": "12.10",
        "vat_rate": "21.00",
        "currency": "EUR",
        "category_ids": [],
        "variant_attributes": [],
        "variants": [],
        "attributes": {},
        "characteristics": {},
        "custom_fields": {},
        "short_description": None,
        "long_description": None,
        "ean": None,
        **fields,
    }


async def test_a_bad_category_id_or_a_huge_number_fails_only_its_product(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(3, seed=2)
    seed_unchecked(
        platform.sandboxes.partspim.store,
        "products",
        [
            product(9001, "900100", category_ids=["abc"]),
            product(9002, "900200", price_excl_vat="1e308", price_incl_vat=None),
            product(9003, "900300", vat_rate="1e308", price_incl_vat=None),
            product(9004, "900400"),
            product(9005, "900500"),
        ],
    )
    # two records a page: the bad ones fill the first pages, the good ones come after them
    settings = {"retrieve_from": recent(), "page_size": 2}
    flows = {"products": {"from": "pim", "to": "av", "entity": "products", "settings": settings}}
    platform.apply(platform.sandboxes.integration(flows))
    summary = await run_flow(platform, "products")
    found = outcomes(platform, summary)
    assert {key: o.reason for key, o in found.items() if o.outcome == "failed"} == {
        "9001": "SKU '900100': field category_keys: from category_ids | to_integer: "
        "cannot read text 'abc' as a number",
        "9002": "SKU '900200': field price_excl_vat: Input should be less than 1000000000000000",
        "9003": "SKU '900300': field vat_rate: Input should be less than or equal to 100",
    }
    assert (found["9004"].outcome, found["9005"].outcome) == ("created", "created")
    assert {"900400", "900500"} <= set(articles(platform))
    assert not {"900100", "900200", "900300"} & set(articles(platform))
    dead = {d.source_key for d in platform.store.dead_letters.list(platform.flow("products").id)}
    assert dead == {"9001", "9002", "9003"}
