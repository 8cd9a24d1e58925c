"""Reconciliation: both systems of a flow compared record by record, and the drift between them.

A flow writes only what changed in its source, so what someone changes by hand in the target (a
price edited, an article deleted, a stock level corrected) stays wrong until the source changes
again. A reconciliation finds it: it reads the whole source in pages, works out what the flow
would send for each record with the flow's own mapping and settings (no write, no category
created), looks those records up in the target in the same batches the flow uses, and names
every difference by record and field, with the value the flow would send and the one the target
holds:

- products: every Parts Pim SKU has its AccountView article with the mapped values (`missing`,
  `differs`); articles whose Parts Pim product is gone (`no_source`, found by the flow's links);
- stock: every SKU's article has the quantity of the flow's calculation over the chosen
  warehouses (`differs`; `missing` when the article is not there, which the products flow's
  reconciliation lists too);
- orders: every Parts Pim order changed in the period is in AccountView (`missing`).

Calls: one page read of the source per page, one look-up call per 100 keys in the target (as an
incremental run reads), and for products one more look-up per 100 linked articles whose source
was not seen; nothing per record. Memory: one page at a time, plus the set of source keys seen
(keys, not records) that tells which links lost their source.

`sync_drift` makes the next sync write the drifted records again whatever their links' hashes
say, and starts a targeted run of each flow for exactly those records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

import httpx

from koppel.connectors.base import Record
from koppel.connectors.errors import ConnectorError
from koppel.engine.jobs import RunSummary
from koppel.errors import ErrorCategory, KoppelError, reason_of
from koppel.flows.orders_to_accountview import FROM_ACCOUNTVIEW, ORDERS, OrderSync
from koppel.flows.pipeline import Item
from koppel.flows.products import PRODUCTS, ProductSync
from koppel.flows.registry import flow_kind, in_dependency_order
from koppel.flows.runtime import FlowRuntime, connection_fix
from koppel.flows.stock import STOCK, StockSync
from koppel.store import Flow, Store
from koppel.store.reconciliations import ReconciliationRecord

DIFFERENCES_KEPT = 500
"""Differences a reconciliation keeps per flow, to show and to sync; all of them are counted."""
ORDER_PERIOD_DAYS = 30
"""Orders changed in this many days before now are compared when no period is given."""
LOOKUP_BATCH = 100
"""Keys per look-up in the target: the batch AccountView's list filter takes in one call."""
RECONCILED = frozenset({("partspim", PRODUCTS), ("partspim", STOCK), ("partspim", ORDERS)})
"""The kinds of flow a reconciliation compares: (source application, entity)."""


class DriftKind(StrEnum):
    DIFFERS = "differs"
    """The target has the record, with another value in a field."""
    MISSING = "missing"
    """The target lacks the record."""
    NO_SOURCE = "no_source"
    """The target's record came from a source record that no longer exists."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the target differs from what the flow would send."""

    entity: str
    kind: DriftKind
    record: str
    """The record as people know it: "SKU '10000001'"."""
    source_key: str
    """The flow's key of the source record (its link's): what "sync these" syncs again."""
    target_key: str
    field: str | None = None
    """The target field that differs; None when the whole record is missing or has no source."""
    source_value: str | None = None
    """What the flow would send (None: nothing, or no value)."""
    target_value: str | None = None

    @property
    def fixable(self) -> bool:
        """A sync can put it right: the source still has the record."""
        return self.kind is not DriftKind.NO_SOURCE

    def to_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "kind": self.kind.value,
            "record": self.record,
            "source_key": self.source_key,
            "target_key": self.target_key,
            "field": self.field,
            "source_value": self.source_value,
            "target_value": self.target_value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Difference:
        return cls(
            entity=str(data["entity"]),
            kind=DriftKind(data["kind"]),
            record=str(data["record"]),
            source_key=str(data["source_key"]),
            target_key=str(data["target_key"]),
            field=data.get("field"),
            source_value=data.get("source_value"),
            target_value=data.get("target_value"),
        )


@dataclass
class FlowDrift:
    """One flow's reconciliation."""

    flow: str
    flow_id: int
    entity: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    compared: int = 0
    """Records the flow would send that were looked up in the target."""
    not_compared: int = 0
    """Records the flow would not send (they fail its mapping or checks, or its settings leave
    them out): their reasons are in the activity log of its runs."""
    drift: int = 0
    """Every difference found; `differences` keeps the first DIFFERENCES_KEPT."""
    differences: list[Difference] = field(default_factory=list)
    api_calls: int = 0
    error: str | None = None
    id: int | None = None
    """The stored reconciliation's id (`sync_drift` takes it)."""

    def add(self, difference: Difference) -> None:
        self.drift += 1
        if len(self.differences) < DIFFERENCES_KEPT:
            self.differences.append(difference)

    @property
    def fixable(self) -> list[Difference]:
        return [d for d in self.differences if d.fixable]


