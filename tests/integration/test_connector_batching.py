"""Call counts of the batched paths the benchmarks rely on: chunked lookups, and writes that take
the caller's lookup instead of asking the API again (counted in the sandboxes' request logs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from koppel.connectors.accountview import AccountViewConnector
from koppel.connectors.partspim import PartsPimConnector
from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.common import SandboxServer
from koppel.sandbox.partspim import PartsPimSandbox

ARTICLE_LOOKUPS = "GET accountviewdata AK1"


@pytest.fixture
def accountview() -> Iterator[tuple[AccountViewSandbox, str]]:
    sandbox = AccountViewSandbox()
    sandbox.generate(0)
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url


@pytest.fixture
def partspim() -> Iterator[tuple[PartsPimSandbox, str]]:
    sandbox = PartsPimSandbox()
    sandbox.generate(20)
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url


async def test_accountview_lookup_of_250_keys_takes_three_calls_and_finds_all(
    accountview: tuple[AccountViewSandbox, str],
) -> None:
    sandbox, url = accountview
    codes = [f"BENCH{n:04d}" for n in range(250)]
    sandbox.write("ARTICLE", [{"ART_CODE": c, "ART_DESC1": f"Artikel {c}"} for c in codes])
    sandbox.faults.log.clear()
    connector = AccountViewConnector(sandbox.credentials(url))
    try:
        found = await connector.lookup("articles", "ART_CODE", [*codes, "NOTTHERE"])
    finally:
        await connector.aclose()
    assert sorted(r["ART_CODE"] for r in found) == codes
    assert sandbox.faults.log.counts().get(ARTICLE_LOOKUPS) == 3


async def test_accountview_write_trusts_the_callers_lookup(
    accountview: tuple[AccountViewSandbox, str],
) -> None:
    sandbox, url = accountview
    sandbox.write("ARTICLE", [{"ART_CODE": "OLD1", "ART_DESC1": "Bestaand"}])
    connector = AccountViewConnector(sandbox.credentials(url))
    try:
        [old] = await connector.lookup("articles", "ART_CODE", ["OLD1"])
        sandbox.faults.log.clear()
        results = await connector.write(
            "articles",
            [
                {"ART_CODE": "OLD1", "ART_DESC1": "Gewijzigd"},
                {"ART_CODE": "NEW1", "ART_DESC1": "Nieuw"},
            ],
            found={"OLD1": old, "NEW1": None},
        )
    finally:
        await connector.aclose()
    assert [(r.key, r.created, r.ok) for r in results] == [
        ("OLD1", False, True),
        ("NEW1", True, True),
    ]
    assert ARTICLE_LOOKUPS not in sandbox.faults.log.counts()
    rows = {r["ART_CODE"]: r["ART_DESC1"] for r in sandbox.rows("ARTICLE")}
    assert rows == {"OLD1": "Gewijzigd", "NEW1": "Nieuw"}


async def test_accountview_write_looks_up_what_the_caller_did_not(
    accountview: tuple[AccountViewSandbox, str],
) -> None:
    sandbox, url = accountview
    sandbox.write("ARTICLE", [{"ART_CODE": "OLD2", "ART_DESC1": "Bestaand"}])
    sandbox.faults.log.clear()
    connector = AccountViewConnector(sandbox.credentials(url))
    try:
        [result] = await connector.write(
            "articles", [{"ART_CODE": "OLD2", "ART_DESC1": "Gewijzigd"}], found={"OTHER": None}
        )
    finally:
        await connector.aclose()
    assert not result.created  # found by its own lookup: an update, never a second article
    assert sandbox.faults.log.counts().get(ARTICLE_LOOKUPS) == 1
    assert [r["ART_DESC1"] for r in sandbox.rows("ARTICLE")] == ["Gewijzigd"]


async def test_partspim_write_trusts_the_callers_lookup(
    partspim: tuple[PartsPimSandbox, str],
) -> None:
    sandbox, url = partspim
    product = next(p for p in sandbox.store.all("products") if p["type"] == "simple")
    credentials = sandbox.credentials(url)
    connector = PartsPimConnector(credentials["base_url"], credentials["api_key"])
    try:
        sandbox.faults.log.clear()
        [result] = await connector.write(
            "products",
            [{"sku": product["sku"], "name": "Gewijzigd"}],
            found={product["sku"]: product},
        )
    finally:
        await connector.aclose()
    counts = sandbox.faults.log.counts()
    assert result.ok and not result.created and result.target_id == str(product["id"])
    assert "GET products" not in counts
    assert counts.get("PATCH products/:id") == 1
