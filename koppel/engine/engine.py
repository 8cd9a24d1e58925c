"""Durable flow runs on DBOS: one workflow per run, one checkpoint per batch.

DBOS is a process-wide singleton, so there is at most one started ``Engine`` per process. The
run workflow below is registered with DBOS at import time (DBOS needs every workflow before
launch); it finds the jobs through the engine that is started in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, Queue, SetEnqueueOptions, SetWorkflowID, WorkflowHandleAsync
from dbos import error as dbos_error
from dbos._core import execute_dequeued_workflow
from dbos._dbos import _get_dbos_instance
from dbos._utils import GlobalParams
from sqlalchemy import make_url

from koppel.engine._executor_lock import ExecutorLock
from koppel.engine.errors import EngineError, ExecutorInUse, RunInterrupted, UnknownJob
from koppel.engine.jobs import (
    BatchJob,
    BatchProgress,
    FlowSchedule,
    JobFactory,
    JsonState,
    ProgressCallback,
    RunsAs,
    RunSummary,
    ScheduleSource,
    checked_state,
    flow_key,
)
from koppel.errors import RunTakenOver, reason_of
from koppel.files import private_file
from koppel.store.database import use_wal
from koppel.store.executors import ExecutorRepository
from koppel.store.records import Executor
from koppel.store.tables import utc_now

__all__ = ["Engine", "default_executor_id"]

logger = logging.getLogger(__name__)

RUN_QUEUE = "koppel_runs"
RUN_WORKFLOW = "koppel_run"
PROGRESS_STREAM = "progress"
# DBOS recovers a pending workflow only on the application version it started on. The run
# workflow is a generic loop, so flows may change freely; bump this only when the sequence of
# steps the workflow takes changes, and let the old version's runs drain first.
WORKFLOW_VERSION = "koppel-engine-1"
_ACTIVE_STATUSES = ["ENQUEUED", "PENDING", "DELAYED"]
WAKE_SECONDS = 0.1
"""How often DBOS's notification listener looks for what waiters wait on. With no waiter it
reads nothing; while someone waits (any `wait`: a reader registers with it even when the run is
here and wakes it itself) it makes a query per interval, 0.2 s of CPU in a 15 s run at 50 ms.
It also bounds how long a shutdown waits for the listener to stop."""

_active_engine: Engine | None = None


def default_executor_id(database_url: str) -> str:
    """What names this process when nobody chose: `local` on SQLite (one engine process per
    system database; the executor lock keeps it so), else host and process id, unique per
    process among all sharing a PostgreSQL system database."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return "local"
    return f"{socket.gethostname()}-{os.getpid()}"


class _HideExpectedCancellation(logging.Filter):
    """Drops DBOS's warning about a cancelled workflow task while we are stopping: that
    cancellation is how a graceful stop leaves runs pending, not a problem to report."""

    def __init__(self, stopping: asyncio.Event) -> None:
        super().__init__()
        self._stopping = stopping

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            self._stopping.is_set() and record.getMessage().startswith("Asyncio task cancelled")
        )


def _route_dbos_logs() -> None:
    """DBOS's records go where the process sends every other library's (the CLI: one line on
    the terminal, tracebacks in the debug log), not to a console handler of DBOS's own, which
    would print each failed run's traceback and stay bound to the stderr of the moment it
    started. A handler already present keeps DBOS from adding its own."""
    dbos_logger = logging.getLogger("dbos")
    for handler in list(dbos_logger.handlers):
        if not isinstance(handler, logging.NullHandler):
            dbos_logger.removeHandler(handler)
    if not dbos_logger.handlers:
        dbos_logger.addHandler(logging.NullHandler())
    dbos_logger.propagate = True


class RunFailed(Exception):
    """Raised inside the run workflow so that DBOS records the run as failed.

    Carries only a message: exceptions are pickled into the system database, and a plain string
    always survives that, while a connector's exception object may not.
    """


