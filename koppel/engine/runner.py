"""The platform in one process: the store, the durable engine and the flow jobs, wired together.

The CLI (sync, worker, replay, demo) and the tests all run flows through this one object, so a
flow behaves the same whichever way it is started.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from types import TracebackType

import httpx

from koppel.engine.engine import Engine
from koppel.engine.flow_jobs import (
    CHANGES_JOB,
    FLOW_JOB,
    REPLAY_JOB,
    RESYNC_JOB,
    flow_job_factory,
    flow_of_job_args,
    job_args,
    resync_args,
    resync_job_factory,
)
from koppel.engine.jobs import FlowSchedule, ProgressCallback, RunSummary
from koppel.files import private_directory
from koppel.settings import Settings
from koppel.store import Store

logger = logging.getLogger(__name__)

RUN_COLLECTION_THRESHOLD = 10_000
"""The cyclic collector's first threshold while a runner runs (Python's default is 700).

A batch makes hundreds of thousands of containers (decoded pages, canonical records, payloads,
excerpts) that live until the batch is recorded, almost none of them in a cycle. Collected every
700 allocations, they were scanned several times each and those in flight moved to the older
generations, filling them until a full collection, a walk of every object of the process,
came: the sync process of `python -m bench products --sizes 10001 --latencies 50` made 877
collections, 5 of them full, for 0.37 to 0.45 s of its 4.5 to 5.2 s of CPU (`gc.callbacks`).
At 10,000 it makes about 170, none full, for 0.14 to 0.16 s; what cycles there are still go,
a few milliseconds later."""

CHANGES_SWEEP_SECONDS = 1.0
"""How often the scheduler looks for pending changes that no run is queued for (a webhook
received by a process without the engine, or a wake-up lost to a crash)."""


class FlowRunner:
    """Runs flows durably: on demand (`run`, `replay`) or on their schedules (`work`)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        handle_signals: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`handle_signals=False` leaves SIGTERM and Ctrl-C to the host (a web app's server);
        `transport` replaces the network under every flow's connectors (in-process tests)."""
        self.store = store
        self.transport = transport
        """The network under the flows' connectors; what reads a sample for them uses it too."""
        private_directory(settings.home)
        self.engine = Engine(
            database_url=settings.engine_database_url,
            home=settings.home,
            executor_id=settings.worker_id,
            concurrency=settings.engine_concurrency,
            worker_concurrency=settings.worker_concurrency,
            log_level=settings.log_level,
            handle_signals=handle_signals,
            executors=store.executors,
            takeover_after_seconds=settings.takeover_after_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
        self.executor = self.engine.executor_id
        """This process's worker id: kept on the runs it starts, as DBOS keeps it on theirs;
        their owner, whose writes the store's fence lets through."""
        self.engine.register(
            FLOW_JOB, flow_job_factory(store, transport=transport, executor=self.executor)
        )
        self.engine.register(
            REPLAY_JOB,
            flow_job_factory(store, replay=True, transport=transport, executor=self.executor),
            runs_as=lambda args: (FLOW_JOB, flow_of_job_args(args)),
        )
        self.engine.register(
            RESYNC_JOB,
            resync_job_factory(store, transport=transport, executor=self.executor),
            runs_as=lambda args: (FLOW_JOB, flow_of_job_args(args)),
        )
        self.engine.register(
            CHANGES_JOB,
            flow_job_factory(store, targeted=True, transport=transport, executor=self.executor),
            runs_as=lambda args: (FLOW_JOB, args),
        )
        self._dirty: set[int] = set()
        self._thresholds = gc.get_threshold()
        """The collector's thresholds before the runner started, given back when it stops."""
        self._wakers: dict[int, asyncio.Task[None]] = {}
        self._queued: dict[int, str] = {}

    async def __aenter__(self) -> FlowRunner:
        self._thresholds = gc.get_threshold()
        gc.set_threshold(max(RUN_COLLECTION_THRESHOLD, self._thresholds[0]), *self._thresholds[1:])
        await self.engine.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.engine.shutdown()
        finally:
            gc.set_threshold(*self._thresholds)

    async def run(self, flow_id: int, on_progress: ProgressCallback | None = None) -> RunSummary:
        """One run of the flow, waited for; a run of it already under way is waited for first."""
        return await self.engine.run_now(FLOW_JOB, str(flow_id), on_progress)

    async def follow(self, run_id: str, on_progress: ProgressCallback | None = None) -> RunSummary:
        """Wait for a run already under way (one this process resumes after a stop)."""
        return await self.engine.wait(run_id, on_progress)

    async def replay(self, flow_id: int, on_progress: ProgressCallback | None = None) -> RunSummary:
        """Every pending dead letter of the flow, read again and synced with today's mapping."""
        return await self.engine.run_now(REPLAY_JOB, job_args(flow_id), on_progress)

    async def start_replay(self, flow_id: int, dead_letter_ids: Sequence[int] | None = None) -> str:
        """Start a replay of these pending dead letters of the flow (None: all of them) and
        return its run id without waiting (`follow` waits); a web request cannot wait long."""
        return await self.engine.submit(REPLAY_JOB, job_args(flow_id, dead_letter_ids))

    async def start_resync(self, flow_id: int, source_keys: Sequence[str]) -> str:
        """Start a targeted run of the flow that syncs these records (source keys as the flow
        logs them) and return its run id without waiting; a reconciliation's "sync these".
        It takes turns with the flow's own runs, so the two never write the same records at
        once (an order posted twice)."""
        return await self.engine.submit(RESYNC_JOB, resync_args(flow_id, source_keys))

    def wake(self, flow_id: int) -> None:
        """Have a targeted run sync the flow's pending changes, soon; returns at once.

        Coalesced: one waker per flow queues a run unless the one it queued last still waits
        in the queue (that one drains what was just recorded too). However many deliveries
        come at once, the flow has a run going and at most one waiting behind it, and the
        engine is asked once per turn of the waker, not once per delivery."""
        self._dirty.add(flow_id)
        waker = self._wakers.get(flow_id)
        if waker is None or waker.done():
            self._wakers[flow_id] = asyncio.create_task(self._waker(flow_id))

    async def _waker(self, flow_id: int) -> None:
        try:
            while flow_id in self._dirty:
                self._dirty.discard(flow_id)
                queued = self._queued.get(flow_id)
                if queued is not None and await self.engine.queued(queued):
                    continue
                self._queued[flow_id] = await self.engine.submit(CHANGES_JOB, str(flow_id))
        except Exception:  # the scheduler's sweep queues the run instead
            logger.exception("could not queue a run for the changes of flow %d", flow_id)

    async def schedules(self) -> list[FlowSchedule]:
        """The enabled flows with a schedule, read anew on every tick of the worker; and a
        targeted run for each enabled flow with pending changes (it starts only when no run
        of the flow is waiting or going, so this picks up what no wake-up is queued for)."""
        flows = [flow for flow in self.store.flows.list() if flow.enabled]
        pending = self.store.pending_changes.waiting()
        return [
            FlowSchedule(FLOW_JOB, str(flow.id), float(flow.schedule_seconds))
            for flow in flows
            if flow.schedule_seconds
        ] + [
            FlowSchedule(CHANGES_JOB, str(flow.id), CHANGES_SWEEP_SECONDS)
            for flow in flows
            if flow.id in pending
        ]

    async def work(self) -> None:
        """Run every enabled flow on its schedule until a stop is requested (SIGTERM)."""
        await self.engine.start_worker(self.schedules)
        await self.engine.wait_stopped()


__all__ = ["CHANGES_SWEEP_SECONDS", "FlowRunner"]
