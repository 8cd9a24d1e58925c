"""Parts Pim webhooks: subscribing the connections that flows read from, and receiving deliveries.

A delivery is trusted only when it is signed with the subscription's secret, recent (the
signature's timestamp window) and new (its signed event id was not accepted before). It then
names records: each flow that reads that kind of record from the connection gets the record's key
in its pending changes, and a targeted run of the flow syncs them (`FlowRunner.wake`). Nothing is
run per delivery: the keys coalesce, so a burst makes a few runs.

Subscriptions follow the flows: a Parts Pim connection that an enabled flow reads from is
subscribed to the events of what those flows read, at this server's address with a random token
per connection; one that no enabled flow reads from any more is unsubscribed. `koppel serve`
brings them in line at its start, after the web app activates or uploads an integration, and
every `SUBSCRIPTIONS_EVERY_S` (what `koppel config apply` changed).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from koppel.connectors.errors import ConnectorError
from koppel.connectors.partspim import contract
from koppel.connectors.partspim.client import PartsPimClient, WebhookSignatureError, verify_webhook
from koppel.errors import ErrorCategory, KoppelError
from koppel.flows.mappings import application_entity
from koppel.flows.registry import flow_type
from koppel.flows.runtime import stored_connector
from koppel.store import Application, Connection, Flow, Store

logger = logging.getLogger(__name__)

HOOK_PATH = "/hooks/partspim"
"""Deliveries come to `{public URL}/hooks/partspim/{token}`."""
SUBSCRIPTIONS_EVERY_S = 30.0
"""How often `koppel serve` brings subscriptions in line with the flows."""
EVENT_ENTITIES: dict[str, str] = {
    "product": "products",
    "category": "categories",
    "stock": "stock",
    "relation": "relations",
    "order": "orders",
    "invoice": "invoices",
}
"""Webhook event prefix -> the Parts Pim entity it is about (`product` -> `products`)."""


class WebhookRefused(KoppelError):
    """A delivery that is not trusted: unsigned, wrongly signed, tampered with or too old."""

    category = ErrorCategory.AUTHORISATION


class WebhookReplayed(KoppelError):
    """A delivery whose event id was accepted before: answered 409, nothing enqueued."""

    category = ErrorCategory.CONFLICT


class UnknownWebhook(KoppelError):
    """No subscription has this address (never made, or replaced since)."""

    category = ErrorCategory.NOT_FOUND


@dataclass(frozen=True)
class Received:
    """An accepted delivery: what it was and the records it named, per flow id."""

    delivery_id: str
    event: str
    named: Mapping[int, int] = field(default_factory=dict)


def _key_field(flow: Flow, phase: str) -> str:
    kind = flow_type(Application.PARTSPIM.value, flow.entity)
    return kind.retry_keys.get(phase) or "id"


def _phases_reading(flow: Flow, entity: str) -> list[str]:
    """The phases of the flow's runs that read this Parts Pim entity."""
    try:
        kind = flow_type(Application.PARTSPIM.value, flow.entity)
    except LookupError:
        return []
    return [p for p in kind.phases if application_entity("partspim", p) == entity]


def _reading_flows(store: Store, connection_id: int) -> list[Flow]:
    return [f for f in store.flows.list() if f.enabled and f.source_connection_id == connection_id]


def wanted_events(store: Store, connection: Connection) -> tuple[str, ...]:
    """The events the connection's enabled flows need: created and updated of what they read."""
    entities: set[str] = set()
    for flow in _reading_flows(store, connection.id):
        try:
            phases = flow_type(Application.PARTSPIM.value, flow.entity).phases
        except LookupError:
            continue
        entities.update(application_entity("partspim", p) for p in phases)
    return tuple(
        event
        for event in contract.WEBHOOK_EVENTS
        if EVENT_ENTITIES[event.split(".")[0]] in entities
    )