class Engine:
    """Registers jobs, runs them durably, schedules them, and stops gracefully.

    ``database_url`` is the DBOS system database: ``sqlite:///path`` or ``postgresql://...``;
    by default ``<home>/dbos.sqlite``. ``concurrency`` caps the runs in progress at once across
    all workers; runs of one flow never overlap. ``worker_concurrency`` caps those of each
    process (None: no cap of their own), so that several workers share the runs instead of the
    first to poll the queue taking all it may. ``executor_id`` names this process for
    recovery: every process that shares a PostgreSQL system database needs its own, stable id
    (a process recovers the runs left pending under its id). ``poll_seconds`` is how often the
    queue and the progress streams are polled. ``log_level`` is DBOS's. With ``handle_signals``
    SIGTERM and SIGINT stop the engine gracefully; turn it off where the host (e.g. uvicorn)
    owns the signals, and call ``shutdown()`` from its lifespan instead.

    With ``executors`` (the store's registry) the engine heartbeats every ``heartbeat_seconds``
    and takes over the pending runs of any executor silent for longer than
    ``takeover_after_seconds``, or whose process is gone (its executor lock is free), at most
    one taker per dead executor.
    """

    def __init__(
        self,
        *,
        database_url: str | None = None,
        home: Path = Path(".koppel"),
        concurrency: int = 4,
        worker_concurrency: int | None = None,
        executor_id: str | None = None,
        poll_seconds: float = 0.5,
        log_level: str = "WARNING",
        handle_signals: bool = True,
        executors: ExecutorRepository | None = None,
        takeover_after_seconds: float = 30.0,
        heartbeat_seconds: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not 0 < heartbeat_seconds < takeover_after_seconds:
            raise ValueError(
                f"heartbeat_seconds ({heartbeat_seconds:g}) must be above 0 and below "
                f"takeover_after_seconds ({takeover_after_seconds:g})"
            )
        if worker_concurrency is not None and worker_concurrency < 1:
            raise ValueError(f"worker_concurrency must be at least 1, got {worker_concurrency}")
        self._worker_concurrency = worker_concurrency
        self._database_url = database_url or f"sqlite:///{(home / 'dbos.sqlite').resolve()}"
        self._concurrency = concurrency
        self._executor_id = executor_id or default_executor_id(self._database_url)
        self._executors = executors
        self._takeover_after = timedelta(seconds=takeover_after_seconds)
        self._heartbeat_seconds = heartbeat_seconds
        self._heartbeat: asyncio.Task[None] | None = None
        self._started_at: datetime | None = None
        self._last_beat: float | None = None
        self._beating_since = 0.0
        self._poll_seconds = poll_seconds
        self._log_level = log_level
        self._handle_signals = handle_signals
        self._factories: dict[str, JobFactory] = {}
        self._runs_as: dict[str, RunsAs] = {}
        self._started = False
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._executions: dict[asyncio.Task[Any], float] = {}
        """Every run's task in this process (an older execution of a run too, which `_running`
        no longer names), with when it started (monotonic): see `_drop_taken_runs`."""
        self._jobs: dict[str, BatchJob] = {}
        self._scheduler: asyncio.Task[None] | None = None
        self._lock: ExecutorLock | None = None
        self._shutting_down = False
        self._log_filter = _HideExpectedCancellation(self._stopping)
        self._shutdown_task: asyncio.Task[None] | None = None
        self._queue: Queue | None = None

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.shutdown()

    @property
    def executor_id(self) -> str:
        """This process's executor id (DBOS's, the heartbeat's, the runs' owner)."""
        return self._executor_id

    @property
    def database_url(self) -> str:
        """The system database URL with any password masked, for display."""
        return make_url(self._database_url).render_as_string(hide_password=True)

    def register(self, name: str, factory: JobFactory, *, runs_as: RunsAs | None = None) -> None:
        """Make job ``name`` runnable; ``factory(args)`` builds the job for one run.

        ``runs_as(args)`` names the run of another job, ``(job, args)``, that a run of this
        one never overlaps: a targeted run of a flow writes the same records as its full runs,
        so they queue behind one another like runs of one flow."""
        if self._started:
            raise EngineError(
                f"job {name!r}: register jobs before start(), so that recovered runs find them"
            )
        if not name or ":" in name:
            raise ValueError(f"job name {name!r} must be non-empty and contain no ':'")
        if name in self._factories:
            raise EngineError(f"job {name!r} is already registered")
        self._factories[name] = factory
        if runs_as is not None:
            self._runs_as[name] = runs_as

    async def start(self) -> None:
        """Launch DBOS in this event loop; runs left pending by this executor resume now."""
        global _active_engine
        if _active_engine is not None:
            raise EngineError("an engine is already started in this process")
        if self._started:
            raise EngineError("this engine was already started; create a new one")
        url = make_url(self._database_url)
        if url.get_backend_name() == "sqlite":
            database = Path(url.database or "dbos.sqlite")
            private_file(database)
            use_wal(database)  # DBOS opens it as SQLite starts a file: a journal synced 4 times
        else:
            # The lock below needs the database to exist before DBOS.launch() would create it.
            await asyncio.to_thread(DBOS.migrate, self._database_url)
        self._lock = ExecutorLock.acquire(self._database_url, self._executor_id)
        config: DBOSConfig = {
            "name": "koppel",
            "system_database_url": self._database_url,
            "application_version": WORKFLOW_VERSION,
            "executor_id": self._executor_id,
            "log_level": self._log_level,
            "notification_listener_polling_interval_sec": min(WAKE_SECONDS, self._poll_seconds),
            # A process frozen inside a transaction is taken for gone after this, and so is
            # that transaction (PostgreSQL): its row locks would hold up the taker's recovery.
            "sys_db_idle_transaction_timeout_sec": self._takeover_after.total_seconds(),
        }
        _active_engine = self
        self._started = True
        _route_dbos_logs()
        logging.getLogger("dbos").addFilter(self._log_filter)
        try:
            DBOS(config=config)
            # Launched from inside the running loop so DBOS runs our async workflows on it:
            # jobs share the caller's loop (httpx clients, progress callbacks).
            DBOS.launch()
            if url.get_backend_name() == "sqlite":
                _serialise_claims()
            self._queue = await DBOS.register_queue_async(
                RUN_QUEUE,
                global_concurrency=self._concurrency,
                worker_concurrency=self._worker_concurrency,
                partition_concurrency=1,
                polling_interval_sec=self._poll_seconds,
                on_conflict="always_update",
            )
            if self._executors is not None:
                # Registered (and dead peers' runs taken over) before start() returns, so a
                # caller that looks for the runs it owns after a crash finds them.
                self._started_at = utc_now()
                await self._beat_and_take_over()
                self._heartbeat = asyncio.create_task(self._heartbeat_loop())
        except BaseException:
            await self._release_dbos()
            raise
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop)

    async def submit(self, job: str, args: str = "") -> str:
        """Queue a run of ``job`` and return its run id; it starts once its flow is free."""
        self._require_running()
        self._job(job, args)  # bad arguments fail here, in the caller, not later in the run
        run_id = f"{job}-{uuid.uuid4().hex}"
        await self._enqueue(run_id, job, args)
        await self._claim_now(self._partition(job, args))
        return run_id

    async def queued(self, run_id: str) -> bool:
        """Whether the run waits in the queue, not started yet: work recorded for it now is
        still ahead of it (what coalesces a burst of webhooks into one run)."""
        self._require_running()
        status = await DBOS.get_workflow_status_async(run_id)
        return status is not None and status.status == "ENQUEUED"

    async def wait(self, run_id: str, on_progress: ProgressCallback | None = None) -> RunSummary:
        """Wait for a run to end, calling ``on_progress`` after each recorded batch.

        Works for a run executed by any process sharing the system database. Raises
        ``RunInterrupted`` if this engine is asked to stop first.
        """
        self._require_running()
        status = await DBOS.get_workflow_status_async(run_id)
        if status is None or status.name != RUN_WORKFLOW or status.input is None:
            raise EngineError(f"no run with id {run_id!r}")
        job, args = status.input["args"]
        outcome = asyncio.ensure_future(self._follow(run_id, job, args, on_progress))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({outcome, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not outcome.done():
            outcome.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await outcome
            # Raised only once the stop is complete, so the caller may simply exit.
            await self._stopped.wait()
            raise RunInterrupted(run_id)
        return outcome.result()

    async def adopt_runs(self, executor_ids: Sequence[str]) -> list[str]:
        """Make the pending runs of these (dead) executors runnable again by any live process
        and return their run ids. The caller must know those executors are gone (the
        heartbeat's takeover claims them in the store first); adopting twice is harmless:
        only what is still PENDING under those ids goes back on the queue.

        DBOS 3.4.0 does this for another executor only through a private method (Conductor, its
        commercial control plane, calls it): it puts each PENDING workflow of those executors
        back on its queue (same partition), so one live worker dequeues it, resumes it from its
        last checkpoint, and from then on DBOS refuses the old execution's checkpoints.
        tests/integration/test_takeover.py fails if an upgrade changes any of that.
        """
        self._require_running()
        ids = list(executor_ids)
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, ids)
        return [handle.get_workflow_id() for handle in handles]

    async def run_now(
        self, job: str, args: str = "", on_progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Run ``job`` now and wait for it (after any run of the same flow in progress)."""
        return await self.wait(await self.submit(job, args), on_progress)

    @property
    def running(self) -> bool:
        """Started, not stopping, and its scheduler (if it has one) still alive: what a
        readiness check asks of the engine of a `koppel serve` process."""
        if not self._started or self._stopping.is_set():
            return False
        return self._scheduler is None or not self._scheduler.done()

    async def start_worker(
        self, schedules: ScheduleSource | None = None, *, tick_seconds: float = 1.0
    ) -> None:
        """Start the engine (if needed) and, given ``schedules``, the scheduler loop.

        Returns at once; ``wait_stopped()`` returns after a stop (SIGTERM, SIGINT or
        ``request_stop()``) has been carried out.
        """
        if not self._started:
            await self.start()
        if schedules is not None and self._scheduler is None:
            self._scheduler = asyncio.create_task(self._schedule_loop(schedules, tick_seconds))

    def request_stop(self) -> None:
        """Ask for a graceful stop: runs finish their current batch, then the engine shuts down.

        A second request cuts the batches in flight at once; they run again on resume. Safe to
        call from a signal handler running in the engine's loop.
        """
        if not self._started or self._stopped.is_set():
            return
        if self._stopping.is_set():
            for task in self._running.values():
                task.cancel()
            return
        self._stopping.set()
        for job in self._jobs.values():
            job.interrupt()
        # Kept referenced: the loop holds tasks only weakly.
        self._shutdown_task = asyncio.get_running_loop().create_task(self.shutdown())

    async def wait_stopping(self) -> None:
        """Return once a stop has begun (requested, or a shutdown called)."""
        await self._stopping.wait()

    async def wait_stopped(self) -> None:
        """Return once the engine has shut down."""
        await self._stopped.wait()

    async def shutdown(self, grace_seconds: float = 300.0) -> None:
        """Stop gracefully: no new runs or batches start, batches in flight finish and are
        recorded (up to ``grace_seconds``, then they are cut and will run again), and the
        unfinished runs stay pending to resume on the next start."""
        if not self._started or self._stopped.is_set():
            return
        if self._shutting_down:
            await self._stopped.wait()
            return
        self._shutting_down = True
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        tasks = list(self._running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        await self._release_dbos()
        self._stopped.set()

    # -- internals -------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self._started or self._stopped.is_set():
            raise EngineError("the engine is not running: call start() first")

    def _require_job(self, job: str) -> None:
        if job not in self._factories:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownJob(f"job {job!r} is not registered (registered: {known})")

    async def _heartbeat_loop(self) -> None:
        """Beat until the engine is gone (also while a stop lets batches finish, so peers do
        not take those runs over); take over silent peers while not stopping."""
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            try:
                await self._beat_and_take_over()
            except ExecutorInUse as error:
                logger.error("%s", error)
                self.request_stop()
            except Exception:
                self._last_beat = None
                logger.exception("heartbeat failed; trying again at the next beat")

    async def _beat_and_take_over(self) -> None:
        executors = self._executors
        assert executors is not None and self._started_at is not None
        last_beat = self._last_beat
        taker = await asyncio.to_thread(
            executors.beat,
            self._executor_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
        )
        if taker is not None:
            self._drop_taken_runs(taker, last_beat)
        beat = time.monotonic()
        if self._last_beat is None or beat - self._last_beat > 2 * self._heartbeat_seconds:
            self._beating_since = beat  # first beat, or after a failure or a pause of ours
        self._last_beat = beat
        if self._stopping.is_set():
            return
        now = utc_now()
        for other in await asyncio.to_thread(executors.others, self._executor_id):
            if await self._gone(other, now, beat):
                owners = await asyncio.to_thread(executors.take_over, other, self._executor_id)
                if owners:
                    runs = await self.adopt_runs(owners)
                    # A process that stopped with nothing pending (every `koppel sync`) is
                    # taken over too, quietly: only runs that move are worth a warning.
                    logger.log(
                        logging.WARNING if runs else logging.INFO,
                        "worker %s took over the runs of worker %s (last beat %s): %s",
                        self._executor_id,
                        other.id,
                        other.last_beat_at.isoformat(timespec="seconds"),
                        ", ".join(runs) or "none pending",
                    )

    async def _gone(self, other: Executor, now: datetime, beat: float) -> bool:
        """Stopped (it said so), or silent for longer than the threshold, or its process ended
        (its lock is free). Silence counts only once this process has itself beaten steadily
        for a threshold, and a free lock only while its own lock has not just been taken again:
        after an outage of the database every peer looks silent and every lock is free until
        the peers beat and lock again."""
        threshold = self._takeover_after.total_seconds()
        assert self._lock is not None
        if other.stopped_at is not None:
            return True
        if (
            beat - self._beating_since >= threshold
            and now - other.last_beat_at > self._takeover_after
        ):
            return True
        if (
            time.monotonic() - self._lock.held_since < threshold
            and self._lock.held_since > self._beating_since
        ):
            return False  # the lock was taken again after a lost connection: not yet
        return await asyncio.to_thread(self._lock.holder_gone, other.id)

    def _ended(self, run_id: str, task: asyncio.Task[Any]) -> None:
        """A run's task ended; a later execution of the same run here keeps its own entry."""
        self._executions.pop(task, None)
        if self._running.get(run_id) is task:
            del self._running[run_id]

    def _drop_taken_runs(self, taker: str, last_beat: float | None) -> None:
        """This process was silent (paused) and `taker` took over every run it had: stop
        working on them now. The fences would stop each at its next write anyway.

        Only the executions that started before its last beat before the silence are
        surely of those runs. Once woken, the process may start runs before this beat tells
        it what happened (a queued run, or one of its own runs that the taker put back on
        the queue): those are its own, and cancelling one would leave it pending under a
        live worker, its flow blocked until that worker restarts. An execution that started
        between that last beat and the pause is left to its fence."""
        lost = [
            task
            for task, started in self._executions.items()
            if last_beat is not None and started < last_beat
        ]
        logger.warning(
            "worker %s was silent for longer than %gs and worker %s took over its runs; "
            "it stops working on %d of them and carries on with new ones",
            self._executor_id,
            self._takeover_after.total_seconds(),
            taker,
            len(lost),
        )
        for task in lost:
            task.cancel()

    async def _release_dbos(self) -> None:
        global _active_engine
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        # DBOS made its own thread pool this loop's default executor, and destroy() shuts that
        # pool down while tasks of the loop (the worker's purge and run reports) may still hand
        # work to threads: give the loop a live pool of its own before, not after.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
        # destroy() joins DBOS's threads; off the loop, so tasks they hand to it can finish.
        await asyncio.to_thread(DBOS.destroy)
        logging.getLogger("dbos").removeFilter(self._log_filter)
        if self._executors is not None and self._started_at is not None:
            # Before the lock goes: peers take over what this process leaves pending at once.
            try:
                await asyncio.to_thread(self._executors.stopped, self._executor_id)
            except Exception:
                logger.exception("could not record the stop; peers take over after the threshold")
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        _active_engine = None

    async def _enqueue(self, run_id: str, job: str, args: str) -> str:
        partition = self._partition(job, args)
        with SetWorkflowID(run_id), SetEnqueueOptions(queue_partition_key=partition):
            handle = await DBOS.enqueue_workflow_async(RUN_QUEUE, _run_workflow, job, args)
        return handle.get_workflow_id()

    async def _claim_now(self, key: str) -> None:
        """Start the flow's queued run in this process now, instead of at the queue's next poll
        (up to `poll_seconds`, and about a second after the engine starts, before DBOS's queue
        thread has noticed the queue at all).

        The claim is the one DBOS's queue thread makes (`start_queued_workflows`: the flow's
        partition and the queue's global limit checked as it claims; on SQLite one claim at a
        time in the process, `_serialise_claims`), so a run still starts only when its flow is
        free, and at most once. It uses DBOS internals
        (pinned DBOS 3.4); if the claim fails (a concurrent claim holding the SQLite lock, an
        internal that moved) the poll starts the run as before."""
        queue = self._queue
        if queue is None or self._stopping.is_set():
            return

        def claim() -> None:
            dbos = _get_dbos_instance()
            owner = uuid.uuid4().hex
            active = dbos._active_workflows_set
            claimed, _ = dbos._sys_db.start_queued_workflows(
                queue,
                GlobalParams.executor_id,
                GlobalParams.app_version,
                key,
                active.count_for_queue(RUN_QUEUE),
                active.count_for_partition(RUN_QUEUE, key),
                owner_xid=owner,
            )
            for status in dbos._sys_db.get_workflow_statuses(claimed):
                execute_dequeued_workflow(dbos, status, owner)

        try:
            await asyncio.to_thread(claim)
        except Exception:
            logger.debug(
                "claiming a run of %s at once failed; the queue's poll starts it",
                key,
                exc_info=True,
            )

    async def _follow(
        self, run_id: str, job: str, args: str, on_progress: ProgressCallback | None
    ) -> RunSummary:
        last: BatchProgress | None = None
        async for item in DBOS.read_stream_async(
            run_id, PROGRESS_STREAM, polling_interval_sec=self._poll_seconds
        ):
            last = BatchProgress.from_json(item)
            if on_progress is not None:
                on_progress(last)
        batches = last.batch if last else 0
        totals = dict(last.totals) if last else {}
        local = self._running.get(run_id)
        if local is not None:
            # Run here: its outcome is recorded when its task ends, so wait for that instead
            # of polling the system database for it.
            await asyncio.wait({local})
        handle: WorkflowHandleAsync[dict[str, Any]] = await DBOS.retrieve_workflow_async(run_id)
        try:
            result: Mapping[str, Any] = await handle.get_result(
                polling_interval_sec=self._poll_seconds
            )
        except dbos_error.DBOSAwaitedWorkflowCancelledError:
            return RunSummary(run_id, job, args, "cancelled", batches, totals, "cancelled")
        except Exception as error:  # the run's own failure, recorded by DBOS
            return RunSummary(run_id, job, args, "failed", batches, totals, str(error))
        return RunSummary(
            run_id, job, args, "completed", int(result["batches"]), dict(result["counts"])
        )

    async def _schedule_loop(self, schedules: ScheduleSource, tick_seconds: float) -> None:
        while not self._stopping.is_set():
            try:
                await self._schedule_due(list(await schedules()))
            except Exception:
                logger.exception("scheduler tick failed; retrying at the next tick")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), tick_seconds)

    async def _schedule_due(self, schedules: list[FlowSchedule]) -> None:
        """Queue one run per flow and interval slot, unless the flow has a run waiting or going.

        The run id is derived from the slot, so several workers ticking at once queue it once.
        """
        if not schedules:
            return
        active = await DBOS.list_workflows_async(
            status=_ACTIVE_STATUSES, queue_name=RUN_QUEUE, load_input=False, load_output=False
        )
        busy = {status.queue_partition_key for status in active}
        now = time.time()
        for schedule in schedules:
            key = self._partition(schedule.job, schedule.args)
            if key in busy or schedule.job not in self._factories:
                if schedule.job not in self._factories:
                    logger.warning("schedule of flow %r names an unregistered job", key)
                continue
            slot = int(now // schedule.every_seconds)
            digest = uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:12]
            run_id = f"{schedule.job}-{digest}-every{schedule.every_seconds:g}s-{slot}"
            await self._enqueue(run_id, schedule.job, schedule.args)

    def _partition(self, job: str, args: str) -> str:
        runs_as = self._runs_as.get(job)
        return flow_key(job, args) if runs_as is None else flow_key(*runs_as(args))

    def _job(self, name: str, args: str) -> BatchJob:
        self._require_job(name)
        return self._factories[name](args)

    def _check_stop(self) -> None:
        """Between steps: if stopping, end this execution without recording an outcome.

        DBOS treats a cancelled workflow task as interrupted, not failed: the run stays
        pending and the next start of this executor resumes it after the last recorded step.
        """
        if self._stopping.is_set():
            raise asyncio.CancelledError


