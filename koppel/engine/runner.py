"""The platform in one process: the store, the durable engine and the flow jobs, wired together.

The CLI (sync, worker, replay, demo) and the tests all run flows through this one object, so a
flow behaves the same whichever way it is started.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import httpx

from koppel.engine.engine import Engine
from koppel.engine.flow_jobs import (
    FLOW_JOB,
    REPLAY_JOB,
    RESYNC_JOB,
    flow_job_factory,
    job_args,
    resync_args,
    resync_job_factory,
)
from koppel.engine.jobs import FlowSchedule, ProgressCallback, RunSummary, flow_key
from koppel.files import private_directory
from koppel.settings import Settings
from koppel.store import Store


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
        )
        self.engine.register(
            RESYNC_JOB, resync_job_factory(store, transport=transport, executor=self.executor)
        )

    async def __aenter__(self) -> FlowRunner:
        await self.engine.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.engine.shutdown()

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
        return await self.engine.submit(
            RESYNC_JOB,
            resync_args(flow_id, source_keys),
            partition=flow_key(FLOW_JOB, str(flow_id)),
        )

    async def schedules(self) -> list[FlowSchedule]:
        """The enabled flows with a schedule, read anew on every tick of the worker."""
        return [
            FlowSchedule(FLOW_JOB, str(flow.id), float(flow.schedule_seconds))
            for flow in self.store.flows.list()
            if flow.enabled and flow.schedule_seconds
        ]

    async def work(self) -> None:
        """Run every enabled flow on its schedule until a stop is requested (SIGTERM)."""
        await self.engine.start_worker(self.schedules)
        await self.engine.wait_stopped()


__all__ = ["FlowRunner"]
