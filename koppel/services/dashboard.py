"""The dashboard of an integration: how each flow and connection is doing, and what moved.

The flows and the charts are read from the runs (not from the activity log's outcomes): a run
keeps its counts per outcome kind, added up per hour or day in the database, so the last 7 days
cost the same however many records moved, and they stay countable after the log's retention has
passed.
A connection's health is what the calls of runs and tests left on it (`CallHealth` in
koppel.connectors.base, kept by `connections.record_health`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from koppel.flows.registry import FLOW_TYPES
from koppel.services.activity import RunView, run_view
from koppel.services.errors import NotFound
from koppel.store import (
    Connection,
    ConnectionState,
    Flow,
    Integration,
    OutcomeKind,
    Run,
    RunStatus,
    Store,
)

STALE_AFTER_SCHEDULES = 2
"""A scheduled flow's data is stale when its last good run is older than this many intervals."""
DAY_HOURS = 24
WEEK_DAYS = 7
KINDS = tuple(kind.value for kind in OutcomeKind)
_GOOD = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


class Freshness(StrEnum):
    """How current a flow's data in the target is."""

    FRESH = "fresh"
    """Its last good run is within two intervals of its schedule (or it runs on demand)."""
    STALE = "stale"
    """Its last good run is older than two intervals: runs fail, or nothing runs them."""
    NEVER = "never"
    """No run of it has succeeded yet."""
    OFF = "off"
    """The flow is switched off."""


@dataclass(frozen=True)
class FlowHealth:
    flow: Flow
    source: str
    target: str
    last_run: RunView | None
    last_good_at: datetime | None
    """When the last run that succeeded (or partly failed) ended: the data's age."""
    next_run_at: datetime | None
    """When the schedule starts its next run, if a worker runs; None on demand or off."""
    freshness: Freshness


@dataclass(frozen=True)
class ConnectionHealth:
    connection: Connection
    needs_authorisation: bool
    last_good_at: datetime | None
    """When a call through it (a run's or a test's) last got a good answer."""
    last_error: str | None
    """Why it needs authorisation, else the last call that failed for a reason of the
    connection (unreachable, an error answer after the retries, credentials refused)."""
    last_error_at: datetime | None


@dataclass(frozen=True)
class Bar:
    """One hour or one day of a chart: records by outcome kind, from runs started in it."""

    start: datetime
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    step: timedelta

    @property
    def totals(self) -> dict[str, int]:
        return {kind: sum(bar.counts[kind] for bar in self.bars) for kind in KINDS}

    @property
    def peak(self) -> int:
        return max((bar.total for bar in self.bars), default=0)


@dataclass(frozen=True)
class IntegrationDashboard:
    integration: Integration
    flows: tuple[FlowHealth, ...]
    connections: tuple[ConnectionHealth, ...]
    last_day: Chart
    """By the hour, the last 24 hours."""
    last_week: Chart
    """By the day, the last 7 days."""
    dead_letters: int
    """Records that failed and wait in the dead-letter list."""
    at: datetime


def next_run_at(flow: Flow, now: datetime) -> datetime | None:
    """The start of the flow's next schedule slot (the engine queues one run per interval of
    the epoch, `koppel.engine`), when it is on and has a schedule."""
    if not flow.enabled or not flow.schedule_seconds:
        return None
    every = flow.schedule_seconds
    slot = math.floor(now.timestamp() / every) + 1
    return datetime.fromtimestamp(slot * every, UTC)


def freshness(flow: Flow, last_good_at: datetime | None, now: datetime) -> Freshness:
    if not flow.enabled:
        return Freshness.OFF
    if last_good_at is None:
        return Freshness.NEVER
    if flow.schedule_seconds and now - last_good_at > timedelta(
        seconds=STALE_AFTER_SCHEDULES * flow.schedule_seconds
    ):
        return Freshness.STALE
    return Freshness.FRESH


def _last_good(store: Store, flow: Flow) -> Run | None:
    found = [
        run
        for status in _GOOD
        for run in store.runs.list(flow_id=flow.id, status=status, limit=1)
        if run.finished_at is not None
    ]
    return max(found, key=lambda run: run.started_at, default=None)


def count_keys() -> dict[str, list[str]]:
    """Each outcome kind's count keys in a run: its own (`created`) and those of every other
    entity a flow writes (`categories.created`)."""
    entities = sorted({entity for _, entity in FLOW_TYPES})
    return {kind: [kind, *(f"{entity}.{kind}" for entity in entities)] for kind in KINDS}


