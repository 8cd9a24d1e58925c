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

import asyncio
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

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
_HOOK_TOKEN = re.compile(re.escape(HOOK_PATH) + r"/[^/?#\s\"]+")
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


@dataclass(frozen=True)
class Checked:
    """A delivery whose signature and age are right: from Parts Pim, not yet known to be new."""

    connection_id: int
    delivery_id: str
    event: str
    data: Mapping[str, Any] | None


def check(store: Store, token: str, body: bytes, headers: Mapping[str, str]) -> Checked:
    """The delivery, if the subscription at this address signed it lately; else why not."""
    found = store.webhooks.by_token(token)
    if found is None:
        raise UnknownWebhook("no webhook subscription has this address")
    subscription, secret = found
    try:
        event = verify_webhook(secret, body, headers)
    except WebhookSignatureError as error:
        raise WebhookRefused(f"webhook delivery refused: {error}") from None
    data = event.get("data")
    return Checked(
        subscription.connection_id,
        str(event["id"]),
        str(event.get("event") or ""),
        data if isinstance(data, dict) else None,
    )


def record(store: Store, deliveries: Sequence[Checked]) -> list[Received | WebhookReplayed]:
    """Accept each delivery once and record the records it names as pending changes of the
    flows that read them; per delivery what it named (the caller wakes those flows) or, for
    one accepted before, the refusal.

    One transaction for all of them (a burst costs one commit per group, not per delivery),
    in which the ids are accepted and the keys recorded together: a crash cannot leave a
    delivery refused as a replay whose records were never recorded."""
    window = timedelta(seconds=contract.SIGNATURE_TOLERANCE_S * 2)
    results: list[Received | WebhookReplayed] = []
    keys: dict[tuple[int, str], list[str]] = {}
    with store.transaction() as tx:
        accepted: list[bool] = tx.webhooks.accept_deliveries(
            [(d.connection_id, d.delivery_id) for d in deliveries], window=window
        )
        flows = {c: _reading_flows(tx, c) for c in {d.connection_id for d in deliveries}}
        for item, new in zip(deliveries, accepted, strict=True):
            if not new:
                results.append(
                    WebhookReplayed(f"webhook delivery {item.delivery_id} was accepted before")
                )
                continue
            named: dict[int, int] = {}
            entity = EVENT_ENTITIES.get(item.event.split(".")[0])
            if entity is not None and item.data is not None:
                for flow in flows[item.connection_id]:
                    for phase in _phases_reading(flow, entity):
                        key = item.data.get(_key_field(flow, phase))
                        if key is None or str(key) == "":
                            continue
                        keys.setdefault((flow.id, phase), []).append(str(key))
                        named[flow.id] = named.get(flow.id, 0) + 1
            # An event Koppel has no use for is acknowledged all the same.
            results.append(Received(item.delivery_id, item.event, named))
        for (flow_id, phase), named_keys in keys.items():
            tx.pending_changes.add(flow_id, phase, named_keys)
    return results


class DeliveryIntake:
    """Records checked deliveries in groups: while one group is written, the deliveries that
    come meanwhile wait and are written together next, so a burst of a thousand is a few
    dozen commits and each request still hears whether its own delivery was accepted."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[tuple[Checked, asyncio.Future[Received | WebhookReplayed]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def receive(self, token: str, body: bytes, headers: Mapping[str, str]) -> Received:
        """Check and record one delivery; raises UnknownWebhook, WebhookRefused or
        WebhookReplayed, and records nothing then."""
        checked = await asyncio.to_thread(check, self._store, token, body, headers)
        future: asyncio.Future[Received | WebhookReplayed] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((checked, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        result = await future
        if isinstance(result, WebhookReplayed):
            raise result
        return result

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                results = await asyncio.to_thread(record, self._store, [c for c, _ in group])
            except Exception as error:  # each request answers with it; the next group goes on
                for _, future in group:
                    future.set_exception(error)
                continue
            for (_, future), result in zip(group, results, strict=True):
                future.set_result(result)


@dataclass(frozen=True)
class SubscriptionChange:
    connection: str
    action: str
    """`subscribed`, `unsubscribed`, or `failed: <reason>`."""


def masked(text: str) -> str:
    """`text` (a path, a log line) with the token of any delivery address left out: the address
    is not a credential (a delivery must be signed), but it is kept out of logs all the same."""
    return _HOOK_TOKEN.sub(HOOK_PATH + "/…", text)


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
    "Checked",
    "DeliveryIntake",
    "Received",
    "SubscriptionChange",
    "UnknownWebhook",
    "WebhookRefused",
    "WebhookReplayed",
    "check",
    "hook_url",
    "masked",
    "record",
    "sync_subscriptions",
    "wanted_events",
]