@dataclass(frozen=True)
class ReconcileReport:
    flows: tuple[FlowDrift, ...]

    @property
    def drift(self) -> int:
        return sum(f.drift for f in self.flows)

    @property
    def ok(self) -> bool:
        return all(f.error is None for f in self.flows)


class NothingToReconcile(KoppelError):
    category = ErrorCategory.CONFIGURATION


def N_(message: str) -> str:
    """Marks a message for the web app's catalogue without translating it here."""
    return message


NO_ENGINE = N_(
    "This server runs no flows (koppel serve --no-worker), so it cannot sync the drift. Run "
    "koppel reconcile --sync where the worker runs, or serve without --no-worker."
)


class NoEngineHere(KoppelError):
    """ "Sync these" needs the engine, which this server does not run. The web app shows
    `message_id` translated."""

    category = ErrorCategory.CONFLICT
    message_id = NO_ENGINE

    def __init__(self) -> None:
        super().__init__(NO_ENGINE)


class Resyncer(Protocol):
    """What runs the targeted runs of "sync these": the FlowRunner."""

    async def start_resync(self, flow_id: int, source_keys: Sequence[str]) -> str: ...

    async def follow(self, run_id: str) -> RunSummary: ...


def reconcilable(store: Store, flows: Iterable[Flow]) -> list[Flow]:
    """The flows a reconciliation compares (products, stock and orders from Parts Pim)."""
    return [flow for flow in flows if flow_kind(store, flow) in RECONCILED]


