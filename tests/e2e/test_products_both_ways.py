"""Products both ways in one integration: a product belongs to the system it was made in, and
neither flow writes the other's records back to where they came from."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Platform

FLOWS = {
    "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"},
    "products-from-av": {"from": "av", "to": "pim", "entity": "products", "schedule": "manual"},
}


def posts(platform: Platform) -> int:
    counts = platform.sandboxes.accountview.faults.log.counts()
    return sum(n for kind, n in counts.items() if kind.startswith("POST accountviewdata"))


async def test_neither_direction_echoes_the_other(platform_factory: Any) -> None:
    platform: Platform = platform_factory(40, seed=17, accountview_articles=30)
    pim, av = platform.sandboxes.partspim, platform.sandboxes.accountview
    native = {a["ART_CODE"] for a in av.rows("ARTICLE")}
    platform.apply(platform.sandboxes.integration(FLOWS))
    to_av, from_av = platform.flow("products"), platform.flow("products-from-av")
    async with platform.runner() as runner:
        first = await runner.run(to_av.id)
        assert first.status == "completed", first.error
        from_pim = {a["ART_CODE"] for a in av.rows("ARTICLE")} - native
        assert from_pim
        pim_before = {p["sku"]: p["updated_at"] for p in pim.store.all("products")}

        back = await runner.run(from_av.id)
        assert back.status == "completed", back.error
        outcomes = platform.store.outcomes.list(back.run_id, limit=10_000)
        echoes = [o for o in outcomes if o.reason and "came from Parts Pim" in o.reason]
        assert len(echoes) == len(from_pim)
        created = {o.target_key for o in outcomes if o.outcome == "created"}
        assert created == {code for code in native if code.isdigit()}
        pim_after = {p["sku"]: p["updated_at"] for p in pim.store.all("products")}
        assert all(pim_after[sku] == stamp for sku, stamp in pim_before.items()), (
            "a Parts Pim product was written back"
        )

        before = posts(platform)
        again = await runner.run(to_av.id)
        assert again.status == "completed", again.error
    assert posts(platform) == before, "an AccountView article was written back"
    outcomes = platform.store.outcomes.list(again.run_id, limit=10_000)
    from_accountview = [o for o in outcomes if o.reason and "came from AccountView" in o.reason]
    assert {o.target_key for o in from_accountview} == created
