"""Per-process figures of the API calls: how many by connection and HTTP status, and how long
they took. Every attempt of `ApiClient` is recorded here (a retry is another call).

They live in this process's memory: each process (`koppel serve`, every `koppel worker`)
counts its own calls from its start, and `/metrics` of a server shows the calls its own engine
made. The counts that live in the store (runs, outcomes, dead letters) are read from it at
scrape time instead (koppel.services.metrics), so every process reports the same.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

NO_ANSWER = "no_answer"
"""The status of a call that got no HTTP answer (refused, timed out, cut)."""

disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
"""No `_created` series beside each counter: they double the series, and a restart shows in the
counters themselves (Prometheus' rate() bears it)."""

CALL_REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry of this process's call figures; `/metrics` serves it with the store's."""

API_CALLS = Counter(
    "koppel_api_calls",
    "API calls made by this process, by connection and HTTP status (no_answer: none came)",
    ["connection", "status"],
    registry=CALL_REGISTRY,
)
API_CALL_SECONDS = Histogram(
    "koppel_api_call_duration_seconds",
    "How long API calls of this process took until their answer (or until none came)",
    ["connection"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=CALL_REGISTRY,
)


def record_call(connection: str, status: str, seconds: float) -> None:
    """One attempt of a call through `connection`: its status and how long it took."""
    API_CALLS.labels(connection=connection, status=status).inc()
    API_CALL_SECONDS.labels(connection=connection).observe(seconds)


__all__ = ["API_CALLS", "API_CALL_SECONDS", "CALL_REGISTRY", "NO_ANSWER", "record_call"]
