"""A stored AccountView connection's tokens (issue 9 point 7) against the sandbox over real HTTP,
which rotates refresh tokens strictly: one refresh at a time across stores and threads (as
processes would be), a lost answer never replayed blindly, and a lost grant marked on the
connection with one clear message."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.common import FaultConfig, SandboxServer
from koppel.services import connections
from koppel.services.connections import ConnectionCheck
from koppel.store import Application, Connection, ConnectionState, Store
from tests.fixtures_store import StoreFactory


@pytest.fixture
def served() -> Iterator[tuple[AccountViewSandbox, str]]:
    sandbox = AccountViewSandbox()
    sandbox.generate(5)
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url


def stored_connection(store: Store, sandbox: AccountViewSandbox, url: str) -> Connection:
    """An AccountView connection as a user declares it: no access token, so the first call
    refreshes."""
    login = sandbox.credentials(url)
    tenant = store.tenants.ensure("acme")
    return store.connections.put(
        tenant.id,
        "av",
        application=Application.ACCOUNTVIEW,
        base_url=login["base_url"],
        credentials={
            key: login[key] for key in ("client_id", "client_secret", "company_id", "refresh_token")
        },
        options={"max_attempts": 3, "backoff_base_seconds": 0.01},
    ).value


def token_requests(sandbox: AccountViewSandbox) -> int:
    return sandbox.faults.log.counts().get("POST token", 0)


def test_holders_in_other_threads_and_stores_refresh_once_and_share_the_new_token(
    served: tuple[AccountViewSandbox, str], store_factory: StoreFactory
) -> None:
    sandbox, url = served
    connection = stored_connection(store_factory(), sandbox, url)
    sandbox.faults.log.clear()
    start = threading.Barrier(3)
    checks: list[ConnectionCheck] = []

    def holder() -> None:
        store = store_factory()  # its own engine and connections, as another process has
        start.wait()
        checks.append(asyncio.run(connections.check_connection(store, connection)))

    threads = [threading.Thread(target=holder) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [check.works for check in checks] == [True, True, True], [c.message for c in checks]
    assert token_requests(sandbox) == 1


async def test_a_lost_token_answer_is_not_replayed_and_a_spent_grant_says_so(
    served: tuple[AccountViewSandbox, str], store: Store
) -> None:
    sandbox, url = served
    connection = stored_connection(store, sandbox, url)
    sandbox.faults.log.clear()
    sandbox.faults.configure(FaultConfig(drop_rate=1.0))  # handled, then the answer is lost
    try:
        lost = await connections.check_connection(store, connection)
    finally:
        sandbox.faults.configure(FaultConfig())
    assert not lost.works and "answer to AccountView's token request was lost" in lost.message
    assert token_requests(sandbox) == 1  # not sent again with a token that may be spent
    assert store.connections.get(connection.id).state is ConnectionState.READY  # type: ignore[union-attr]

    spent = await connections.check_connection(store, connection)
    assert token_requests(sandbox) == 2  # the stored token, tried once more
    assert not spent.works and spent.message.startswith("AccountView refused the refresh token")
    assert spent.fix == "authorise it again: koppel connection authorize av --config FILE"
    marked = store.connections.get(connection.id)
    assert marked is not None and marked.state is ConnectionState.NEEDS_AUTHORISATION
    assert marked.state_reason is not None and "authorisation is gone" in marked.state_reason
    secrets: dict[str, Any] = store.connections.get_credentials(connection.id)
    assert secrets["client_secret"] not in spent.message + marked.state_reason
