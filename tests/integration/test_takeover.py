"""What the engine's takeover relies on in DBOS 3.4.0, where recovering *another* executor's
workflows is a private API (`DBOS._recover_pending_workflows`, wrapped by `Engine.adopt_runs`).

If a DBOS upgrade changes any of this, these tests fail before a deployment does: a pending run
of a dead executor goes back on its queue and partition, exactly one live engine resumes it from
its last checkpoint, adopting it twice does nothing, and the old execution (a paused process
that wakes up) can no longer record a checkpoint for it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from dbos import DBOS
from dbos import error as dbos_error

from koppel.engine import Engine, ExecutorInUse
from koppel.engine._executor_lock import ExecutorLock
from koppel.engine.engine import RUN_QUEUE
from tests.engine_jobs.counting import CountingJob, Execution, counting_args, executions
from tests.fixtures_store import PostgresDatabases
from tests.integration.test_engine_recovery import Worker

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    """A system database of the test's own (dropped at the end of the session)."""
    return postgres_databases.create()


def engine_b(url: str) -> Engine:
    engine = Engine(database_url=url, executor_id="b", poll_seconds=0.1, handle_signals=False)
    engine.register("counting", CountingJob)
    return engine


async def test_adopting_a_dead_executors_runs_resumes_them_once_on_their_partition(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log.sqlite"
    monkeypatch.setenv("KOPPEL_TEST_EXECUTOR_ID", "a")
    worker = Worker(tmp_path, postgres_url, counting_args(log, total=8, size=1, pause=0.05))
    found = worker.wait_for(log, "3 batches ended", lambda f: sum(e.kind == "end" for e in f) >= 3)
    worker.process.kill()
    worker.process.wait()
    run_id = found[0].run_id
    ended_before = {e.batch for e in executions(log) if e.kind == "end"}

    async with engine_b(postgres_url) as engine:
        before = await DBOS.get_workflow_status_async(run_id)
        assert before is not None
        assert (before.status, before.executor_id) == ("PENDING", "a")
        partition = before.queue_partition_key
        assert partition is not None and partition.startswith("counting:")

        assert await engine.adopt_runs(["a"]) == [run_id]
        assert await engine.adopt_runs(["a"]) == []  # the second taker finds nothing
        summary = await engine.wait(run_id)
        after = await DBOS.get_workflow_status_async(run_id)

    assert summary.status == "completed", summary.error
    assert summary.batches == 8 and summary.counts == {"processed": 8}
    assert after is not None
    assert (after.status, after.executor_id) == ("SUCCESS", "b")
    assert (after.queue_name, after.queue_partition_key) == (RUN_QUEUE, partition)
    found = executions(log)
    ends = Counter(e.batch for e in found if e.kind == "end")
    # Resumed from the last checkpoint: at most the batch in flight at the kill ran twice.
    assert set(ends) == set(range(1, 9))
    assert [b for b, n in ends.items() if n > 1] in ([], [max(ended_before)])
    assert [e.kind for e in found].count("start") == 1
    assert [e.kind for e in found].count("finish") == 1


async def test_a_paused_execution_can_record_nothing_once_its_run_was_adopted(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log.sqlite"
    monkeypatch.setenv("KOPPEL_TEST_EXECUTOR_ID", "a")
    worker = Worker(tmp_path, postgres_url, counting_args(log, total=4, size=1, pause=1.5))
    found = worker.wait_for(
        log, "batch 2 begun", lambda f: any(e.kind == "begin" and e.batch == 2 for e in f)
    )
    worker.process.send_signal(signal.SIGSTOP)
    run_id = found[0].run_id
    try:
        async with engine_b(postgres_url) as engine:
            assert await engine.adopt_runs(["a"]) == [run_id]
            await asyncio.to_thread(
                wait_for_log,
                log,
                lambda f: any(
                    e.kind == "begin" and e.batch == 2 and e.pid == os.getpid() for e in f
                ),
            )
            woken = len(executions(log))
            # The paused worker wakes in batch 2 (its sleep is over), ends it, and DBOS refuses
            # to record it: the execution unwinds (no finish) and waits for b's result.
            worker.process.send_signal(signal.SIGCONT)
            summary = await engine.wait(run_id)
            assert summary.status == "completed" and summary.batches == 4
            assert await asyncio.to_thread(worker.wait) == 0, worker.output.read_text()
            result = await DBOS.get_workflow_status_async(run_id)
    finally:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGCONT)
            worker.process.kill()
    output = worker.output.read_text()
    assert f"Workflow {run_id} is no longer owned by this execution" in output, output
    assert "completed 4" in output, output
    stale = [(e.kind, e.batch) for e in executions(log)[woken:] if e.pid == worker.process.pid]
    assert stale == [("end", 2)]  # it finished the batch it was in and began nothing after
    assert result is not None and result.executor_id == "b"
    ends = Counter(e.batch for e in executions(log) if e.kind == "end" and e.pid == os.getpid())
    assert ends == {2: 1, 3: 1, 4: 1}


def test_dbos_refusal_of_a_stale_checkpoint_unwinds_past_except_exception() -> None:
    """The run workflow catches `Exception` around its steps to fail a run with its reason; a
    stale execution's refusal must pass through those handlers, or a woken worker would
    record the run as failed under the taker's feet."""
    assert not issubclass(dbos_error.DBOSWorkflowConflictIDError, Exception)


def wait_for_log(log: Path, predicate: Callable[[list[Execution]], bool]) -> None:
    deadline = time.monotonic() + 60
    while not predicate(executions(log)):
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw it in the log: {executions(log)}")
        time.sleep(0.02)


def test_an_executor_lock_lost_with_its_connection_is_taken_again(postgres_url: str) -> None:
    """PostgreSQL drops a session's advisory locks with the session (a restart, a cut
    connection): the next probe takes the lock again, and says nothing is free meanwhile."""
    lock = ExecutorLock.acquire(postgres_url, "a")
    try:
        before = lock.held_since
        admin = psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True)
        with admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert lock.holder_gone("b") is False  # the connection was lost: not trusted yet
        assert lock.held_since > before
        with pytest.raises(ExecutorInUse):
            ExecutorLock.acquire(postgres_url, "a")  # held again
        assert lock.holder_gone("b") is True  # nobody holds b
    finally:
        lock.release()
