"""What one flow run works with: its stored definition, both connectors and compiled mappings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from koppel.connectors.base import ClientLimits
from koppel.connectors.errors import ConnectionSettingsError, ConnectorError, GrantLost
from koppel.connectors.options import ConnectionOptions
from koppel.connectors.registry import ClientConnector, build_connector
from koppel.connectors.shared import SharedGate
from koppel.errors import ErrorCategory, KoppelError, validation_message
from koppel.flows.dry_run import Rehearsal
from koppel.flows.mappings import (
    ATTACHED_RECORDS,
    FlowMappings,
    FlowSetupError,
    application_entity,
    attached_schema,
    flow_mappings,
)
from koppel.flows.settings import FlowSettings, flow_settings, settings_model
from koppel.store import ConnectionState, Store
from koppel.store.records import Connection, Flow, Integration

S = TypeVar("S", bound=FlowSettings)
TOKEN_LOCK_SCOPE = "connection-token"
"""Key lock scope held while a connection's token is refreshed (key: the connection id)."""
TOKEN_LOCK_WAIT_S = 60.0
"""How long a holder waits for another one's refresh of the same connection before it fails."""
_TOKEN_LOCK_TTL = timedelta(minutes=2)


def settings_problems(error: ValidationError) -> str:
    """What is wrong with flow settings, one `setting NAME: rule` per problem."""
    return "; ".join(
        f"setting {'.'.join(str(p) for p in e['loc'])}: "
        + ("unknown setting" if e["type"] == "extra_forbidden" else e["msg"])
        for e in error.errors(include_input=False, include_url=False)
    )


class NeedsAuthorisation(KoppelError):
    """A run needs a connection whose grant the API refused: it fails at once, saying so."""

    category = ErrorCategory.AUTHORISATION

    def __init__(self, connection: Connection) -> None:
        super().__init__(
            f"connection {connection.name} needs authorisation: "
            f"{connection.state_reason or 'the API refused its grant'}\n"
            f"authorise it again: koppel connection authorize {connection.name} --config FILE"
        )


def connection_fix(error: ConnectorError, name: str) -> str:
    """What to do about a connection that failed this way: the command that checks it, or for
    a lost grant the one that authorises it again."""
    if isinstance(error, GrantLost):
        return f"authorise it again: koppel connection authorize {name} --config FILE"
    if error.category is ErrorCategory.AUTHORISATION:
        return f"check its credentials in the file, then: koppel connection test {name} -c FILE"
    if error.category is ErrorCategory.CONFIGURATION:
        return f"fix connection {name} in the file, then: koppel connection test {name} -c FILE"
    return f"check it: koppel connection test {name} --config FILE"


def ready(connection: Connection) -> Connection:
    """The connection, when runs may use it; NeedsAuthorisation when its grant is gone."""
    if connection.state is ConnectionState.NEEDS_AUTHORISATION:
        raise NeedsAuthorisation(connection)
    return connection


@dataclass
class FlowRuntime:
    store: Store
    flow: Flow
    integration: Integration
    source_connection: Connection
    target_connection: Connection
    source: ClientConnector
    target: ClientConnector
    mappings: FlowMappings
    settings: FlowSettings
    """The flow's settings over the integration's shared ones, as its flow type's model."""

    @classmethod
    def open(
        cls,
        store: Store,
        flow_id: int,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        dry_run: Rehearsal | None = None,
    ) -> FlowRuntime:
        """Load the flow and build its connectors and mappings (no API call is made).

        `transport` goes under both connectors (see `stored_connector`); with `dry_run` both
        connectors write nowhere (see koppel.flows.dry_run).
        """
        flow = store.flows.get(flow_id)
        if flow is None:
            raise LookupError(f"flow {flow_id} does not exist")
        integration = store.integrations.get(flow.integration_id)
        source_connection = store.connections.get(flow.source_connection_id)
        target_connection = store.connections.get(flow.target_connection_id)
        assert integration and source_connection and target_connection
        try:
            settings = flow_settings(
                settings_model(source_connection.application, flow.entity),
                integration.settings,
                flow.settings,
            )
        except ValidationError as error:
            raise FlowSetupError(f"flow {flow.name}: {settings_problems(error)}") from None
        source = stored_connector(store, source_connection, transport=transport)
        target = stored_connector(store, target_connection, transport=transport)
        if dry_run is not None:
            source = dry_run.wrap(source_connection.id, source)
            target = dry_run.wrap(target_connection.id, target)
        source_entity = application_entity(source_connection.application, flow.entity)
        target_entity = application_entity(target_connection.application, flow.entity)
        mappings = flow_mappings(
            entity=flow.entity,
            source_application=source_connection.application,
            source_schema=attached_schema(
                source.entities[source_entity].schema,
                {
                    name: source.entities[entity].schema
                    for name, entity in ATTACHED_RECORDS.get(
                        (source_connection.application, flow.entity), {}
                    ).items()
                },
            ),
            target_application=target_connection.application,
            target_schema=target.entities[target_entity].schema,
            overrides=flow.mapping,
            tables=settings.tables,
        )
        return cls(
            store,
            flow,
            integration,
            source_connection,
            target_connection,
            source,
            target,
            mappings,
            settings,
        )

    def settings_as(self, model: type[S]) -> S:
        """The flow's settings as the model a part of the flow reads (the orders flow's are
        also customer settings, for the debtors it writes)."""
        if not isinstance(self.settings, model):
            raise FlowSetupError(
                f"flow {self.flow.name}: a {self.flow.entity} flow has no {model.__name__}"
            )
        return self.settings

    def source_entity(self, entity: str | None = None) -> str:
        return application_entity(self.source_connection.application, entity or self.flow.entity)

    def target_entity(self, entity: str | None = None) -> str:
        return application_entity(self.target_connection.application, entity or self.flow.entity)

    def api_calls(self) -> int:
        return self.source.client.calls.total + self.target.client.calls.total

    def record_health(self) -> None:
        """Keep how both connections' calls went on them (the dashboard's connection health)."""
        for connection, connector in (
            (self.source_connection, self.source),
            (self.target_connection, self.target),
        ):
            health = connector.client.health
            if health.last_ok_at is not None or health.last_error_at is not None:
                self.store.connections.record_health(
                    connection.id,
                    ok_at=health.last_ok_at,
                    error=health.last_error,
                    error_at=health.last_error_at,
                )

    async def aclose(self) -> None:
        await self.source.aclose()
        await self.target.aclose()