def receive(store: Store, token: str, body: bytes, headers: Mapping[str, str]) -> Received:
    """Check one delivery and record the records it names as pending changes of the flows that
    read them; the caller wakes those flows (`Received.named`).

    The delivery id is accepted and the keys are recorded in one transaction: a crash between
    the two cannot leave a delivery refused as a replay whose records were never recorded.
    """
    found = store.webhooks.by_token(token)
    if found is None:
        raise UnknownWebhook("no webhook subscription has this address")
    subscription, secret = found
    try:
        event = verify_webhook(secret, body, headers)
    except WebhookSignatureError as error:
        raise WebhookRefused(f"webhook delivery refused: {error}") from None
    delivery_id = str(event["id"])
    name = str(event.get("event") or "")
    data = event.get("data")
    entity = EVENT_ENTITIES.get(name.split(".")[0])
    window = timedelta(seconds=contract.SIGNATURE_TOLERANCE_S * 2)
    named: dict[int, int] = {}
    with store.transaction() as tx:
        if not tx.webhooks.accept_delivery(subscription.connection_id, delivery_id, window=window):
            raise WebhookReplayed(f"webhook delivery {delivery_id} was accepted before")
        if entity is None or not isinstance(data, dict):
            return Received(delivery_id, name)  # an event Koppel has no use for: acknowledged
        for flow in _reading_flows(tx, subscription.connection_id):
            for phase in _phases_reading(flow, entity):
                key = data.get(_key_field(flow, phase))
                if key is None or str(key) == "":
                    continue
                tx.pending_changes.add(flow.id, phase, [str(key)])
                named[flow.id] = named.get(flow.id, 0) + 1
    return Received(delivery_id, name, named)


@dataclass(frozen=True)
class SubscriptionChange:
    connection: str
    action: str
    """`subscribed`, `unsubscribed`, or `failed: <reason>`."""


def hook_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{HOOK_PATH}/{token}"


async def sync_subscriptions(
    store: Store, public_url: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> list[SubscriptionChange]:
    """Subscribe each Parts Pim connection that enabled flows read from (again, when the events
    they need or this server's address changed), unsubscribe those no enabled flow reads from.

    A new subscription is made and kept before the old one is deleted, so no change falls
    between them. A connection that cannot be reached is reported and tried again next time;
    the others go on."""
    changes: list[SubscriptionChange] = []
    base_url = public_url.rstrip("/")
    for connection in store.connections.list():
        if connection.application is not Application.PARTSPIM:
            continue
        existing = store.webhooks.get(connection.id)
        events = wanted_events(store, connection)
        if existing is not None and existing.events == events and existing.base_url == base_url:
            continue
        if existing is None and not events:
            continue
        try:
            action = await _resubscribe(store, connection, events, base_url, transport)
        except ConnectorError as error:
            logger.warning("webhooks of connection %s: %s", connection.name, error)
            action = f"failed: {error}"
        changes.append(SubscriptionChange(connection.name, action))
    return changes


async def _resubscribe(
    store: Store,
    connection: Connection,
    events: tuple[str, ...],
    base_url: str,
    transport: httpx.AsyncBaseTransport | None,
) -> str:
    existing = store.webhooks.get(connection.id)
    connector = stored_connector(store, connection, transport=transport)
    client = connector.client
    assert isinstance(client, PartsPimClient)
    try:
        action = "unsubscribed"
        if events:
            token = secrets.token_urlsafe(32)
            made = await client.subscribe(hook_url(base_url, token), events)
            store.webhooks.put(
                connection.id,
                token=token,
                remote_id=str(made["id"]),
                base_url=base_url,
                events=events,
                secret=str(made["secret"]),
            )
            action = "subscribed"
        else:
            store.webhooks.delete(connection.id)
        if existing is not None:
            await client.unsubscribe(existing.remote_id)
        return action
    finally:
        await connector.aclose()


__all__ = [
    "EVENT_ENTITIES",
    "HOOK_PATH",
    "SUBSCRIPTIONS_EVERY_S",
    "Received",
    "SubscriptionChange",
    "UnknownWebhook",
    "WebhookRefused",
    "WebhookReplayed",
    "hook_url",
    "receive",
    "sync_subscriptions",
    "wanted_events",
]
