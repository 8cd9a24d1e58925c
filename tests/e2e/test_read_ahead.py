"""Pages in flight together: every page is read once, a run that stops after a batch resumes
from its recorded state without losing or repeating a record, and the next page is looked up
while this one posts, its own post waiting its turn."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from koppel.engine.flow_jobs import FlowJob
from tests.e2e.conftest import Platform
from tests.e2e.gates import SeenRequest, post_of
from tests.e2e.test_orders_to_accountview import (
    PAYMENT_METHODS,
    PAYMENT_TERMS,
    add_order,
    add_relation,
    debtors_by_email,
    reasons,
    setup,
    some_skus,
)
from tests.e2e.test_orders_to_accountview import flows as order_flows
from tests.e2e.test_products_catalogue import expected_articles

PAGE_SIZE = 7
PRODUCTS = 40
ORDER_PAGE = 4


def product_outcome_keys(platform: Platform, run_id: str) -> list[str]:
    outcomes = platform.store.outcomes.list(run_id, limit=10_000)
    return [o.source_key for o in outcomes if not o.source_key.startswith("category:")]


def gated_products(platform_factory: Any, *, seed: int) -> tuple[Platform, int]:
    """A platform whose sandboxes have a door, with a products flow of `PAGE_SIZE` pages; and
    its integration's id."""
    platform: Platform = platform_factory(PRODUCTS, seed=seed, gated=True)
    flows = {"products": {"from": "pim", "to": "av", "entity": "products"}}
    platform.apply(platform.sandboxes.integration(flows, settings={"page_size": PAGE_SIZE}))
    [integration] = platform.store.integrations.list()
    return platform, integration.id


def skus_of_page(platform: Platform, page: int) -> set[str]:
    """The SKUs of the articles of the products on page `page` (from 0) of the run."""
    products = sorted(platform.sandboxes.partspim.store.all("products"), key=lambda p: p["id"])
    ids = {p["id"] for p in products[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]}
    articles = expected_articles(platform.sandboxes.partspim).items()
    return {sku for sku, e in articles if e["product"]["id"] in ids}


def article_key(expected: dict[str, Any]) -> str:
    """The source key the products flow links an expected article by (a variant's is
    `product/variant`)."""
    product, variant = expected["product"], expected["variant"]
    return f"{product['id']}/{variant['id']}" if variant else str(product["id"])


def assert_every_article_once(platform: Platform, run_id: str) -> None:
    """Every article has one outcome in the run and one row in AccountView."""
    keys = product_outcome_keys(platform, run_id)
    assert len(keys) == len(set(keys)) == len(expected_articles(platform.sandboxes.partspim))
    codes = [a["ART_CODE"] for a in platform.sandboxes.accountview.rows("ARTICLE")]
    assert len(codes) == len(set(codes)) == len(keys)


