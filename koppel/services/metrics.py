"""The figures `/metrics` serves to Prometheus.

What lives in the store (runs, outcomes, dead letters, freshness, the notification outbox) is
read from it at every scrape by `StoreCollector`, so every process of one installation (a
server, several workers) reports the same numbers. It costs a handful of grouped queries
whatever the size of the activity log: runs and outcomes are added up from the runs (each keeps
its counts per outcome kind), dead letters are counted on their (flow, status) index. The API
call figures are this process's own (koppel.connectors.metrics).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from koppel.connectors.metrics import CALL_REGISTRY
from koppel.services.dashboard import count_keys
from koppel.store import Flow, Store

FLOW_LABELS = ("workspace", "integration", "flow")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def flow_labels(store: Store, flows: list[Flow]) -> dict[int, list[str]]:
    """Flow id -> its labels: the name of its workspace, of its integration, its own."""
    workspaces = {tenant.id: tenant.name for tenant in store.tenants.list()}
    integrations = {
        integration.id: [workspaces.get(integration.tenant_id, ""), integration.name]
        for integration in store.integrations.list()
    }
    unknown = ["", ""]
    return {flow.id: [*integrations.get(flow.integration_id, unknown), flow.name] for flow in flows}


class StoreCollector(Collector):
    """Runs, outcomes, dead letters and freshness of every workspace, read at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store
        """The system store: the figures of every workspace."""

    def collect(self) -> Iterator[Metric]:
        store = self._store
        flows = store.flows.list()
        labels = flow_labels(store, flows)
        runs = GaugeMetricFamily(
            "koppel_runs", "Runs in the store, by flow and status", labels=[*FLOW_LABELS, "status"]
        )
        outcomes = CounterMetricFamily(
            "koppel_outcomes",
            "Records the runs of a flow handled, by outcome kind (added up from the runs)",
            labels=[*FLOW_LABELS, "kind"],
        )
        kinds: dict[tuple[int, str], int] = {}
        for flow_id, status, count, sums in store.runs.totals_by_flow(count_keys()):
            if flow_id not in labels:
                continue  # a flow removed since the flows were listed
            runs.add_metric([*labels[flow_id], status.value], count)
            for kind, total in sums.items():
                kinds[(flow_id, kind)] = kinds.get((flow_id, kind), 0) + total
        for (flow_id, kind), total in sorted(kinds.items()):
            outcomes.add_metric([*labels[flow_id], kind], total)
        yield runs
        yield outcomes

        waiting = GaugeMetricFamily(
            "koppel_dead_letters_waiting",
            "Records that failed and wait on the dead-letter list for a retry",
            labels=list(FLOW_LABELS),
        )
        pending = store.dead_letters.pending_by_flow()
        for flow in flows:
            waiting.add_metric(labels[flow.id], pending.get(flow.id, 0))
        yield waiting

        lag = GaugeMetricFamily(
            "koppel_freshness_lag_seconds",
            "Seconds since the last good run (succeeded or partly failed) of an enabled flow "
            "ended; flows without one are left out",
            labels=list(FLOW_LABELS),
        )
        now = datetime.now(UTC)
        last_good = store.runs.last_good_by_flow()
        for flow in flows:
            at = last_good.get(flow.id)
            if flow.enabled and at is not None:
                lag.add_metric(labels[flow.id], max(0.0, (now - at).total_seconds()))
        yield lag

        outbox = GaugeMetricFamily(
            "koppel_notification_outbox_waiting",
            "Notifications in the outbox not sent yet (pending or being sent), by workspace; "
            "one that keeps growing means a channel does not take them",
            labels=["workspace"],
        )
        queued = store.notifications.waiting_by_tenant()
        for tenant in store.tenants.list():
            outbox.add_metric([tenant.name], queued.get(tenant.id, 0))
        yield outbox

        beats = GaugeMetricFamily(
            "koppel_worker_heartbeat_age_seconds",
            "Seconds since each engine process (worker, serve, sync) that has neither stopped "
            "nor been taken over last beat; above KOPPEL_TAKEOVER_AFTER_SECONDS it is taken "
            "for dead",
            labels=["worker", "host"],
        )
        for executor in store.executors.list():
            if executor.stopped_at is None and executor.taken_over_by is None:
                age = max(0.0, (now - executor.last_beat_at).total_seconds())
                beats.add_metric([executor.id, executor.host], age)
        yield beats


def scrape(store: Store) -> bytes:
    """The text exposition of this process's call figures and the store's figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return generate_latest(CALL_REGISTRY) + generate_latest(registry)


__all__ = ["CONTENT_TYPE", "StoreCollector", "scrape"]