def _engine() -> Engine:
    if _active_engine is None:
        raise EngineError("a run was dispatched with no engine started in this process")
    return _active_engine


@DBOS.workflow(name=RUN_WORKFLOW)
async def _run_workflow(job_name: str, args: str) -> dict[str, Any]:
    """One flow run: ``start``, then ``run_batch`` until done, then ``finish``; every call a
    step, so every completed batch is a checkpoint."""
    engine = _engine()
    run_id = DBOS.workflow_id
    assert run_id is not None
    task = asyncio.current_task()
    assert task is not None
    engine._running[run_id] = task
    engine._executions[task] = time.monotonic()
    # Held until the task ends, which is after DBOS has recorded the run's outcome (in this
    # task, once this function returns): a waiter here then reads the outcome at once. Dropped
    # at this function's end, the waiter often asked first and polled again half a second later.
    task.add_done_callback(lambda ended: engine._ended(run_id, ended))
    job: BatchJob | None = None
    try:
        try:
            job = engine._job(job_name, args)
            engine._jobs[run_id] = job
            engine._check_stop()
            state = await DBOS.run_step_async({"name": "start"}, _start_step, job, run_id, job_name)
        except Exception as error:
            _abandon_if_taken_over(error)
            # INFO: people read the run's reason; the traceback is for the debug log.
            logger.info("run %s could not start", run_id, exc_info=error)
            raise RunFailed(
                reason_of(error) if job is None else job.describe_failure(error)
            ) from None
        totals: dict[str, int] = {}
        batch = 0
        done = False
        while not done:
            engine._check_stop()
            batch += 1
            try:
                outcome = await DBOS.run_step_async(
                    {"name": "batch"}, _batch_step, job, run_id, state, f"{job_name} batch {batch}"
                )
            except Exception as error:
                engine._check_stop()
                _abandon_if_taken_over(error)
                logger.info("run %s: batch %d failed", run_id, batch, exc_info=error)
                failure = job.describe_failure(error)
                await DBOS.run_step_async(
                    {"name": "finish"}, _finish_step, job, run_id, state, failure
                )
                raise RunFailed(failure) from None
            state, done, counts = outcome["state"], outcome["done"], outcome["counts"]
            for outcome_name, count in counts.items():
                totals[outcome_name] = totals.get(outcome_name, 0) + count
            progress = BatchProgress(run_id, batch, counts, totals, done)
            await DBOS.write_stream_async(PROGRESS_STREAM, progress.to_json())
            _wake_progress_readers(run_id)
        engine._check_stop()
        await DBOS.run_step_async({"name": "finish"}, _finish_step, job, run_id, state, None)
        await DBOS.close_stream_async(PROGRESS_STREAM)
        _wake_progress_readers(run_id)
        return {"batches": batch, "counts": totals}
    except Exception as error:
        _abandon_if_taken_over(error)
        raise
    finally:
        engine._jobs.pop(run_id, None)


