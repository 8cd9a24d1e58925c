"""Parts Pim webhooks received by the web app over real HTTP: a change arrives in AccountView
through its delivery without a schedule; deliveries that are not Parts Pim's, or that come
again, change nothing; a burst of deliveries is coalesced into a few runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import text

from koppel.sandbox.partspim.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from koppel.services.webhooks import sync_subscriptions
from koppel.store import OutcomeKind
from tests.e2e.conftest import Platform
from tests.e2e.flow_helpers import run_flow
from tests.e2e.realtime import (
    Serving,
    delivery,
    engine_idle,
    hook_url,
    is_targeted,
    post,
    secret_of,
    settled,
    targeted_runs,
    wait_for,
)

# No schedule: whatever a run does after the first sync, a webhook started it.
PRODUCTS_FLOW = {
    "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"}
}


def articles(platform: Platform) -> dict[str, dict[str, Any]]:
    return {row["ART_CODE"]: row for row in platform.sandboxes.accountview.rows("ARTICLE")}


def synced_once(platform: Platform) -> int:
    """The products flow applied and run once (a full run); its id."""
    platform.apply(platform.sandboxes.integration(PRODUCTS_FLOW))
    asyncio.run(run_flow(platform, "products"))
    flow = platform.flow("products")
    assert len(platform.store.runs.list(flow_id=flow.id)) == 1
    return flow.id


def subscribed(platform: Platform, serving: Serving, flow_id: int) -> None:
    flow = platform.store.flows.get(flow_id)
    assert flow is not None
    wait_for(
        lambda: platform.store.webhooks.get(flow.source_connection_id) is not None,
        "the connection's webhook subscription",
    )
    [hook] = platform.sandboxes.partspim.store.webhooks()
    assert hook["url"].startswith(f"{serving.url}/hooks/partspim/")
    assert {"product.updated", "product.created", "category.updated"} <= set(hook["events"])


def test_a_product_changed_in_parts_pim_arrives_in_accountview_through_its_webhook(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(20)
    flow_id = synced_once(platform)
    partspim = platform.sandboxes.partspim
    product = next(p for p in partspim.store.all("products") if p["type"] == "simple")
    cursor = platform.store.cursors.get(flow_id)
    with Serving(platform) as serving:
        subscribed(platform, serving, flow_id)
        partspim.store.update("products", product["id"], {"name": "Via de webhook"})
        wait_for(
            lambda: articles(platform)[product["sku"]]["ART_DESC1"] == "Via de webhook",
            "the changed product in AccountView",
        )
        wait_for(lambda: settled(platform), "the engine to be idle")
    assert partspim.webhooks.wait_idle()
    assert [d.status for d in partspim.deliveries()] == [202]
    runs = platform.store.runs.list(flow_id=flow_id)
    assert len([r for r in runs if not is_targeted(r)]) == 1, "only the first sync was a full run"
    [targeted] = targeted_runs(platform, flow_id)
    logged = platform.store.outcomes.list(targeted.id)
    assert [(o.source_key, o.outcome) for o in logged] == [
        (str(product["id"]), OutcomeKind.UPDATED)
    ]
    assert platform.store.cursors.get(flow_id) == cursor, "a targeted run moves no cursor"


def test_unsigned_tampered_wrongly_signed_stale_and_replayed_deliveries_change_nothing(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(10)
    flow_id = synced_once(platform)
    partspim = platform.sandboxes.partspim
    product = next(p for p in partspim.store.all("products") if p["type"] == "simple")
    with Serving(platform) as serving:
        subscribed(platform, serving, flow_id)
        url, secret = hook_url(platform), secret_of(platform)
        body, headers = delivery(secret, "product.updated", product)
        unsigned = {k: v for k, v in headers.items() if k not in (SIGNATURE_HEADER,)}
        untimed = {k: v for k, v in headers.items() if k not in (TIMESTAMP_HEADER,)}
        tampered = body.replace(str(product["id"]).encode(), b"999999", 1)
        wrong_body, wrong_headers = delivery("whsec_not-the-secret", "product.updated", product)
        stale_body, stale_headers = delivery(secret, "product.updated", product, stamp=1)
        refused = {
            "unsigned": post(url, body, unsigned),
            "without timestamp": post(url, body, untimed),
            "tampered": post(url, tampered, headers),
            "wrongly signed": post(url, wrong_body, wrong_headers),
            "stale": post(url, stale_body, stale_headers),
        }
        assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 401)
        assert "signature" in refused["tampered"].json()["detail"]
        elsewhere = post(url.rsplit("/", 1)[0] + "/not-a-subscription", body, headers)
        assert elsewhere.status_code == 404
        assert platform.store.pending_changes.count() == 0 and engine_idle()
        assert targeted_runs(platform, flow_id) == []

        assert post(url, body, headers).status_code == 202
        wait_for(lambda: settled(platform), "the delivery's run")
        replayed = post(url, body, headers)
        assert replayed.status_code == 409
        assert "accepted before" in replayed.json()["detail"]
        assert platform.store.pending_changes.count() == 0 and engine_idle()
    assert len(targeted_runs(platform, flow_id)) == 1


def test_a_burst_of_1000_deliveries_makes_a_handful_of_runs_and_syncs_each_record_once(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(1000)
    flow_id = synced_once(platform)
    partspim = platform.sandboxes.partspim
    # Changed before the subscription, so that the test sends their deliveries all at once.
    for product in partspim.store.all("products"):
        partspim.store.update("products", product["id"], {"name": f"Burst {product['id']}"})
    changed = partspim.store.all("products")
    assert len(changed) == 1000
    with Serving(platform) as serving:
        subscribed(platform, serving, flow_id)
        url, secret = hook_url(platform), secret_of(platform)
        deliveries = [delivery(secret, "product.updated", p) for p in changed]

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:

                async def send(body: bytes, headers: dict[str, str]) -> int:
                    """The answer to a delivery, sent again as a sender would when a kept-alive
                    connection was cut under it; a 409 then means the first one got in."""
                    for _ in range(3):
                        try:
                            answer = await client.post(url, content=body, headers=headers)
                        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                            resent.append(headers)
                            continue
                        return answer.status_code
                    raise AssertionError("a delivery was cut three times")

                return list(await asyncio.gather(*(send(b, h) for b, h in deliveries)))

        resent: list[dict[str, str]] = []
        answers = Counter(asyncio.run(burst()))
        assert answers[202] + answers[409] == 1000 and answers[409] <= len(resent), answers
        wait_for(lambda: settled(platform), "the burst's runs", timeout_s=240)
    runs = targeted_runs(platform, flow_id)
    # A run drains what is pending and ends; deliveries still coming in then wait for the next.
    # The faster a run, the more runs a burst spread over its ~40 s makes (6 seen under a whole
    # suite's load): a handful, where one per delivery would be 1,000.
    assert 1 <= len(runs) <= 8, f"{len(runs)} runs for one burst"
    logged = [o for run in runs for o in platform.store.outcomes.list(run.id, limit=100_000)]
    keys = Counter(o.source_key for o in logged)
    assert max(keys.values()) == 1, "a record synced twice"
    assert {k.split("/")[0] for k in keys} == {str(p["id"]) for p in changed}
    assert OutcomeKind.FAILED not in {o.outcome for o in logged}
    simple = {str(p["id"]) for p in changed if p["type"] == "simple"}
    assert {o.outcome for o in logged if o.source_key in simple} == {OutcomeKind.UPDATED}
    descriptions = {row["ART_DESC1"] for row in articles(platform).values()}
    assert all(f"Burst {p['id']}" in descriptions for p in changed if p["type"] == "simple")


async def test_subscriptions_follow_the_flows_and_keep_the_secret_encrypted(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(5)
    sandbox = platform.sandboxes.partspim.store
    platform.apply(platform.sandboxes.integration(PRODUCTS_FLOW))
    changes = await sync_subscriptions(platform.store, "http://koppel.test")
    assert [(c.connection, c.action) for c in changes] == [("pim", "subscribed")]
    [first] = sandbox.webhooks(with_secrets=True)
    assert first["url"].startswith("http://koppel.test/hooks/partspim/")
    assert sorted(first["events"]) == [
        "category.created",
        "category.updated",
        "product.created",
        "product.updated",
    ]
    with platform.store.engine.connect() as db:
        [(token_hash, stored)] = db.execute(
            text("SELECT token_hash, secret FROM webhook_subscriptions")
        ).all()
    assert first["secret"].encode() not in stored
    assert first["url"].rsplit("/", 1)[1] not in token_hash
    assert await sync_subscriptions(platform.store, "http://koppel.test") == []

    stock = {"stock": {"from": "pim", "to": "av", "entity": "stock", "schedule": "manual"}}
    platform.apply(platform.sandboxes.integration({**PRODUCTS_FLOW, **stock}))
    assert [c.action for c in await sync_subscriptions(platform.store, "http://koppel.test")] == [
        "subscribed"
    ]
    [second] = sandbox.webhooks()
    assert second["id"] != first["id"], "the old subscription is deleted"
    assert {"stock.updated", "product.updated"} <= set(second["events"])

    await sync_subscriptions(platform.store, "https://koppel.example.com")
    [third] = sandbox.webhooks()
    assert third["url"].startswith("https://koppel.example.com/hooks/partspim/")

    disabled = {
        name: {**flow, "enabled": False} for name, flow in {**PRODUCTS_FLOW, **stock}.items()
    }
    platform.apply(platform.sandboxes.integration(disabled))
    changes = await sync_subscriptions(platform.store, "https://koppel.example.com")
    assert [c.action for c in changes] == ["unsubscribed"]
    assert sandbox.webhooks() == []
    assert platform.store.webhooks.subscriptions() == []
