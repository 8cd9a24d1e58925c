"""What one flow run works with: its stored definition, both connectors and compiled mappings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from koppel.connectors.base import ClientLimits
from koppel.connectors.registry import ClientConnector, build_connector
from koppel.flows.mappings import (
    ATTACHED_RECORDS,
    FlowMappings,
    application_entity,
    attached_schema,
    flow_mappings,
)
from koppel.store import Store
from koppel.store.records import Connection, Flow, Integration

DEFAULT_PAGE_SIZE = 500
"""Parts Pim's largest page: per-batch costs (checkpoint, transaction, round trips) spread over
the most records; docs/performance.md measured 0.0186 calls per product against 0.0284 at 200."""
DEFAULT_CURSOR_MARGIN_S = 120


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

    @classmethod
    def open(
        cls, store: Store, flow_id: int, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> FlowRuntime:
        """Load the flow and build its connectors and mappings (no API call is made).

        `transport` goes under both connectors (see `stored_connector`).
        """
        flow = store.flows.get(flow_id)
        if flow is None:
            raise LookupError(f"flow {flow_id} does not exist")
        integration = store.integrations.get(flow.integration_id)
        source_connection = store.connections.get(flow.source_connection_id)
        target_connection = store.connections.get(flow.target_connection_id)
        assert integration and source_connection and target_connection
        source = stored_connector(store, source_connection, transport=transport)
        target = stored_connector(store, target_connection, transport=transport)
        settings = {**integration.settings, **flow.settings}
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
            tables=settings.get("tables") or {},
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
        )

    @property
    def settings(self) -> dict[str, Any]:
        """The flow's settings over the integration's shared ones."""
        return {**self.integration.settings, **self.flow.settings}

    @property
    def page_size(self) -> int:
        return int(self.settings.get("page_size", DEFAULT_PAGE_SIZE))

    @property
    def cursor_margin_s(self) -> int:
        return int(self.settings.get("cursor_margin_seconds", DEFAULT_CURSOR_MARGIN_S))

    def source_entity(self, entity: str | None = None) -> str:
        return application_entity(self.source_connection.application, entity or self.flow.entity)

    def target_entity(self, entity: str | None = None) -> str:
        return application_entity(self.target_connection.application, entity or self.flow.entity)

    def api_calls(self) -> int:
        return self.source.client.calls.total + self.target.client.calls.total

    async def aclose(self) -> None:
        await self.source.aclose()
        await self.target.aclose()


def stored_connector(
    store: Store, connection: Connection, *, transport: httpx.AsyncBaseTransport | None = None
) -> ClientConnector:
    """The connector for a stored connection, within the limits its options set; credentials the
    API rotates are stored again. Runs, connection tests and mapping samples all build it here.

    `transport` replaces the network (tests serve a sandbox in-process through
    `httpx.ASGITransport`, or several by host); None is real HTTP.
    """
    credentials = store.connections.get_credentials(connection.id)

    async def persist(new_credentials: dict[str, Any]) -> None:
        store.connections.update_credentials(connection.id, new_credentials)

    options = connection.options
    limits = ClientLimits(
        concurrency=int(options.get("concurrency", 8)),
        rate_per_second=options.get("rate_per_second"),
        timeout_s=float(options.get("timeout_seconds", 30)),
        max_attempts=int(options.get("max_attempts", 8)),
        backoff_base_s=float(options.get("backoff_base_seconds", 0.1)),
        backoff_max_s=float(options.get("backoff_max_seconds", 10)),
    )
    return build_connector(
        connection.application,
        connection.base_url,
        credentials,
        on_credentials=persist,
        limits=limits,
        transport=transport,
    )


__all__ = ["FlowRuntime", "stored_connector"]
