"""The AccountView connector against its sandbox: tokens, rechecks, errors, paging edges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from koppel.connectors.accountview import AccountViewConnector
from koppel.connectors.accountview.client import AccountViewCredentials
from koppel.connectors.base import ClientLimits
from koppel.connectors.credentials import MemoryCredentials
from koppel.connectors.errors import AuthenticationError, GrantLost
from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.common import FaultConfig, SandboxServer

FAST = ClientLimits(backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=12)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AccountViewSandbox, str]]:
    sandbox = AccountViewSandbox()
    sandbox.generate(100)
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url


async def test_refreshed_tokens_are_persisted_and_rotate(
    served: tuple[AccountViewSandbox, str],
) -> None:
    sandbox, url = served
    saved: list[dict[str, Any]] = []

    async def on_tokens(credentials: dict[str, Any]) -> None:
        saved.append(credentials)

    first = sandbox.credentials(url)
    connector = AccountViewConnector(
        first, credential_store=MemoryCredentials(first, on_save=on_tokens), limits=FAST
    )
    try:
        assert "Connected" in await connector.check()
        assert saved == []
        sandbox.expire_access_tokens()  # the next call gets a 401 and must refresh
        rows = [r async for page in connector.read("vat_codes") for r in page]
        assert len(rows) == 5
        assert len(saved) == 1
        assert saved[0]["refresh_token"] != first["refresh_token"]
        assert saved[0]["client_secret"] == first["client_secret"]
    finally:
        await connector.aclose()
    # The old refresh token no longer works; the saved one does.
    stale = AccountViewConnector({**first, "access_token": None}, limits=FAST)
    fresh = AccountViewConnector({**saved[0], "access_token": None}, limits=FAST)
    try:
        with pytest.raises(GrantLost, match="refused the refresh token"):
            await stale.check()
        assert "Connected" in await fresh.check()
    finally:
        await stale.aclose()
        await fresh.aclose()


async def test_concurrent_reads_after_the_token_expired_refresh_once_and_all_succeed(
    served: tuple[AccountViewSandbox, str],
) -> None:
    """A refresh token works once: eight reads that find the access token expired must share
    one refresh (the per-connection lock), or all but one would use a spent refresh token."""
    sandbox, url = served
    saved: list[dict[str, Any]] = []

    async def on_tokens(credentials: dict[str, Any]) -> None:
        saved.append(credentials)

    credentials = {**sandbox.credentials(url), "expires_at": time.time() - 1}
    sandbox.expire_access_tokens()
    connector = AccountViewConnector(
        credentials, credential_store=MemoryCredentials(credentials, on_save=on_tokens), limits=FAST
    )

    async def read_vat_codes() -> list[dict[str, Any]]:
        return [row async for page in connector.read("vat_codes") for row in page]

    try:
        results = await asyncio.gather(*(read_vat_codes() for _ in range(8)))
        refreshes = connector.client.calls.by_kind().get("POST token")
    finally:
        await connector.aclose()
    assert [len(rows) for rows in results] == [5] * 8
    assert refreshes == 1
    assert len(saved) == 1 and saved[0]["refresh_token"] != credentials["refresh_token"]


async def test_concurrent_reads_refused_for_an_expired_token_all_succeed(
    served: tuple[AccountViewSandbox, str],
) -> None:
    """The same when AccountView says so first (401 on a token the client still trusts): each
    refused read waits for the refresh in progress instead of spending the refresh token."""
    sandbox, url = served
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    sandbox.expire_access_tokens()

    async def read_vat_codes() -> list[dict[str, Any]]:
        return [row async for page in connector.read("vat_codes") for row in page]

    try:
        results = await asyncio.gather(*(read_vat_codes() for _ in range(8)))
    finally:
        await connector.aclose()
    assert [len(rows) for rows in results] == [5] * 8


async def test_secrets_never_show(served: tuple[AccountViewSandbox, str]) -> None:
    sandbox, url = served
    creds = sandbox.credentials(url)
    connector = AccountViewConnector(creds, limits=FAST)
    model = AccountViewCredentials.from_mapping(creds)
    try:
        for text in (
            repr(connector),
            str(connector),
            repr(connector.client),
            repr(model),
            str(model),
        ):
            for secret in (creds["client_secret"], creds["refresh_token"], creds["access_token"]):
                assert secret not in text
    finally:
        await connector.aclose()
    bad = AccountViewConnector(
        {
            **creds,
            "client_secret": "wrong-secret",
            "access_token": None,
            "refresh_token": "some-refresh-token",
        },
        limits=FAST,
    )
    try:
        with pytest.raises(AuthenticationError) as info:
            await bad.check()
        assert "wrong-secret" not in str(info.value)
        assert "some-refresh-token" not in str(info.value)
    finally:
        await bad.aclose()


async def test_dropped_debtor_inserts_never_duplicate(
    served: tuple[AccountViewSandbox, str],
) -> None:
    sandbox, url = served
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    records = [
        {
            "MAIL_BUS": f"drop{i}@example.nl",
            "ACCT_NR": "1210",
            "ACCT_NAME": f"Drop {i}",
            "SRC_CODE": f"DROP{i}",
        }
        for i in range(6)
    ]
    sandbox.faults.configure(FaultConfig(drop_rate=0.5, seed=1))
    try:
        results = await connector.write("debtors", records)
    finally:
        sandbox.faults.configure(FaultConfig())
        await connector.aclose()
    assert all(r.ok for r in results), [r.error for r in results]
    assert any(e.status == -1 for e in sandbox.faults.log.entries())  # drops did happen
    for i in range(6):
        assert len(sandbox.rows("CONTACT", MAIL_BUS=f"drop{i}@example.nl")) == 1


async def test_existing_debtor_is_updated_by_email(served: tuple[AccountViewSandbox, str]) -> None:
    sandbox, url = served
    existing = sandbox.rows("CONTACT")[3]
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    try:
        [result] = await connector.write(
            "debtors", [{"MAIL_BUS": existing["MAIL_BUS"], "CITY": "Groningen"}]
        )
    finally:
        await connector.aclose()
    assert result.ok and not result.created and result.target_id == existing["SUB_NR"]
    assert sandbox.rows("CONTACT", SUB_NR=existing["SUB_NR"])[0]["CITY"] == "Groningen"


async def test_server_side_error_is_mapped_to_its_record(
    served: tuple[AccountViewSandbox, str],
) -> None:
    sandbox, url = served
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    records = [
        {"ART_CODE": "MAP1", "ART_DESC1": "Goed"},
        {"ART_CODE": "MAP2", "ART_DESC1": "Onbekende groep", "AG_CODE": "ZZZZZ"},
        {"ART_CODE": "MAP3", "ART_DESC1": "Ook goed"},
        {"ART_CODE": "map4", "ART_DESC1": "Kleine letters"},
    ]
    try:
        results = await connector.write("articles", records)
    finally:
        await connector.aclose()
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[1].error is not None and results[1].error.field == "AG_CODE"
    assert "ZZZZZ" in str(results[1].error) and "MAP2" in str(results[1].error)
    assert results[3].error is not None and "upper case" in results[3].error.rule


async def test_every_value_is_checked_before_anything_is_sent(
    served: tuple[AccountViewSandbox, str],
) -> None:
    """Each field a write uses is looked up once, yet every value is judged on its own: rows
    with the same fields fail alone, naming the field and the rule, and the others are sent."""
    sandbox, url = served
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    records: list[dict[str, Any]] = [
        {"art_code": "CHK1", "art_desc1": "Kleine veldnamen", "EXT_KEY": "x", "CNG_NR": 3},
        {"ART_CODE": "CHK2", "ART_DESC1": "x" * 41},
        {"ART_CODE": "CHK3", "ART_DESC1": ["geen", "tekst"]},
        {"ART_CODE": "CHK4", "ART_DESC1": "Prijs", "PX_SELL": "twaalf"},
        {"ART_CODE": "CHK5", "ART_DESC1": "Prijs", "PX_SELL": Decimal("1.23456")},
        {"ART_CODE": "CHK6", "ART_DESC1": "Kleur", "COLOUR": "rood"},
        {"ART_CODE": "CHK7", "ART_DESC1": "Goed", "PX_SELL": Decimal("12.50")},
    ]
    order = {
        "ORD_REF": "CHK-ORDER",
        "RPL_INV": "10001",
        "SO_LINE": [
            {"art_code": "100001", "ORD_QTY": 1, "REC_ID": "9"},
            {"ART_CODE": "100002", "ORD_QTY": 1, "COLOUR": "rood"},
        ],
    }
    try:
        results = await connector.write("articles", records)
        [refused_order] = await connector.write("sales_orders", [order])
    finally:
        await connector.aclose()
    problems = [(r.error.field, r.error.rule) if r.error else None for r in results]
    assert problems[:4] == [
        None,
        ("ART_DESC1", "is 41 characters long; AccountView allows at most 40"),
        ("ART_DESC1", "must be text"),
        ("PX_SELL", "must be a number"),
    ]
    assert problems[4] is not None and problems[4][0] == "PX_SELL"
    assert problems[4][1].startswith("1.23456 has more than 4 decimals")
    assert problems[5:] == [("COLOUR", "is not a field of ARTICLE"), None]
    assert [row["ART_DESC1"] for row in sandbox.rows("ARTICLE", ART_CODE="CHK1")] == [
        "Kleine veldnamen"
    ]
    assert len(sandbox.rows("ARTICLE", ART_CODE="CHK7")) == 1
    assert not sandbox.rows("ARTICLE", ART_CODE="CHK2")
    assert refused_order.error is not None
    assert (refused_order.error.field, refused_order.error.rule) == (
        "SO_LINE.COLOUR",
        "is not a field of SO_LINE",
    )


async def test_the_first_refused_value_is_named_as_the_row_is_sent(
    served: tuple[AccountViewSandbox, str],
) -> None:
    """Rows are cleaned and checked in one pass, yet a record's refusal is the one of the row
    as it is sent: its first refused field in the row's order, the header before its lines, and
    a value given twice (as `art_desc1` and `ART_DESC1`) judged by the one that is sent."""
    sandbox, url = served
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    records: list[dict[str, Any]] = [
        {"ART_CODE": "FIRST1", "ART_DESC1": "x" * 41, "PX_SELL": "twaalf"},
        {"PX_SELL": "twaalf", "ART_CODE": "first2", "ART_DESC1": "Volgorde"},
        {"art_desc1": "x" * 41, "ART_CODE": "FIRST3", "ART_DESC1": "Goed"},
        {"ART_DESC1": "Goed", "ART_CODE": "FIRST4", "art_desc1": "x" * 41},
    ]
    order = {
        "SO_LINE": [{"ART_CODE": "100002", "ORD_QTY": 1, "COLOUR": "rood"}],
        "ORD_REF": "FIRST-ORDER",
        "COLOUR": "blauw",
    }
    try:
        results = await connector.write("articles", records)
        [refused_order] = await connector.write("sales_orders", [order])
    finally:
        await connector.aclose()
    problems = [(r.error.field, r.error.rule) if r.error else None for r in results]
    assert problems == [
        ("ART_DESC1", "is 41 characters long; AccountView allows at most 40"),
        ("PX_SELL", "must be a number"),
        None,
        ("ART_DESC1", "is 41 characters long; AccountView allows at most 40"),
    ]
    assert [row["ART_DESC1"] for row in sandbox.rows("ARTICLE", ART_CODE="FIRST3")] == ["Goed"]
    assert refused_order.error is not None
    assert (refused_order.error.field, refused_order.error.rule) == (
        "COLOUR",
        "is not a field of SO_HDR",
    )


async def test_delivery_address_and_order_writes(served: tuple[AccountViewSandbox, str]) -> None:
    sandbox, url = served
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    address = {
        "SUB_NR": "10001",
        "DEL_NAME": "Magazijn",
        "ADDRESS1": "Havenweg 1",
        "POST_CODE": "1234 AB",
        "CITY": "Amsterdam",
        "CNT_CODE": "NL",
    }
    order = {
        "ORD_REF": "KOPPEL-1",
        "RPL_INV": "10001",
        "SO_LINE": [{"ART_CODE": "100001", "ORD_QTY": 1}, {"ART_CODE": "100002", "ORD_QTY": 3}],
    }
    try:
        [new_address] = await connector.write("delivery_addresses", [address])
        assert new_address.ok and new_address.created
        order["DEL_CODE"] = new_address.target_id
        [first] = await connector.write("sales_orders", [order])
        [again] = await connector.write("sales_orders", [{**order, "COMMENT1": "Opnieuw"}])
        [found] = await connector.lookup("sales_orders", "ORD_REF", ["KOPPEL-1"])
    finally:
        await connector.aclose()
    assert first.created and not again.created and again.target_id == first.target_id
    assert found["COMMENT1"] == "Opnieuw" and len(found["SO_LINE"]) == 2
    assert len(sandbox.rows("SO_HDR", ORD_REF="KOPPEL-1")) == 1


async def test_read_since_returns_changed_rows(served: tuple[AccountViewSandbox, str]) -> None:
    sandbox, url = served
    before = datetime.strptime(sandbox.now(), "%Y-%m-%dT%H:%M:%S")
    sandbox.edit("ART_GRP", "G002", {"AG_DESC": "Gewijzigd door gebruiker"})
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    try:
        rows = [r async for page in connector.read("article_groups", since=before) for r in page]
    finally:
        await connector.aclose()
    assert "G002" in {r["AG_CODE"] for r in rows}
    assert all(r["CNG_DATE"] >= before.strftime("%Y-%m-%dT%H:%M:%S") for r in rows)


@pytest.mark.slow
async def test_reads_100k_articles_completely() -> None:
    sandbox = AccountViewSandbox()
    sandbox.generate(100_000)
    with SandboxServer(sandbox.asgi_app()) as server:
        connector = AccountViewConnector(sandbox.credentials(server.url), limits=FAST)
        try:
            ids = [
                r["ART_CODE"]
                async for page in connector.read("articles", page_size=1000)
                for r in page
            ]
            calls = connector.client.calls.total
        finally:
            await connector.aclose()
    assert len(ids) == len(set(ids)) == 100_000
    assert calls == 101  # 100 full pages and the empty one that ends the read
