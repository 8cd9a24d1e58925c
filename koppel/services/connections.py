"""Testing a connection: log in and make one small call.

A test ends within CHECK_DEADLINE_S with the reason when it does not work: refused, a name that
does not resolve, a timeout, TLS, or the API's HTTP status, each with what to check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from koppel.config import IntegrationConfig
from koppel.connectors.base import ClientLimits
from koppel.connectors.errors import ConnectorError
from koppel.connectors.registry import ClientConnector, build_connector
from koppel.errors import ErrorCategory
from koppel.flows.runtime import connection_fix, stored_connector
from koppel.services.errors import NotFound
from koppel.services.setup import apply_file
from koppel.store import Connection, Store

CHECK_DEADLINE_S = 15.0
"""A connection test ends within this, whatever the API does."""


def _for_a_test(limits: ClientLimits) -> ClientLimits:
    """One try per call and short timeouts: a test says what is wrong within seconds."""
    return replace(
        limits,
        timeout_s=min(limits.timeout_s, 10.0),
        connect_timeout_s=min(limits.connect_timeout_s, 5.0),
        max_attempts=1,
    )


@dataclass(frozen=True)
class ConnectionCheck:
    """Whether a connection works: what the application said, or why it does not work."""

    name: str
    application: str
    base_url: str
    works: bool
    message: str
    category: ErrorCategory | None
    """Why it does not work: connection (unreachable, an error answer), authorisation (the
    credentials were refused: enter or authorise them again) or configuration."""
    fix: str | None = None
    """What to do when it does not work (the command that authorises it again, ...)."""

    @property
    def description(self) -> str:
        return f"connection {self.name} ({self.application}, {self.base_url})"


def connection_named(store: Store, tenant_id: int, name: str) -> Connection:
    found = store.connections.get_by_name(tenant_id, name)
    if found is None:
        names = ", ".join(c.name for c in store.connections.list(tenant_id)) or "none"
        raise NotFound(f"no connection named {name!r}; the connections: {names}")
    return found


async def _tried(
    connector: ClientConnector, name: str, base_url: str
) -> tuple[str, ErrorCategory | None, str | None]:
    """One check call within CHECK_DEADLINE_S: what the application said, or why not and
    what to do; the connector is closed."""
    fix: str | None = None
    try:
        async with asyncio.timeout(CHECK_DEADLINE_S):
            message, category = await connector.check(), None
    except ConnectorError as error:
        message, category = str(error), error.category
        if category is not ErrorCategory.CONNECTION:  # that message says what to check
            fix = connection_fix(error, name)
    except TimeoutError:
        message = f"{base_url} answered, but too slowly: the test took over {CHECK_DEADLINE_S:g} s"
        category, fix = ErrorCategory.CONNECTION, "check the service's health, then try again"
    finally:
        await connector.aclose()
    return message, category, fix


async def check_connection(
    store: Store, connection: Connection, *, transport: httpx.AsyncBaseTransport | None = None
) -> ConnectionCheck:
    """One small call through the stored connection; credentials the API rotates on it are
    stored again, and how it went is kept as the connection's health."""
    connector = stored_connector(store, connection, transport=transport, adjust=_for_a_test)
    message, category, fix = await _tried(connector, connection.name, connection.base_url)
    now = datetime.now(UTC)
    if category is None:
        store.connections.record_health(connection.id, ok_at=now)
    else:
        store.connections.record_health(connection.id, error=message, error_at=now)
    return ConnectionCheck(
        name=connection.name,
        application=connection.application.value,
        base_url=connection.base_url,
        works=category is None,
        message=message,
        category=category,
        fix=fix,
    )


async def check_new_connection(
    name: str,
    application: str,
    base_url: str,
    credentials: Mapping[str, Any],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ConnectionCheck:
    """The test of a connection not stored yet (the setup wizard tests before it saves): the
    same call and deadline; nothing is kept."""
    try:
        connector = build_connector(
            application,
            base_url,
            credentials,
            limits=_for_a_test(ClientLimits()),
            transport=transport,
            name=name,
        )
    except ConnectorError as error:
        return ConnectionCheck(name, application, base_url, False, str(error), error.category)
    message, category, fix = await _tried(connector, name, base_url)
    return ConnectionCheck(name, application, base_url, category is None, message, category, fix)


async def check_file_connection(
    store: Store,
    config: IntegrationConfig,
    file: Path,
    name: str,
    *,
    actor: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ConnectionCheck:
    """Apply the file (`setup.apply_file`: checked first), then check its connection `name`:
    applied first, so a refresh token the API rotates on this call is kept."""
    if name not in config.connections:
        raise NotFound(
            f"{file}: no connection named {name!r}; its connections: "
            f"{', '.join(config.connections)}"
        )
    integration = apply_file(store, config, file, actor=actor).integration
    connection = connection_named(store, integration.tenant_id, name)
    return await check_connection(store, connection, transport=transport)


__all__ = [
    "CHECK_DEADLINE_S",
    "ConnectionCheck",
    "check_connection",
    "check_file_connection",
    "check_new_connection",
    "connection_named",
]
