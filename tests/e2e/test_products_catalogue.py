"""A 10,000-product catalogue, Parts Pim -> AccountView, over real HTTP with the durable engine.

One scenario, in the order a user lives it: the first sync, a rerun that writes nothing, ten
products changed in Parts Pim, and a long description enriched by hand in AccountView that a
later sync must not overwrite.
"""

from __future__ import annotations

from typing import Any

from koppel.sandbox.partspim import PartsPimSandbox
from tests.e2e.conftest import Platform

CATALOGUE = 10_000
ART_CODE_LENGTH = 15
NAME_LENGTH = 40


def expected_articles(partspim: PartsPimSandbox) -> dict[str, dict[str, Any]]:
    """What AccountView must hold: one article per simple product and per variant."""
    articles: dict[str, dict[str, Any]] = {}
    for product in partspim.store.all("products"):
        variants = product.get("variants") or []
        if product["type"] == "configurable" and variants:
            for variant in variants:
                articles[variant["sku"]] = {"product": product, "variant": variant}
        else:
            articles[product["sku"]] = {"product": product, "variant": None}
    return articles


def article_rows(platform: Platform) -> dict[str, dict[str, Any]]:
    return {row["ART_CODE"]: row for row in platform.sandboxes.accountview.rows("ARTICLE")}


def posts(platform: Platform) -> int:
    counts = platform.sandboxes.accountview.faults.log.counts()
    return sum(n for kind, n in counts.items() if kind.startswith("POST accountviewdata"))


async def test_catalogue_sync_rerun_change_and_enrichment(platform_factory: Any) -> None:
    platform: Platform = platform_factory(CATALOGUE, seed=3)
    partspim = platform.sandboxes.partspim
    flows = {"products": {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}}
    platform.apply(platform.sandboxes.integration(flows, settings={"page_size": 500}))
    flow = platform.flow("products")
    expected = expected_articles(partspim)
    too_long = {sku for sku in expected if len(sku) > ART_CODE_LENGTH}
    long_names = [
        sku
        for sku, e in expected.items()
        if len((e["variant"] or {}).get("name") or e["product"]["name"]) > NAME_LENGTH
    ]
    assert len(expected) >= CATALOGUE
    assert long_names, "the generated catalogue should have names over 40 characters"

    async with platform.runner() as runner:
        # 1. First sync: every article and group, exactly once.
        first = await runner.run(flow.id)
        assert first.status == "completed", first.error
        run = platform.store.runs.get(first.run_id)
        assert run is not None
        rows = article_rows(platform)
        assert set(rows) == set(expected) - too_long
        categories = {c["id"]: c for c in partspim.store.all("categories")}
        groups = {g["AG_CODE"]: g for g in platform.sandboxes.accountview.rows("ART_GRP")}
        for sku in list(rows)[:500]:
            product = expected[sku]["product"]
            if product["category_ids"]:
                group = groups[rows[sku]["AG_CODE"]]
                assert group["AG_DESC"] == categories[product["category_ids"][0]]["name"][:40]
        for sku in long_names[:50]:
            if sku in rows:
                name = (expected[sku]["variant"] or {}).get("name") or expected[sku]["product"][
                    "name"
                ]
                assert len(rows[sku]["ART_DESC1"]) <= NAME_LENGTH
                assert name.startswith(rows[sku]["ART_DESC1"])
        # Every product (or variant) and category has exactly one outcome in the run.
        outcomes = platform.store.outcomes.list(first.run_id, limit=100_000)
        keys = [o.source_key for o in outcomes]
        assert len(keys) == len(set(keys))
        product_outcomes = [o for o in outcomes if not o.source_key.startswith("category:")]
        assert len(product_outcomes) == len(expected)
        failed = [o for o in product_outcomes if o.outcome == "failed"]
        assert len(failed) == len(too_long)
        for outcome in failed:
            assert "ART_CODE" in (outcome.reason or "")
        truncated = [o for o in product_outcomes if any("ART_DESC1" in w for w in o.warnings)]
        assert len(truncated) == len(long_names)
        created = [o for o in product_outcomes if o.outcome == "created"]
        assert len(created) == len(expected) - len(too_long)
        assert run.counts["failed"] == len(too_long)

        # 2. A rerun over unchanged data writes nothing.
        before = posts(platform)
        second = await runner.run(flow.id)
        assert second.status == "completed", second.error
        rerun = platform.store.runs.get(second.run_id)
        assert rerun is not None
        assert posts(platform) == before
        assert rerun.counts["created"] == 0
        assert rerun.counts["updated"] == 0

        # 3. Ten products changed in Parts Pim: exactly those ten are written.
        simple = [
            p
            for p in partspim.store.all("products")
            if p["type"] == "simple" and len(p["sku"]) <= ART_CODE_LENGTH
        ][:10]
        for product in simple:
            partspim.store.update(
                "products", product["id"], {"name": f"Gewijzigd {product['sku']}"}
            )
        third = await runner.run(flow.id)
        assert third.status == "completed", third.error
        changed = platform.store.runs.get(third.run_id)
        assert changed is not None
        assert changed.counts["updated"] == 10
        assert changed.counts["created"] == 0
        rows = article_rows(platform)
        for product in simple:
            assert rows[product["sku"]]["ART_DESC1"] == f"Gewijzigd {product['sku']}"

        # 4. A description enriched by hand in AccountView survives a change in Parts Pim.
        target = simple[0]
        platform.sandboxes.accountview.edit(
            "ARTICLE", target["sku"], {"ART_MEMO": "Handmatig verrijkt in AccountView"}
        )
        partspim.store.update(
            "products",
            target["id"],
            {"name": "Nogmaals gewijzigd", "long_description": "Nieuwe lange omschrijving"},
        )
        fourth = await runner.run(flow.id)
        assert fourth.status == "completed", fourth.error
    row = article_rows(platform)[target["sku"]]
    assert row["ART_DESC1"] == "Nogmaals gewijzigd"
    assert row["ART_MEMO"] == "Handmatig verrijkt in AccountView"