def _abandon_if_taken_over(error: BaseException) -> None:
    """A run another worker took over (our store's fence refused a write) ends here in this
    process with nothing recorded: as a cancelled task, for which DBOS writes no outcome (the
    taker's execution owns the run). DBOS's own fence needs nothing of us: a checkpoint of an
    execution that lost the workflow raises DBOSWorkflowConflictIDError, a BaseException that
    unwinds the workflow past every `except Exception`, and DBOS parks that execution."""
    if isinstance(error, RunTakenOver):
        logger.warning("%s", error)
        raise asyncio.CancelledError from error


def _serialise_claims() -> None:
    """Make this process's claims of queued runs one at a time, on SQLite.

    DBOS's claim checks the partition's runs in progress and then marks the run as started; on
    SQLite the check runs before the transaction that marks it begins (pysqlite begins one only
    before the first write), so two claims at once could both see the flow free. DBOS has one
    claimer per process, its queue thread; `submit` adds its own (`Engine._claim_now`), so every
    claim in the process takes one lock. PostgreSQL checks and claims in one serialisable
    transaction and needs none. DBOS internals (pinned DBOS 3.4), like the claim itself."""
    sys_db = _get_dbos_instance()._sys_db
    lock = threading.Lock()
    for name in ("start_queued_workflows", "start_queued_partitioned_workflows"):
        claim = getattr(sys_db, name)

        def serialised(*args: Any, _claim: Any = claim, **kwargs: Any) -> Any:
            with lock:
                return _claim(*args, **kwargs)

        setattr(sys_db, name, serialised)