async def test_each_page_is_read_once(platform_factory: Any) -> None:
    platform: Platform = platform_factory(PRODUCTS, seed=11)
    flows = {"products": {"from": "pim", "to": "av", "entity": "products"}}
    platform.apply(platform.sandboxes.integration(flows, settings={"page_size": PAGE_SIZE}))
    async with platform.runner() as runner:
        summary = await runner.run(platform.flow("products").id)
    assert summary.status == "completed", summary.error
    keys = product_outcome_keys(platform, summary.run_id)
    assert len(keys) == len(set(keys)) == len(expected_articles(platform.sandboxes.partspim))
    pages = -(-PRODUCTS // PAGE_SIZE)
    reads = platform.sandboxes.partspim.faults.log.counts()["GET products"]
    assert reads == pages + 1  # each page once, then the empty page that ends the phase


async def test_a_run_resumed_after_a_batch_loses_and_repeats_nothing(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(PRODUCTS, seed=12)
    flows = {"products": {"from": "pim", "to": "av", "entity": "products"}}
    platform.apply(platform.sandboxes.integration(flows, settings={"page_size": PAGE_SIZE}))
    flow_id = platform.flow("products").id
    run_id = f"flow-{uuid.uuid4().hex}"
    first = FlowJob(platform.store, flow_id)
    state = await first.start(run_id)
    while state["phases"][state["phase"]] != "products" or state["after"] is None:
        state = (await first.run_batch(run_id, state)).state
    # The first process stops here with the next page read ahead; a new one resumes the state.
    await first.finish(run_id, state, "stopped")
    resumed = FlowJob(platform.store, flow_id)
    done = False
    while not done:
        result = await resumed.run_batch(run_id, state)
        state, done = result.state, result.done
    await resumed.finish(run_id, state, None)
    keys = product_outcome_keys(platform, run_id)
    assert len(keys) == len(set(keys)) == len(expected_articles(platform.sandboxes.partspim))
    articles = platform.sandboxes.accountview.rows("ARTICLE")
    assert len(articles) == len({a["ART_CODE"] for a in articles})


async def test_the_next_page_is_looked_up_while_this_one_posts(platform_factory: Any) -> None:
    """Page 1's post is held at AccountView's door. Page 2, in flight beside it, is looked up
    and claimed (pending links) meanwhile; its own post waits for page 1's, so one post of
    articles at most is ever on its way. Released, the run ends with every article once."""
    platform, integration_id = gated_products(platform_factory, seed=13)
    assert platform.gates is not None
    articles = expected_articles(platform.sandboxes.partspim).items()
    second_skus = skus_of_page(platform, 1)
    second_keys = [article_key(e) for sku, e in articles if sku in second_skus]
    seen: list[SeenRequest] = []
    gate = platform.gates.accountview
    gate.tap(lambda request: seen.append(request) or False)
    first_post = gate.hold(post_of("AK1"))

    def second_page_claimed() -> bool:
        links = platform.store.links.get_many(integration_id, "products", second_keys)
        return len(links) == len(second_keys) and all(link.pending for link in links.values())

    async with platform.runner() as runner:
        run = asyncio.create_task(runner.run(platform.flow("products").id))
        try:
            await first_post.arrived()
            await until(second_page_claimed, "page 2 claimed while page 1's post is held")
            lookups = [r for r in seen if r.method == "GET" and _names_any(r, second_skus)]
            assert lookups, "page 2 was not looked up while page 1 posted"
            # The tap sees a request as it passes the door: the held post has not passed yet.
            assert not [r for r in seen if post_of("AK1")(r)], "page 2 posted before page 1"
        finally:
            first_post.release()
        summary = await run
    assert summary.status == "completed", summary.error
    assert_every_article_once(platform, summary.run_id)


async def test_the_pages_ahead_look_up_while_the_page_before_decides(
    platform_factory: Any,
) -> None:
    """Page 1's look-up is held at AccountView's door. The pages ahead look up beside it (their
    look-ups go out before their turn), but none of them plans or claims anything before page
    1 has decided, and nothing is posted. Released, every article is there once."""
    platform, integration_id = gated_products(platform_factory, seed=15)
    assert platform.gates is not None
    first_skus, second_skus = skus_of_page(platform, 0), skus_of_page(platform, 1)
    every_key = [article_key(e) for e in expected_articles(platform.sandboxes.partspim).values()]
    seen: list[SeenRequest] = []
    gate = platform.gates.accountview
    gate.tap(lambda request: seen.append(request) or False)
    first_look_up = gate.hold(
        lambda r: r.method == "GET" and "AK1" in json.dumps(r.query) and _names_any(r, first_skus)
    )
    async with platform.runner() as runner:
        run = asyncio.create_task(runner.run(platform.flow("products").id))
        try:
            await first_look_up.arrived()

            def second_page_looked_up() -> bool:
                return any(r.method == "GET" and _names_any(r, second_skus) for r in seen)

            await until(second_page_looked_up, "page 2 looked up while page 1's look-up is held")
            await asyncio.sleep(0.5)  # a claim or a post made now would show meanwhile
            claimed = platform.store.links.get_many(integration_id, "products", every_key)
            assert not claimed, "a page ahead planned before page 1 had decided"
            assert not [r for r in seen if post_of("AK1")(r)], "a page posted before page 1"
        finally:
            first_look_up.release()
        summary = await run
    assert summary.status == "completed", summary.error
    assert_every_article_once(platform, summary.run_id)


def _names_any(request: SeenRequest, skus: set[str]) -> bool:
    text = json.dumps(request.query)
    return any(f"'{sku}'" in text or f'"{sku}"' in text or sku in text for sku in skus)


def _mentions(request: SeenRequest, values: set[str]) -> bool:
    return any(f'"{value}"'.encode() in request.body for value in values)


async def until(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    """Wait for a state (a bound, not a timing)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"waited {seconds:g}s for {what}")
        await asyncio.sleep(0.05)


async def test_orders_next_page_writes_its_debtors_while_this_one_posts(
    platform_factory: Any,
) -> None:
    """Orders take turns as products do: page 1's order post is held at AccountView's door;
    page 2 is read and looked up meanwhile, and once page 1's debtors are recorded page 2 writes
    its own, but its orders wait for page 1's post, so one orders post at most is ever on its
    way. A customer with orders on every page gets one debtor."""
    platform: Platform = platform_factory(20, seed=14, gated=True)
    assert platform.gates is not None
    setup(platform)
    skus = some_skus(platform, 2)
    shared = add_relation(platform, type="person", last_name="Els", email="els@example.nl")
    for number in range(ORDER_PAGE * 3):
        if number % 2:
            relation = shared
        else:
            email = f"klant{number}@example.nl"
            relation = add_relation(platform, type="person", last_name=f"K{number}", email=email)
        add_order(platform, relation, skus)
    tables = {"payment_terms": PAYMENT_TERMS, "payment_methods": PAYMENT_METHODS}
    settings = {"tables": tables, "page_size": ORDER_PAGE}
    platform.apply(platform.sandboxes.integration(order_flows(), settings=settings))
    pim_orders = sorted(platform.sandboxes.partspim.store.all("orders"), key=lambda o: o["id"])
    first, second = pim_orders[:ORDER_PAGE], pim_orders[ORDER_PAGE : 2 * ORDER_PAGE]
    second_page = {str(o["number"]) for o in second}
    relations = {r["id"]: r for r in platform.sandboxes.partspim.store.all("relations")}
    # The customers only page 2 has: a post of their debtors is page 2's.
    second_only = {o["relation_id"] for o in second} - {o["relation_id"] for o in first}
    second_emails = {str(relations[r]["email"]) for r in second_only}
    assert second_emails
    seen: list[SeenRequest] = []
    gate = platform.gates.accountview
    async with platform.runner() as runner:
        assert (await runner.run(platform.flow("products").id)).status == "completed"
        gate.tap(lambda request: seen.append(request) or False)
        first_post = gate.hold(post_of("SO1"))
        run = asyncio.create_task(runner.run(platform.flow("orders").id))
        try:
            await first_post.arrived()

            def second_page_debtors_posted() -> bool:
                return any(post_of("AR1")(r) and _mentions(r, second_emails) for r in seen)

            # Within the client's 30 s timeout, after which page 1's post fails and page 2 goes on.
            await until(
                second_page_debtors_posted,
                "page 2's debtors posted while page 1's orders post is held",
                seconds=20,
            )
            assert any(r.method == "GET" and _names_any(r, second_page) for r in seen)
            await asyncio.sleep(0.5)  # a post of page 2's orders sent now would pass meanwhile
            # The tap sees a request as it passes the door: the held post has not passed yet.
            orders = [r for r in seen if post_of("SO1")(r) and _mentions(r, second_page)]
            assert not orders, "page 2's orders posted before page 1's"
        finally:
            first_post.release()
        summary = await run
    assert summary.status == "completed", summary.error
    assert reasons(platform, summary.run_id) == {}
    posted = [r["ORD_REF"] for r in platform.sandboxes.accountview.rows("SO_HDR")]
    assert len(posted) == len(set(posted)), "an order was posted twice"
    assert {str(o["number"]) for o in pim_orders} <= set(posted), "an order was lost"
    assert all(len(rows) == 1 for rows in debtors_by_email(platform).values())
    assert len(debtors_by_email(platform)["els@example.nl"]) == 1


async def test_orders_debtors_are_written_while_their_articles_are_looked_up(
    platform_factory: Any,
) -> None:
    """The articles of a page's order lines are looked up beside its debtors: with that
    look-up held at AccountView's door, the new customers are looked up by e-mail and their
    debtors posted meanwhile, but no order is posted before its articles are known. Released,
    every order is posted once and every customer has one debtor."""
    platform: Platform = platform_factory(10, seed=17, gated=True)
    assert platform.gates is not None
    setup(platform)
    skus = some_skus(platform, 2)
    emails = {f"nieuw{number}@example.nl" for number in range(3)}
    numbers: set[str] = set()
    for email in sorted(emails):
        relation = add_relation(platform, type="person", last_name="Nieuw", email=email)
        numbers.add(str(add_order(platform, relation, skus)["number"]))
    tables = {"payment_terms": PAYMENT_TERMS, "payment_methods": PAYMENT_METHODS}
    platform.apply(platform.sandboxes.integration(order_flows(), settings={"tables": tables}))
    seen: list[SeenRequest] = []
    gate = platform.gates.accountview
    async with platform.runner() as runner:
        assert (await runner.run(platform.flow("products").id)).status == "completed"
        gate.tap(lambda request: seen.append(request) or False)
        articles = gate.hold(
            lambda r: (
                r.method == "GET" and "AK1" in json.dumps(r.query) and _names_any(r, set(skus))
            )
        )
        run = asyncio.create_task(runner.run(platform.flow("orders").id))
        try:
            await articles.arrived()

            def debtors_posted() -> bool:
                return any(post_of("AR1")(r) and _mentions(r, emails) for r in seen)

            # Within the client's 30 s timeout, after which the held look-up fails.
            await until(
                debtors_posted, "the debtors posted while the articles' look-up is held", 20
            )
            await asyncio.sleep(0.5)  # an order post sent now would pass meanwhile
            assert not [r for r in seen if post_of("SO1")(r)], "an order posted unchecked"
        finally:
            articles.release()
        summary = await run
    assert summary.status == "completed", summary.error
    assert reasons(platform, summary.run_id) == {}
    posted = [r["ORD_REF"] for r in platform.sandboxes.accountview.rows("SO_HDR")]
    assert len(posted) == len(set(posted)), "an order was posted twice"
    assert numbers <= set(posted), "an order was lost"
    by_email = debtors_by_email(platform)
    assert all(len(by_email[email]) == 1 for email in emails)


async def test_a_page_prepared_before_its_category_was_made_is_prepared_again(
    platform_factory: Any,
) -> None:
    """A resync of one product whose category has never been synced: the page is prepared
    (without a group) before its turn, the category is made in its turn, and the article is
    sent with the new group, not without one."""
    platform: Platform = platform_factory(5, seed=16)
    flows = {"products": {"from": "pim", "to": "av", "entity": "products"}}
    platform.apply(platform.sandboxes.integration(flows))
    flow_id = platform.flow("products").id
    async with platform.runner() as runner:
        assert (await runner.run(flow_id)).status == "completed"
    partspim = platform.sandboxes.partspim.store
    category = partspim.create("categories", {"code": "NIEUW", "name": "Nieuwe groep"})
    product = partspim.create(
        "products",
        {
            "sku": "99000001",
            "name": "Nieuw artikel",
            "price_excl_vat": "9.95",
            "category_ids": [category["id"]],
        },
        over_api=False,
    )
    run_id = f"resync-{uuid.uuid4().hex}"
    job = FlowJob(platform.store, flow_id, records=[str(product["id"])])
    state = await job.start(run_id)
    done = False
    while not done:
        result = await job.run_batch(run_id, state)
        state, done = result.state, result.done
    await job.finish(run_id, state, None)
    [integration] = platform.store.integrations.list()
    link = platform.store.links.get_many(integration.id, "categories", [str(category["id"])])
    assert str(category["id"]) in link and not link[str(category["id"])].pending
    [article] = [
        a for a in platform.sandboxes.accountview.rows("ARTICLE") if a["ART_CODE"] == "99000001"
    ]
    assert article["AG_CODE"] == link[str(category["id"])].target_key
