"""The target writer's look-up before a batch's turn, against the AccountView sandbox over HTTP:
what a batch before it claims meanwhile is asked again, so a look-up that went out early
never makes a second record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from koppel.connectors.accountview import AccountViewConnector
from koppel.connectors.base import ClientLimits
from koppel.flows.pipeline import Item, TargetWriter
from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.common import SandboxServer
from koppel.store import LinkEntry, OutcomeKind, Store
from tests.fixtures_store import seed_integration

FAST = ClientLimits(backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def served() -> Iterator[tuple[AccountViewSandbox, str]]:
    sandbox = AccountViewSandbox()
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url


@pytest.fixture
async def connector(
    served: tuple[AccountViewSandbox, str],
) -> AsyncIterator[AccountViewConnector]:
    sandbox, url = served
    connector = AccountViewConnector(sandbox.credentials(url), limits=FAST)
    yield connector
    await connector.aclose()


def items(*codes: str) -> list[Item]:
    made = []
    for code in codes:
        article = {"ART_CODE": code, "ART_DESC1": f"Artikel {code}"}
        made.append(Item(f"p-{code}", f"SKU '{code}'", {}, create=article, update=article))
    return made


async def test_a_key_claimed_after_the_look_up_is_asked_again(
    store: Store, served: tuple[AccountViewSandbox, str], connector: AccountViewConnector
) -> None:
    """A1 is looked up before the turn (absent), then a batch before this one claims and
    writes it (the same source record: a page synced again after a crash, its link pending).
    In its turn the plan asks again for A1 and updates the article; A2, which no link names,
    keeps the early answer and is not asked again."""
    sandbox, _ = served
    seeded = seed_integration(store)
    writer = TargetWriter(
        store, seeded.integration.id, seeded.flow.id, "products", connector, "articles"
    )
    batch = items("A1", "A2")
    looked_up = await writer.look_up(batch)
    assert looked_up == {"A1": None, "A2": None}

    pending = LinkEntry("p-A1", "A1", "hash-of-the-batch-before", pending=True)
    store.links.upsert_many(seeded.integration.id, "products", [pending])
    sandbox.write("ARTICLE", [{"ART_CODE": "A1", "ART_DESC1": "Geschreven ervoor"}])
    calls_before = connector.client.calls.total

    planned = await writer.plan(batch, looked_up)
    assert connector.client.calls.total == calls_before + 1  # A1 only
    assert planned.found["A1"] is not None and planned.found["A2"] is None
    await writer.send(planned)
    assert [i.outcome for i in batch] == [OutcomeKind.UPDATED, OutcomeKind.CREATED]
    codes = [row["ART_CODE"] for row in sandbox.rows("ARTICLE")]
    assert sorted(codes) == ["A1", "A2"]
    assert {row["ART_CODE"]: row["ART_DESC1"] for row in sandbox.rows("ARTICLE")} == {
        "A1": "Artikel A1",
        "A2": "Artikel A2",
    }


async def test_a_failed_early_look_up_is_asked_again_in_the_turn(
    store: Store, served: tuple[AccountViewSandbox, str], connector: AccountViewConnector
) -> None:
    """No early answer (the look-up failed, or was not made): the plan asks for every key."""
    seeded = seed_integration(store)
    writer = TargetWriter(
        store, seeded.integration.id, seeded.flow.id, "products", connector, "articles"
    )
    batch = items("B1")
    calls_before = connector.client.calls.total
    planned = await writer.plan(batch, {})
    assert connector.client.calls.total == calls_before + 1
    assert planned.found == {"B1": None}