def _wake_progress_readers(run_id: str) -> None:
    """Hand a progress entry just written to the readers of this process at once.

    On SQLite DBOS has no notifications: a reader (`wait`) re-reads the stream every
    `poll_seconds`, half a second at each batch and at the end. A reader in this process waits
    on an event DBOS keeps per stream; setting it makes the reader read the entry now. Readers
    in other processes still poll (or hear PostgreSQL's NOTIFY). DBOS internals (pinned DBOS
    3.4): if they moved, readers fall back to polling."""
    try:
        sys_db = _get_dbos_instance()._sys_db
        payload, _ = sys_db._waiter(run_id, PROGRESS_STREAM)
        signal = sys_db.streams_map.get(payload)
    except Exception:
        logger.debug("no progress reader to wake for run %s", run_id, exc_info=True)
        return
    if signal is not None:
        signal.set()


async def _start_step(job: BatchJob, run_id: str, job_name: str) -> JsonState:
    try:
        state = await job.start(run_id)
    except RunTakenOver as error:  # never a recorded failure: the taker starts it
        _abandon_if_taken_over(error)
        raise
    return checked_state(state, f"job {job_name!r} start")


async def _finish_step(job: BatchJob, run_id: str, state: JsonState, failure: str | None) -> None:
    try:
        await job.finish(run_id, state, failure)
    except RunTakenOver as error:  # never a recorded failure: the taker finishes it
        _abandon_if_taken_over(error)
        raise


async def _batch_step(job: BatchJob, run_id: str, state: JsonState, where: str) -> dict[str, Any]:
    """Run one batch; its checkpoint is plain data, so a resume never depends on our classes.

    A batch that fails while the engine stops was cut short by the stop (`BatchJob.interrupt`):
    it ends as cancelled, which DBOS does not record, so it runs again on resume instead of
    replaying the error."""
    try:
        result = await job.run_batch(run_id, state)
    except Exception as error:
        _engine()._check_stop()
        # Not recorded as the step's failure: the taker's execution records this batch.
        _abandon_if_taken_over(error)
        raise
    return {
        "state": checked_state(result.state, where),
        "done": bool(result.done),
        "counts": {str(name): int(count) for name, count in result.counts.items()},
    }