def _chart(
    store: Store, flows: Sequence[Flow], bounds: Sequence[datetime], step: timedelta
) -> Chart:
    """Bars from bounds[n] to bounds[n + 1]."""
    sums = store.runs.sums([flow.id for flow in flows], bounds=bounds, keys=count_keys())
    return Chart(tuple(Bar(at, counts) for at, counts in zip(bounds[:-1], sums, strict=True)), step)


def _hours(now: datetime, zone: tzinfo) -> list[datetime]:
    """The starts of the last 24 hours (this one last) and the end of this one."""
    hour = now.astimezone(zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return [hour + timedelta(hours=n) for n in range(1 - DAY_HOURS, 2)]


def _days(now: datetime, zone: tzinfo) -> list[datetime]:
    """The starts of the last 7 days in the zone (today last) and the end of today; a day
    with a clock change is 23 or 25 hours long."""
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return [(today + timedelta(days=n)).astimezone(UTC) for n in range(1 - WEEK_DAYS, 2)]


def _connection_health(connection: Connection) -> ConnectionHealth:
    needs = connection.state is ConnectionState.NEEDS_AUTHORISATION
    error = connection.last_error
    if needs:
        error = connection.state_reason or "the application refused its grant"
    return ConnectionHealth(
        connection=connection,
        needs_authorisation=needs,
        last_good_at=connection.last_ok_at,
        last_error=error,
        last_error_at=connection.last_error_at,
    )


def _flow_lines(store: Store, flows: Sequence[Flow], now: datetime) -> list[FlowHealth]:
    names = {connection.id: connection.name for connection in store.connections.list()}
    flow_names = {flow.id: flow.name for flow in flows}
    lines: list[FlowHealth] = []
    for flow in flows:
        last = next(iter(store.runs.list(flow_id=flow.id, limit=1)), None)
        good = _last_good(store, flow)
        good_at = good.finished_at if good else None
        lines.append(
            FlowHealth(
                flow=flow,
                source=names[flow.source_connection_id],
                target=names[flow.target_connection_id],
                last_run=run_view(last, flow_names) if last else None,
                last_good_at=good_at,
                next_run_at=next_run_at(flow, now),
                freshness=freshness(flow, good_at, now),
            )
        )
    return lines


def integration_dashboard(
    store: Store, integration: Integration, *, now: datetime | None = None, zone: tzinfo = UTC
) -> IntegrationDashboard:
    """`zone`: where the days of the 7-day chart begin and end (the web app's time zone)."""
    now = now or datetime.now(UTC)
    flows = store.flows.list(integration.id)
    lines = _flow_lines(store, flows, now)
    pair = [store.connections.get(integration.connection_a_id)]
    pair.append(store.connections.get(integration.connection_b_id))
    return IntegrationDashboard(
        integration=integration,
        flows=tuple(lines),
        connections=tuple(_connection_health(c) for c in pair if c is not None),
        last_day=_chart(store, flows, _hours(now, zone), timedelta(hours=1)),
        last_week=_chart(store, flows, _days(now, zone), timedelta(days=1)),
        dead_letters=sum(store.dead_letters.count_pending(flow.id) for flow in flows),
        at=now,
    )


def dashboards(
    store: Store, *, now: datetime | None = None, zone: tzinfo = UTC
) -> list[IntegrationDashboard]:
    """The dashboard of every integration the store (workspace) holds."""
    return [
        integration_dashboard(store, integration, now=now, zone=zone)
        for integration in store.integrations.list()
    ]


def dashboard_of(store: Store, integration_id: int, *, zone: tzinfo = UTC) -> IntegrationDashboard:
    integration = store.integrations.get(integration_id)
    if integration is None:
        raise NotFound(f"integration {integration_id} not found")
    return integration_dashboard(store, integration, zone=zone)


def connections_health(store: Store) -> list[ConnectionHealth]:
    """Every connection of the store (workspace) with its health, by name."""
    connections = sorted(store.connections.list(), key=lambda c: c.name)
    return [_connection_health(connection) for connection in connections]


__all__ = [
    "Bar",
    "Chart",
    "ConnectionHealth",
    "FlowHealth",
    "Freshness",
    "IntegrationDashboard",
    "connections_health",
    "count_keys",
    "dashboard_of",
    "dashboards",
    "freshness",
    "integration_dashboard",
    "next_run_at",
]
