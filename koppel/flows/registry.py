"""Which flows exist: for each (source application, entity), the phases a run goes through.

A run reads its phases in order, page by page; each phase syncs one canonical entity with its own
`RecordSync`. A flow that writes more than one entity (products also writes categories) prefixes
the keys it logs for the other entities (`category:7`), so its dead letters find their phase.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from koppel.connectors.base import Record
from koppel.flows.customers import CUSTOMER_LOG_PREFIX, CUSTOMERS, CustomerSync
from koppel.flows.orders_to_accountview import OrderSync
from koppel.flows.orders_to_partspim import ORDERS, OrderToPartsPimSync
from koppel.flows.products import (
    CATEGORIES,
    CATEGORY_LOG_PREFIX,
    PRODUCTS,
    CategorySync,
    ProductSync,
)
from koppel.flows.products_to_partspim import ArticleToPartsPimSync
from koppel.flows.runtime import FlowRuntime
from koppel.flows.stock import STOCK, StockSync
from koppel.store import Flow, Store


class RecordSync(Protocol):
    """Syncs one page of source records of one phase and records their outcomes."""

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]: ...


FlowKind = tuple[str, str]
"""A kind of flow: (source application, canonical entity)."""


@dataclass(frozen=True)
class FlowType:
    phases: tuple[str, ...]
    """Canonical entities read from the source, in order, in one run."""
    syncs: dict[str, Callable[[FlowRuntime], RecordSync]]
    """The RecordSync of each phase (and of every entity whose dead letters it may retry)."""
    log_prefixes: dict[str, str] = field(default_factory=dict)
    """Phase -> prefix of the keys it logs, for phases other than the flow's own entity."""
    retry_keys: dict[str, str] = field(default_factory=dict)
    """Phase -> the source field its logged keys are (default: the source entity's id field), by
    which a dead letter's record is read again; stock logs SKUs, one per SKU of many rows."""
    requires: tuple[FlowKind, ...] = ()
    """Flows of the same integration that must have completed a run before this one runs: those
    that make what this flow cannot make itself and fails without (the articles stock is written
    to); those the integration has and enables count, others are not waited for."""

    def phase_of(self, entity: str, logged_key: str) -> tuple[str, str]:
        """The phase that logged a key, and the record key: `category:7` -> (categories, 7)."""
        for phase, prefix in self.log_prefixes.items():
            if logged_key.startswith(prefix):
                return phase, logged_key.removeprefix(prefix)
        return entity, logged_key


FLOW_TYPES: dict[tuple[str, str], FlowType] = {
    ("partspim", PRODUCTS): FlowType(
        phases=(CATEGORIES, PRODUCTS),
        syncs={CATEGORIES: CategorySync, PRODUCTS: ProductSync},
        log_prefixes={CATEGORIES: CATEGORY_LOG_PREFIX},
        # Not a categories flow: this one writes the article groups its products need itself.
    ),
    ("partspim", CATEGORIES): FlowType(phases=(CATEGORIES,), syncs={CATEGORIES: CategorySync}),
    ("partspim", CUSTOMERS): FlowType(phases=(CUSTOMERS,), syncs={CUSTOMERS: CustomerSync}),
    ("partspim", ORDERS): FlowType(
        phases=(ORDERS,),
        syncs={ORDERS: OrderSync, CUSTOMERS: CustomerSync},
        log_prefixes={CUSTOMERS: CUSTOMER_LOG_PREFIX},
        # Not the customers flow: this one writes the debtors its orders need itself, under
        # the same per-e-mail lock, so waiting for it would only delay the orders.
        requires=(("partspim", PRODUCTS),),
    ),
    ("accountview", ORDERS): FlowType(
        phases=(ORDERS,),
        syncs={ORDERS: OrderToPartsPimSync},
        requires=(("accountview", PRODUCTS),),
    ),
    ("accountview", PRODUCTS): FlowType(
        phases=(PRODUCTS,), syncs={PRODUCTS: ArticleToPartsPimSync}
    ),
    ("partspim", STOCK): FlowType(
        phases=(STOCK,),
        syncs={STOCK: StockSync},
        retry_keys={STOCK: "sku"},
        requires=(("partspim", PRODUCTS),),
    ),
}


def flow_type(source_application: str, entity: str) -> FlowType:
    try:
        return FLOW_TYPES[(source_application, entity)]
    except KeyError:
        known = ", ".join(f"{e} from {a}" for a, e in sorted(FLOW_TYPES))
        raise LookupError(
            f"Koppel has no flow of {entity} from {source_application}; it has: {known}"
        ) from None


def flow_kind(store: Store, flow: Flow) -> FlowKind:
    connection = store.connections.get(flow.source_connection_id)
    assert connection is not None
    return (connection.application.value, flow.entity)


def _requires(store: Store, flow: Flow) -> tuple[FlowKind, ...]:
    """What the flow waits for; nothing for a flow of no known type (that is refused later,
    with its reason, by the checks before a run)."""
    known = FLOW_TYPES.get(flow_kind(store, flow))
    return () if known is None else known.requires


def prerequisites(store: Store, flow: Flow) -> list[Flow]:
    """The enabled flows of the flow's integration that it waits for (`FlowType.requires`)."""
    required = set(_requires(store, flow))
    return [
        other
        for other in store.flows.list(flow.integration_id)
        if other.enabled and other.id != flow.id and flow_kind(store, other) in required
    ]


def dependents(store: Store, flow: Flow) -> list[Flow]:
    """The flows of the flow's integration that wait for it (it is among their prerequisites)."""
    kind = flow_kind(store, flow)
    return [
        other
        for other in store.flows.list(flow.integration_id)
        if other.id != flow.id and kind in _requires(store, other)
    ]


def in_dependency_order(store: Store, flows: Sequence[Flow]) -> list[Flow]:
    """The flows with each one after those it waits for; otherwise in the order given."""
    ordered: list[Flow] = []
    placed: set[int] = set()
    chosen = {flow.id: flow for flow in flows}

    def place(flow: Flow, path: frozenset[int]) -> None:
        if flow.id in placed or flow.id in path:
            return
        for first in prerequisites(store, flow):
            if first.id in chosen:
                place(chosen[first.id], path | {flow.id})
        placed.add(flow.id)
        ordered.append(flow)

    for flow in flows:
        place(flow, frozenset())
    return ordered


__all__ = [
    "FLOW_TYPES",
    "FlowKind",
    "FlowType",
    "RecordSync",
    "dependents",
    "flow_kind",
    "flow_type",
    "in_dependency_order",
    "prerequisites",
]
