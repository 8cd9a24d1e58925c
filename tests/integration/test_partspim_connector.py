"""The Parts Pim connector against its sandbox, over real HTTP."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from koppel.connectors.base import ApiClient, ClientLimits
from koppel.connectors.errors import AuthenticationError, ConnectorError
from koppel.connectors.partspim import PartsPimConnector
from koppel.sandbox.common import FaultConfig, SandboxServer
from koppel.sandbox.partspim import PartsPimSandbox
from koppel.sandbox.partspim.app import API_KEY_HEADER, API_PREFIX

FAST = ClientLimits(backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=12, timeout_s=10)


@pytest.fixture
def served() -> Iterator[tuple[PartsPimSandbox, str]]:
    sandbox = PartsPimSandbox(seed=5)
    sandbox.generate(150, seed=5)
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url
    sandbox.close()


@pytest.fixture
async def pim(served: tuple[PartsPimSandbox, str]) -> AsyncIterator[PartsPimConnector]:
    sandbox, url = served
    connector = PartsPimConnector(**sandbox.credentials(url), limits=FAST)
    yield connector
    await connector.aclose()


def skus_in(sandbox: PartsPimSandbox, sku: str) -> int:
    return len(sandbox.store.sql("SELECT 1 FROM product_skus WHERE sku = ?", [sku]))


async def test_check_names_the_company_and_secrets_stay_out_of_text(
    served: tuple[PartsPimSandbox, str], pim: PartsPimConnector
) -> None:
    sandbox, url = served
    key = sandbox.credentials(url)["api_key"]
    assert "Sandbox Onderdelen B.V." in await pim.check()
    assert key not in repr(pim) + str(pim) + repr(pim.client)
    bad = PartsPimConnector(url, "ppk_wrong", limits=FAST)
    with pytest.raises(AuthenticationError) as info:
        await bad.check()
    await bad.aclose()
    assert "ppk_wrong" not in str(info.value)


async def test_lookup_by_many_skus_is_chunked_per_hundred(
    served: tuple[PartsPimSandbox, str], pim: PartsPimConnector
) -> None:
    sandbox, _ = served
    skus = [row["sku"] for row in sandbox.store.sql("SELECT sku FROM product_skus LIMIT 150")]
    sandbox.faults.log.clear()
    found = await pim.lookup("products", "sku", [*skus, *skus[:10], "424242"])
    own_and_variant = {p["sku"] for p in found} | {v["sku"] for p in found for v in p["variants"]}
    assert set(skus) <= own_and_variant
    assert pim.client.calls.by_kind()["GET products"] == 2
    with pytest.raises(ConnectorError, match="cannot be looked up by name"):
        await pim.lookup("products", "name", ["x"])


async def test_write_creates_updates_and_reports_a_bad_sku_alone(
    served: tuple[PartsPimSandbox, str], pim: PartsPimConnector
) -> None:
    sandbox, _ = served
    existing = sandbox.store.all("products")[0]
    results = await pim.write(
        "products",
        [
            {"sku": "880001", "name": "Mann-Filter Luchtfilter C 27 114", "price_excl_vat": "12"},
            {"sku": "AB-12", "name": "Ongeldig"},
            {"sku": existing["sku"], "name": "Bijgewerkte naam"},
            {"sku": "880002", "name": "EAN fout", "ean": "8712345678901"},
        ],
    )
    assert [(r.ok, r.created) for r in results] == [
        (True, True),
        (False, False),
        (True, False),
        (False, False),
    ]
    assert str(results[1].error) == "SKU 'AB-12': field sku: must contain only digits"
    assert str(results[3].error) == "SKU '880002': field ean: has a wrong check digit"
    assert results[2].target_id == str(existing["id"])
    assert sandbox.store.get("products", existing["id"])["name"] == "Bijgewerkte naam"
    assert results[0].record is not None and results[0].record["price_incl_vat"] == "14.52"


async def test_dropped_connection_on_create_never_duplicates(
    served: tuple[PartsPimSandbox, str], pim: PartsPimConnector
) -> None:
    """Requests: lookup (kept), POST (dropped after it was handled), then anything."""
    sandbox, _ = served
    seed = next(
        s
        for s in range(1000)
        if (draws := random.Random(s)) and draws.random() >= 0.5 and draws.random() < 0.5
    )
    sandbox.faults.configure(FaultConfig(drop_rate=0.5, seed=seed))
    [result] = await pim.write("products", [{"sku": "880100", "name": "Remschijf 280x22 mm"}])
    sandbox.faults.configure(FaultConfig())
    assert result.ok and result.created
    posts = [e for e in sandbox.faults.log.entries() if e.kind == "POST products"]
    assert posts[0].status == -1  # the first POST was dropped after the sandbox stored it
    assert skus_in(sandbox, "880100") == 1


async def test_order_without_reference_is_refused_and_reference_finds_it_again(
    pim: PartsPimConnector,
) -> None:
    order: dict[str, Any] = {"relation_id": 1, "employee_number": "999999"}
    order["lines"] = [{"sku": "10000001", "quantity": "1"}]
    [refused] = await pim.write("orders", [order])
    assert refused.error is not None and refused.error.field == "reference"
    [created] = await pim.write("orders", [{**order, "reference": "SHOP-77"}])
    [again] = await pim.write("orders", [{**order, "reference": "SHOP-77", "comment": "bel"}])
    assert created.created and not again.created
    assert again.target_id == created.target_id
    [found] = await pim.lookup("orders", "reference", ["SHOP-77"])
    assert found["comment"] == "bel"


async def test_relation_found_by_email_in_any_case(pim: PartsPimConnector) -> None:
    person = {"type": "person", "first_name": "Els", "last_name": "Smit", "email": "Els@Smit.nl"}
    [created] = await pim.write("relations", [person])
    [updated] = await pim.write("relations", [{**person, "email": "els@smit.NL", "phone": "06"}])
    assert created.created and not updated.created
    assert updated.target_id == created.target_id
    [found] = await pim.lookup("relations", "email", ["ELS@SMIT.NL"])
    assert found["phone"] == "06"


async def test_stock_rows_are_put_in_batches_and_a_bad_row_fails_alone(
    served: tuple[PartsPimSandbox, str], pim: PartsPimConnector
) -> None:
    sandbox, _ = served
    skus = [r["sku"] for r in sandbox.store.sql("SELECT DISTINCT sku FROM stock LIMIT 130")]
    rows = [{"sku": sku, "warehouse_id": 1, "on_hand": "5"} for sku in skus]
    rows.insert(3, {"sku": "31337", "warehouse_id": 1, "on_hand": "1"})
    results = await pim.write("stock", rows)
    assert len(results) == len(rows)
    failed = [r for r in results if not r.ok]
    assert [str(r.error) for r in failed] == ["stock '31337@1': field sku: unknown SKU"]
    assert results[0].key == f"{skus[0]}@1"
    stored = {
        r["sku"]: r["on_hand"]
        for r in await pim.lookup("stock", "sku", skus)
        if r["warehouse_id"] == 1
    }
    assert set(stored.values()) == {"5"} and len(stored) == len(skus)


async def test_incremental_read_returns_only_what_changed(
    served: tuple[PartsPimSandbox, str], pim: PartsPimConnector
) -> None:
    sandbox, _ = served
    since = datetime.now(UTC)
    category = sandbox.store.all("categories")[3]
    sandbox.store.update("categories", category["id"], {"name": "Gewijzigd in Parts Pim"})
    pages = [page async for page in pim.read("categories", since=since)]
    assert [[c["name"] for c in page] for page in pages] == [["Gewijzigd in Parts Pim"]]
    after = str(sandbox.store.all("categories")[-3]["id"])
    rest = [c["id"] async for page in pim.read("categories", after=after) for c in page]
    assert [str(i) for i in rest] == [str(c["id"]) for c in sandbox.store.all("categories")[-2:]]
    every = [c async for page in pim.read("categories", page_size=5) for c in page]
    assert len(every) == sandbox.store.count("categories")


async def test_read_only_entities_refuse_writes(pim: PartsPimConnector) -> None:
    assert len([w async for page in pim.read("warehouses") for w in page]) == 2
    with pytest.raises(ConnectorError, match="read only"):
        await pim.write("warehouses", [{"code": "X", "name": "Nieuw"}])
    with pytest.raises(ConnectorError, match="no entity"):
        await pim.write("suppliers", [])


async def test_webhook_subscription_returns_its_secret_once(pim: PartsPimConnector) -> None:
    subscription = await pim.client.subscribe("http://127.0.0.1:9/hook", ["stock.updated"])
    assert subscription["secret"].startswith("whsec_")
    listed = await pim.client.get_json("/webhooks", kind="GET webhooks")
    assert [h["events"] for h in listed["data"]] == [["stock.updated"]]
    assert "secret" not in listed["data"][0]


@pytest.mark.slow
async def test_a_catalogue_of_100_000_products_reads_completely() -> None:
    sandbox = PartsPimSandbox(seed=11)
    sandbox.generate(100_000, seed=11)
    assert sandbox.store.count("products") == 100_000
    with SandboxServer(sandbox.asgi_app()) as server:
        connector = PartsPimConnector(**sandbox.credentials(server.url), limits=FAST)
        try:
            ids = [p["id"] async for page in connector.read("products") for p in page]
            sku = sandbox.store.all("stock")[-1]["sku"]
            [product] = await connector.lookup("products", "sku", [sku])
        finally:
            await connector.aclose()
    assert len(ids) == len(set(ids)) == 100_000
    assert sku in [product["sku"], *(v["sku"] for v in product["variants"])]


async def test_a_connection_rate_limit_keeps_a_burst_under_the_api_limit(
    served: tuple[PartsPimSandbox, str],
) -> None:
    """`rate_per_second` of a connection: a burst of ten requests from one client, which the
    API (eight a second) would partly refuse at once, is spread so that none is refused."""
    sandbox, url = served
    sandbox.faults.configure(FaultConfig(rate_limit_per_s=8))
    sandbox.faults.log.clear()
    client = ApiClient(url, limits=ClientLimits(rate_per_second=2, max_attempts=1))
    key = {API_KEY_HEADER: sandbox.store.api_key}
    try:
        answers = await asyncio.gather(
            *(
                client.send("GET", f"{API_PREFIX}/account", kind="GET account", headers=key)
                for _ in range(10)
            )
        )
    finally:
        sandbox.faults.configure(FaultConfig())
        await client.aclose()
    assert [answer.status_code for answer in answers] == [200] * 10
    assert [entry.status for entry in sandbox.faults.log.entries()] == [200] * 10
    assert client.calls.total == 10
