"""The dry run of flows: what the next sync would do, with no write to either system.

Each flow runs as a real run would, batch by batch over the same pipeline, through connectors
that write nowhere (koppel.flows.dry_run) and a store whose changes are rolled back
(`Store.rehearsal()`): no outcome, link, cursor, dead letter or run of it stays. The flows share
one rehearsal, in the order given, so an order sees the debtor and the articles the flows before
it would have created.

Connections are tested first, on the real store: a token the API rotates on that call is kept
(inside the rehearsal it would be rolled back), and a connection that does not work is named
with its fix before anything is read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from koppel.engine.flow_jobs import FlowJob
from koppel.engine.jobs import JsonState
from koppel.flows.dry_run import Rehearsal, WouldSend
from koppel.flows.pipeline import UNCHANGED_REASON
from koppel.flows.registry import flow_type
from koppel.services.connections import ConnectionCheck, check_connection
from koppel.store import Flow, OutcomeKind, Store

FAILURES_SHOWN = 5
"""How many failed records (with their reasons) a forecast keeps per entity."""


@dataclass
class EntityForecast:
    """What a sync would do to the records of one entity of a flow."""

    entity: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    """Left alone for another reason than being unchanged (`skip_reasons` says which)."""
    failed: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(record, reason) of the first failed records."""

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.skipped + self.failed


@dataclass(frozen=True)
class FlowForecast:
    """One flow's dry run: per entity what would happen, or why it could not be worked out."""

    flow: str
    entities: tuple[EntityForecast, ...]
    error: str | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            e.entity: {
                "created": e.created,
                "updated": e.updated,
                "unchanged": e.unchanged,
                "skipped": e.skipped,
                "failed": e.failed,
            }
            for e in self.entities
        }


@dataclass(frozen=True)
class DryRunReport:
    """Every flow's forecast, the records that would be sent (a few per entity) and how many."""

    flows: tuple[FlowForecast, ...]
    examples: dict[tuple[str, str], list[WouldSend]]
    """(application, entity) -> the first records that would be sent."""
    writes: dict[tuple[str, str], int]
    """(application, entity) -> how many records would be sent."""

    @property
    def ok(self) -> bool:
        return all(f.error is None and not any(e.failed for e in f.entities) for f in self.flows)


async def dry_run_flows(
    store: Store, flows: Sequence[Flow], *, transport: httpx.AsyncBaseTransport | None = None
) -> DryRunReport:
    """Dry-run the flows in order (see the module); nothing is written anywhere."""
    connection_ids = {i for f in flows for i in (f.source_connection_id, f.target_connection_id)}
    broken = await broken_connections(store, connection_ids, transport)
    with store.rehearsal() as rehearsing:
        return await forecast_flows(rehearsing, flows, Rehearsal(), broken, transport)


async def forecast_flows(
    rehearsing: Store,
    flows: Sequence[Flow],
    rehearsal: Rehearsal,
    broken: Mapping[int, ConnectionCheck],
    transport: httpx.AsyncBaseTransport | None = None,
) -> DryRunReport:
    """The flows dry-run in order on a `Store.rehearsal()`; those of a `broken` connection
    (`broken_connections`) are reported as such, unread."""
    forecasts: list[FlowForecast] = []
    for flow in flows:
        checks = [broken.get(flow.source_connection_id), broken.get(flow.target_connection_id)]
        problems = [
            f"connection {c.name}: {c.message}" + (f"\n{c.fix}" if c.fix else "")
            for c in checks
            if c is not None
        ]
        if problems:
            forecasts.append(FlowForecast(flow.name, (), "\n".join(problems)))
            continue
        forecasts.append(await _forecast(rehearsing, flow, rehearsal, transport))
    return DryRunReport(tuple(forecasts), rehearsal.examples, rehearsal.writes)


async def broken_connections(
    store: Store, connection_ids: Iterable[int], transport: httpx.AsyncBaseTransport | None
) -> dict[int, ConnectionCheck]:
    """The connections that do not work, by id, each tested once on the real store (a token
    the API rotates on the test is kept)."""
    broken: dict[int, ConnectionCheck] = {}
    for connection_id in sorted(set(connection_ids)):
        connection = store.connections.get(connection_id)
        assert connection is not None
        check = await check_connection(store, connection, transport=transport)
        if not check.works:
            broken[connection_id] = check
    return broken


async def _forecast(
    store: Store, flow: Flow, rehearsal: Rehearsal, transport: httpx.AsyncBaseTransport | None
) -> FlowForecast:
    """One flow run batch by batch on the rehearsal store, then its outcomes counted."""
    run_id = f"dry-run-{uuid.uuid4().hex}"
    job = FlowJob(store, flow.id, transport=transport, dry_run=rehearsal)
    try:
        state: JsonState = await job.start(run_id)
    except Exception as error:  # start has closed the job; the reason says what to fix
        return FlowForecast(flow.name, (), job.describe_failure(error))
    failure: str | None = None
    try:
        while True:
            batch = await job.run_batch(run_id, state)
            state = batch.state
            if batch.done:
                break
    except Exception as error:
        failure = job.describe_failure(error)
    await job.finish(run_id, state, failure)
    return FlowForecast(flow.name, tuple(_entities(store, flow, run_id)), failure)


def _entities(store: Store, flow: Flow, run_id: str) -> list[EntityForecast]:
    source = store.connections.get(flow.source_connection_id)
    assert source is not None
    kind = flow_type(source.application, flow.entity)
    by_entity: dict[str, EntityForecast] = {phase: EntityForecast(phase) for phase in kind.phases}
    after: int | None = None
    while page := store.outcomes.list(run_id, limit=1000, after_id=after):
        after = page[-1].id
        for outcome in page:
            entity, _ = kind.phase_of(flow.entity, outcome.source_key)
            forecast = by_entity.setdefault(entity, EntityForecast(entity))
            if outcome.outcome is OutcomeKind.CREATED:
                forecast.created += 1
            elif outcome.outcome is OutcomeKind.UPDATED:
                forecast.updated += 1
            elif outcome.outcome is OutcomeKind.SKIPPED and outcome.reason == UNCHANGED_REASON:
                forecast.unchanged += 1
            elif outcome.outcome is OutcomeKind.SKIPPED:
                forecast.skipped += 1
                reason = outcome.reason or "skipped"
                forecast.skip_reasons[reason] = forecast.skip_reasons.get(reason, 0) + 1
            else:
                forecast.failed += 1
                if len(forecast.failures) < FAILURES_SHOWN:
                    record = outcome.record_key or outcome.source_key
                    forecast.failures.append((record, outcome.reason or "failed"))
    return list(by_entity.values())


__all__ = [
    "DryRunReport",
    "EntityForecast",
    "FlowForecast",
    "broken_connections",
    "dry_run_flows",
    "forecast_flows",
]
