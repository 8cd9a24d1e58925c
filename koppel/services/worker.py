"""The worker's loop: every enabled flow on its schedule until a stop, with the retention purge,
the notifications (koppel.notify: events queued and the outbox sent) and a report of every run
that ends, on the side. `koppel worker`, the demo and (by default) the
web app's server run it; each face says what it shows through a `WorkerLog`."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol

from koppel.engine.runner import FlowRunner
from koppel.notify.outbox import notify_regularly
from koppel.services.activity import RunView, run_view
from koppel.store import PurgeResult, Store

PURGE_EVERY_S = 3600.0
"""How often the worker deletes what the retention window no longer allows (and once at start)."""
REPORT_EVERY_S = 2.0
"""How often the worker looks for finished runs to report."""


class WorkerLog(Protocol):
    def run_finished(self, run: RunView) -> None:
        """A run that ended while the worker runs: an operator's log of what moved."""

    def purged(self, result: PurgeResult) -> None:
        """The purge deleted something."""

    def purge_failed(self, error: Exception) -> None:
        """The purge failed; it runs again at the next hour, the worker goes on."""


async def serve(
    runner: FlowRunner, store: Store, log: WorkerLog, *, purge_every_s: float = PURGE_EVERY_S
) -> None:
    """Run every enabled flow on its schedule until a stop; purge (at start, then every
    `purge_every_s`), notify and report on the side.

    Only the runs this worker ran are reported: several workers share the load, and each
    says what it did."""
    started = datetime.now(UTC)
    helpers = [
        asyncio.create_task(_purge_regularly(store, log, purge_every_s)),
        asyncio.create_task(_report_finished_runs(store, started, runner.executor, log)),
        asyncio.create_task(notify_regularly(store)),
    ]
    try:
        await runner.work()
    finally:
        for helper in helpers:
            helper.cancel()
        for helper in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await helper


async def _purge_regularly(store: Store, log: WorkerLog, every_s: float) -> None:
    while True:
        try:
            result = await asyncio.to_thread(store.retention.purge)
        except Exception as error:  # a failed purge must not stop the worker; it runs again
            log.purge_failed(error)
        else:
            if result.outcomes_deleted or result.dead_letters_deleted:
                log.purged(result)
        await asyncio.sleep(every_s)


async def _report_finished_runs(
    store: Store, started: datetime, executor: str, log: WorkerLog
) -> None:
    seen: set[str] = set()
    names: dict[int, str] = {}
    while True:
        runs = await asyncio.to_thread(store.runs.list, limit=50)
        for run in reversed(runs):
            finished = run.finished_at
            if finished is None or run.id in seen or run.executor != executor:
                continue
            if (finished if finished.tzinfo else finished.replace(tzinfo=UTC)) < started:
                continue
            seen.add(run.id)
            if run.flow_id not in names:
                flow = store.flows.get(run.flow_id)
                names[run.flow_id] = flow.name if flow else str(run.flow_id)
            log.run_finished(run_view(run, names))
        await asyncio.sleep(REPORT_EVERY_S)


__all__ = ["PURGE_EVERY_S", "REPORT_EVERY_S", "WorkerLog", "serve"]