class StoredCredentials:
    """A stored connection's credentials as its connector keeps them (`CredentialStore`): one
    refresh at a time across every process on the database (a key lock), the new tokens
    stored before they are used, a refused grant marked on the connection."""

    def __init__(self, store: Store, connection: Connection) -> None:
        self._store = store
        self._connection = connection

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        owner, key = uuid.uuid4().hex, str(self._connection.id)
        locks = self._store.key_locks
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TOKEN_LOCK_WAIT_S
        while not locks.acquire_many(TOKEN_LOCK_SCOPE, [key], owner, ttl=_TOKEN_LOCK_TTL):
            if loop.time() > deadline:
                raise ConnectorError(
                    f"connection {self._connection.name}: another process has been refreshing "
                    f"its token for over {TOKEN_LOCK_WAIT_S:g} s; try again later"
                )
            await asyncio.sleep(0.1)
        try:
            yield
        finally:
            locks.release_many(TOKEN_LOCK_SCOPE, [key], owner)

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        return self._held()

    async def load(self) -> dict[str, Any]:
        return self._store.connections.get_credentials(self._connection.id)

    async def save(self, credentials: Mapping[str, Any]) -> None:
        self._store.connections.update_credentials(self._connection.id, credentials)

    async def grant_lost(self, reason: str) -> None:
        self._store.connections.set_state(
            self._connection.id, ConnectionState.NEEDS_AUTHORISATION, reason
        )


def stored_connector(
    store: Store,
    connection: Connection,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    adjust: Callable[[ClientLimits], ClientLimits] | None = None,
) -> ClientConnector:
    """The connector for a stored connection, within the limits its options set; credentials the
    API rotates are kept by `StoredCredentials`. Runs, connection tests, authorisations and
    mapping samples all build it here. On a PostgreSQL store the limits hold for every process
    on the store together (`SharedGate`); on SQLite, one process, they are kept in memory.

    `transport` replaces the network (tests serve a sandbox in-process through
    `httpx.ASGITransport`, or several by host); None is real HTTP. `adjust` tightens the
    limits for one use (a connection test answers within seconds).
    """
    credentials = store.connections.get_credentials(connection.id)
    try:
        limits = ConnectionOptions.model_validate(connection.options).limits()
    except ValidationError as error:
        raise ConnectionSettingsError(
            f"connection {connection.name}: options: {validation_message(error)}"
        ) from None
    if adjust is not None:
        limits = adjust(limits)
    connector = build_connector(
        connection.application,
        connection.base_url,
        credentials,
        credential_store=StoredCredentials(store, connection),
        limits=limits,
        transport=transport,
        name=connection.name,
    )
    if store.engine.dialect.name == "postgresql":
        # Several processes may share this store: the limits are the sum of theirs.
        connector.client.share_limits(SharedGate(store.connection_limits, connection.id, limits))
    return connector


__all__ = [
    "TOKEN_LOCK_SCOPE",
    "TOKEN_LOCK_WAIT_S",
    "FlowRuntime",
    "NeedsAuthorisation",
    "StoredCredentials",
    "connection_fix",
    "ready",
    "stored_connector",
]