async def reconcile_flows(
    store: Store,
    flows: Sequence[Flow],
    *,
    since: date | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ReconcileReport:
    """Compare both systems of each flow (see the module) and store what was found.

    `since`: the first day of the period whose orders are compared (default: the last
    ORDER_PERIOD_DAYS days). A flow whose kind is not compared is refused with the kinds that
    are; a flow that cannot be read is reported with its reason, the others go on.
    """
    chosen = reconcilable(store, flows)
    refused = [f.name for f in flows if f not in chosen]
    if refused or not chosen:
        names = ", ".join(refused) or "none"
        raise NothingToReconcile(
            f"reconciliation compares the products, stock and orders flows from Parts Pim; "
            f"not: {names}"
        )
    start = since or (datetime.now(UTC) - timedelta(days=ORDER_PERIOD_DAYS)).date()
    results: list[FlowDrift] = []
    for flow in chosen:
        found = FlowDrift(flow.name, flow.id, flow.entity)
        runtime: FlowRuntime | None = None
        try:
            runtime = FlowRuntime.open(store, flow.id, transport=transport)
            if flow.entity == PRODUCTS:
                await _products(runtime, found)
            elif flow.entity == STOCK:
                await _stock(runtime, found)
            else:
                await _orders(runtime, found, datetime.combine(start, datetime.min.time(), UTC))
        except Exception as error:
            found.error = _failure(error)
        finally:
            if runtime is not None:
                found.api_calls = runtime.api_calls()
                runtime.record_health()
                await runtime.aclose()
        found.finished_at = datetime.now(UTC)
        found.id = store.reconciliations.add(
            flow.id,
            started_at=found.started_at,
            finished_at=found.finished_at,
            compared=found.compared,
            drift=found.drift,
            api_calls=found.api_calls,
            differences=[d.to_json() for d in found.differences],
            error=found.error,
        )
        results.append(found)
    return ReconcileReport(tuple(results))


def _failure(error: Exception) -> str:
    reason = reason_of(error)
    if isinstance(error, ConnectorError) and error.connection is not None:
        return f"connection {error.connection}: {reason}\n{connection_fix(error, error.connection)}"
    return reason


async def _pages(
    runtime: FlowRuntime, entity: str, since: datetime | None = None
) -> AsyncIterator[list[Record]]:
    pages = runtime.source.read(
        runtime.source_entity(entity), since=since, page_size=runtime.settings.page_size
    )
    try:
        async for page in pages:
            yield page
    finally:
        await pages.aclose()


async def _in_target(runtime: FlowRuntime, entity: str, keys: Sequence[str]) -> dict[str, Record]:
    """The target's records of these keys, by key (one call per LOOKUP_BATCH keys)."""
    target_entity = runtime.target_entity(entity)
    key_field = runtime.target.entities[target_entity].key_field
    found = await runtime.target.lookup(target_entity, key_field, list(dict.fromkeys(keys)))
    return {str(r.get(key_field)): r for r in found}


def _compare(
    found: FlowDrift, items: Sequence[Item], key_field: str, targets: Mapping[str, Record]
) -> None:
    """Each item's update payload field by field against the target's record."""
    for item in items:
        assert item.update is not None
        key = str(item.target_key)
        target = targets.get(key)
        if target is None:
            found.add(Difference(found.entity, DriftKind.MISSING, item.label, item.source_key, key))
            continue
        for name, value in item.update.items():
            if name == key_field or isinstance(value, list | dict):
                continue
            if not same(value, target.get(name)):
                found.add(
                    Difference(
                        found.entity,
                        DriftKind.DIFFERS,
                        item.label,
                        item.source_key,
                        key,
                        name,
                        shown(value),
                        shown(target.get(name)),
                    )
                )


def _sendable(items: Sequence[Item], key_field: str) -> list[Item]:
    """The items the flow would write, each with its target key."""
    ready: list[Item] = []
    for item in items:
        if not item.pending or item.create is None or item.update is None:
            continue
        key = item.create.get(key_field)
        if key in (None, ""):
            continue
        item.target_key = str(key)
        ready.append(item)
    return ready


async def _products(runtime: FlowRuntime, found: FlowDrift) -> None:
    sync = ProductSync(runtime)
    key_field = runtime.target.entities[runtime.target_entity(PRODUCTS)].key_field
    seen: set[str] = set()
    async for page in _pages(runtime, PRODUCTS):
        items, sellable = sync.expand(page)
        sync.prepare(items, sellable)
        # A product that fails to map still exists: its variants' links keep their source.
        seen.update(i.source_key for i in items)
        ready = _sendable(items, key_field)
        found.not_compared += len(items) - len(ready)
        found.compared += len(ready)
        targets = await _in_target(runtime, PRODUCTS, [str(i.target_key) for i in ready])
        _compare(found, ready, key_field, targets)
    await _without_source(runtime, found, seen)


async def _without_source(runtime: FlowRuntime, found: FlowDrift, seen: set[str]) -> None:
    """Articles the flow made from products Parts Pim no longer has: links whose source key
    (or whose product, for a variant) was not read, and whose article is still there."""
    store, integration_id = runtime.store, runtime.integration.id
    after: str | None = None
    while page := store.links.page(integration_id, PRODUCTS, after=after):
        after = page[-1].source_key
        gone = [
            link
            for link in page
            if link.source_key not in seen and link.source_key.split("/")[0] not in seen
        ]
        if not gone:
            continue
        targets = await _in_target(runtime, PRODUCTS, [link.target_key for link in gone])
        for link in gone:
            if link.target_key in targets:
                found.add(
                    Difference(
                        PRODUCTS,
                        DriftKind.NO_SOURCE,
                        f"article '{link.target_key}'",
                        link.source_key,
                        link.target_key,
                    )
                )


async def _stock(runtime: FlowRuntime, found: FlowDrift) -> None:
    sync = StockSync(runtime)
    key_field = runtime.target.entities[runtime.target_entity(STOCK)].key_field
    seen: set[str] = set()
    async for page in _pages(runtime, STOCK):
        # A SKU's rows may span pages: `prepare` reads all of them, so each SKU is done once.
        fresh = [row for row in page if str(row["sku"]) not in seen]
        seen.update(str(row["sku"]) for row in fresh)
        if not fresh:
            continue
        items = await sync.prepare(fresh)
        ready = _sendable(items, key_field)
        found.not_compared += len(items) - len(ready)
        found.compared += len(ready)
        targets = await _in_target(runtime, STOCK, [str(i.target_key) for i in ready])
        _compare(found, ready, key_field, targets)


async def _orders(runtime: FlowRuntime, found: FlowDrift, since: datetime) -> None:
    sync = OrderSync(runtime)
    store, integration_id = runtime.store, runtime.integration.id
    async for page in _pages(runtime, ORDERS, since):
        items = [i for i in await sync.canonical(page) if i.pending and i.canonical]
        # Orders Koppel made in Parts Pim from AccountView's came from there: not compared.
        echoes = {
            link.target_key
            for link in store.links.find_by_target(
                integration_id, FROM_ACCOUNTVIEW, [i.source_key for i in items]
            )
        }
        ready = [i for i in items if i.source_key not in echoes]
        found.not_compared += len(page) - len(ready)
        found.compared += len(ready)
        references = [str(i.canonical["reference"]) for i in ready if i.canonical]
        target_entity = runtime.target_entity(ORDERS)
        in_target = {
            str(r.get("ORD_REF"))
            for r in await runtime.target.lookup(target_entity, "ORD_REF", references)
        }
        for item, reference in zip(ready, references, strict=True):
            if reference not in in_target:
                found.add(
                    Difference(ORDERS, DriftKind.MISSING, item.label, item.source_key, reference)
                )


def same(sent: Any, held: Any) -> bool:
    """Whether the target holds what the flow would send: no value and an empty text are
    the same, numbers are compared as numbers (12.5 is 12.50), texts without outer spaces."""
    a, b = _plain(sent), _plain(held)
    if a is None or b is None:
        return a is None and b is None
    number_a, number_b = _number(a), _number(b)
    if number_a is not None and number_b is not None:
        return number_a == number_b
    return str(a).strip() == str(b).strip()


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int | float):
        return Decimal(str(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def shown(value: Any) -> str | None:
    """A value as a difference shows it: numbers without trailing zeros, texts as they are."""
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, Decimal | float) and not isinstance(value, bool):
        number = Decimal(str(value)).normalize()
        return format(number, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


async def sync_drift(
    store: Store,
    runner: Resyncer,
    reconciliations: Sequence[ReconciliationRecord],
    *,
    actor: str = "cli",
) -> list[tuple[Flow, RunSummary]]:
    """Sync the drifted records of these reconciliations again: their links forgotten (see
    `LinkRepository.forget`), then one targeted run per flow, each after the flows it waits for
    (an article deleted by hand is made again before its stock is written to it); each
    audited as `reconciliation.sync` with `actor`.

    Records whose source is gone are left alone: deleting in the target is a person's call.
    The web app runs this in the background; each run is durable once started, and what a
    stop leaves unsynced the next reconciliation finds again.
    """
    work: dict[int, list[Difference]] = {}
    for record in reconciliations:
        fixable = [d for d in map(Difference.from_json, record.differences) if d.fixable]
        if fixable:
            work[record.flow_id] = fixable
    flows = [f for f in (store.flows.get(i) for i in work) if f is not None]
    done: list[tuple[Flow, RunSummary]] = []
    for flow in in_dependency_order(store, flows):
        fixable = work[flow.id]
        missing = sorted({d.source_key for d in fixable if d.kind is DriftKind.MISSING})
        differing = sorted({d.source_key for d in fixable if d.kind is DriftKind.DIFFERS})
        store.links.forget(flow.integration_id, flow.entity, drop=missing, stale=differing)
        run_id = await runner.start_resync(flow.id, sorted({*missing, *differing}))
        integration = store.integrations.get(flow.integration_id)
        if integration is not None:
            store.audit.record(
                integration.tenant_id,
                actor=actor,
                action="reconciliation.sync",
                subject=f"flow:{flow.id}",
                detail={
                    "flow": flow.name,
                    "run_id": run_id,
                    "missing": missing,
                    "differing": differing,
                },
            )
        done.append((flow, await runner.follow(run_id)))
    return done


@dataclass(frozen=True)
class FlowReconciliation:
    """A flow with its last reconciliation and the differences it kept (the page's view)."""

    flow: Flow
    last: ReconciliationRecord | None
    differences: list[Difference]

    @property
    def fixable(self) -> int:
        return sum(1 for d in self.differences if d.fixable)


def latest(store: Store, flows: Sequence[Flow]) -> list[FlowReconciliation]:
    """Each reconcilable flow with its last reconciliation, if any (the reconciliation page)."""
    chosen = reconcilable(store, flows)
    last = store.reconciliations.latest([f.id for f in chosen])
    return [
        FlowReconciliation(
            flow,
            last.get(flow.id),
            [Difference.from_json(d) for d in last[flow.id].differences] if flow.id in last else [],
        )
        for flow in chosen
    ]


__all__ = [
    "DIFFERENCES_KEPT",
    "Difference",
    "DriftKind",
    "FlowDrift",
    "FlowReconciliation",
    "NoEngineHere",
    "NothingToReconcile",
    "ReconcileReport",
    "Resyncer",
    "latest",
    "reconcilable",
    "reconcile_flows",
    "same",
    "shown",
    "sync_drift",
]
