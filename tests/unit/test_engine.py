"""The engine in one process on its default SQLite system database: runs, progress, mutual
exclusion per flow, failures, schedules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from koppel.engine import (
    BatchProgress,
    Engine,
    EngineError,
    ExecutorInUse,
    FlowSchedule,
    RunInterrupted,
    UnknownJob,
)
from koppel.engine._executor_lock import ExecutorLock
from tests.engine_jobs.counting import CountingJob, counting_args, executions


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = Engine(home=tmp_path / ".koppel", poll_seconds=0.1, handle_signals=False)
    engine.register("counting", CountingJob)
    async with engine:
        yield engine


async def test_run_completes_every_batch_with_progress_per_batch(
    engine: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "log.sqlite"
    seen: list[BatchProgress] = []

    summary = await engine.run_now("counting", counting_args(log, total=23, size=5), seen.append)

    assert summary.status == "completed"
    assert summary.batches == 5
    assert summary.counts == {"processed": 23}
    assert [p.batch for p in seen] == [1, 2, 3, 4, 5]
    assert [p.done for p in seen] == [False, False, False, False, True]
    assert [p.counts["processed"] for p in seen] == [5, 5, 5, 5, 3]
    assert seen[-1].totals == {"processed": 23}
    kinds = [(e.kind, e.batch) for e in executions(log)]
    assert kinds == [
        ("start", None),
        *[(kind, b) for b in range(1, 6) for kind in ("begin", "end")],
        ("finish", None),
    ]
    assert {e.run_id for e in executions(log)} == {summary.run_id}
    assert (tmp_path / ".koppel" / "dbos.sqlite").exists()


async def _until(condition: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds; fail after a generous minute."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


def _blocks(log: Path) -> list[str]:
    """The run ids of the log, one per unbroken stretch of calls from the same run."""
    order = [e.run_id for e in executions(log)]
    return [run for i, run in enumerate(order) if i == 0 or order[i - 1] != run]


async def test_second_run_of_a_flow_waits_for_the_first(engine: Engine, tmp_path: Path) -> None:
    log = tmp_path / "log.sqlite"
    args = counting_args(log, total=8, size=2, pause=0.05)

    first, second = await asyncio.gather(
        engine.run_now("counting", args), engine.run_now("counting", args)
    )

    assert first.status == second.status == "completed"
    assert len(executions(log)) == 2 * (1 + 2 * 4 + 1)
    # One run's calls all come before the other's: no interleaving.
    assert sorted(_blocks(log)) == sorted([first.run_id, second.run_id])


async def test_a_job_that_runs_as_another_waits_for_its_runs_and_is_queued_meanwhile(
    tmp_path: Path,
) -> None:
    """A targeted run of a flow (webhooks) shares the flow's queue partition: never beside a
    full run of it, and `queued` tells that it still waits (what coalesces deliveries)."""
    engine = Engine(home=tmp_path / ".koppel", poll_seconds=0.1, handle_signals=False)
    engine.register("counting", CountingJob)
    engine.register("counting-targeted", CountingJob, runs_as=lambda args: ("counting", args))
    log = tmp_path / "log.sqlite"
    args = counting_args(log, total=8, size=2, pause=0.05)
    async with engine:
        first = await engine.submit("counting", args)
        second = await engine.submit("counting-targeted", args)
        assert await engine.queued(second)
        ended = [await engine.wait(first), await engine.wait(second)]
        assert not await engine.queued(second)
    assert [summary.status for summary in ended] == ["completed", "completed"]
    assert sorted(_blocks(log)) == sorted([first, second])


async def test_runs_of_different_flows_overlap(engine: Engine, tmp_path: Path) -> None:
    log = tmp_path / "log.sqlite"
    # Different arguments make different flows, even on a shared log.
    flows = [counting_args(log, total=3, size=1, pause=pause) for pause in (0.2, 0.21)]

    results = await asyncio.gather(*(engine.run_now("counting", args) for args in flows))

    assert [r.status for r in results] == ["completed", "completed"]
    assert len(_blocks(log)) > 2


async def test_failing_batch_fails_the_run_and_finishes_it_interrupted(
    engine: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "log.sqlite"

    summary = await engine.run_now(
        "counting", counting_args(log, total=10, size=2, fail_at_batch=3)
    )

    assert summary.status == "failed"
    assert summary.batches == 2
    assert summary.counts == {"processed": 4}
    assert summary.error is not None
    assert summary.error == "RuntimeError: number 5 is unlucky"  # as the job describes it
    finish = [e for e in executions(log) if e.kind == "finish"]
    assert len(finish) == 1 and finish[0].interrupted is True


async def test_state_that_is_not_json_fails_the_run_naming_the_batch(
    engine: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "log.sqlite"

    summary = await engine.run_now(
        "counting", counting_args(log, total=10, size=2, bad_state_at_batch=2)
    )

    assert summary.status == "failed"
    assert summary.error is not None
    assert "counting batch 2" in summary.error and "JSON" in summary.error


async def test_unknown_job_and_late_registration_are_refused(engine: Engine) -> None:
    with pytest.raises(UnknownJob, match="'orders' is not registered"):
        await engine.run_now("orders", "1")
    with pytest.raises(EngineError, match="before start"):
        engine.register("orders", CountingJob)
    with pytest.raises(ValueError, match="Expecting value"):
        await engine.run_now("counting", "these arguments are not JSON")


async def test_scheduler_runs_each_enabled_flow_again_and_again(
    engine: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "log.sqlite"
    schedules = [FlowSchedule("counting", counting_args(log, total=2, size=1), every_seconds=0.5)]

    async def current() -> list[FlowSchedule]:
        return schedules

    await engine.start_worker(current, tick_seconds=0.1)
    await _until(lambda: len({e.run_id for e in executions(log) if e.kind == "finish"}) >= 3)
    schedules.clear()

    blocks = _blocks(log)
    assert len(blocks) == len(set(blocks))


async def test_threads_of_the_loop_work_through_every_moment_of_a_shutdown(
    tmp_path: Path,
) -> None:
    """The worker's helpers (purge, run reports) hand work to threads while the engine stops:
    DBOS makes its own pool the loop's default and shuts it down on destroy, so a call that
    lands in between used to fail with "cannot schedule new futures after shutdown"."""
    engine = _engine(tmp_path)
    await engine.start()
    summary = await engine.run_now("counting", counting_args(tmp_path / "l", total=1, size=1))
    assert summary.status == "completed"
    stopped = asyncio.Event()
    calls = 0

    async def hand_work_to_threads() -> None:
        nonlocal calls
        while not stopped.is_set():
            calls += await asyncio.to_thread(len, "x")

    helper = asyncio.create_task(hand_work_to_threads())
    await asyncio.to_thread(len, "ready")
    await engine.shutdown()
    stopped.set()
    await helper  # raises what a thread hand-off raised during the shutdown
    assert calls > 0
    assert await asyncio.to_thread(len, "after") == 5
    with pytest.raises(EngineError, match="not running"):
        await engine.run_now("counting", "")


def _engine(home: Path) -> Engine:
    engine = Engine(home=home, poll_seconds=0.1, handle_signals=False)
    engine.register("counting", CountingJob)
    return engine


async def test_second_stop_request_cuts_the_batch_and_resume_runs_it_again(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log.sqlite"
    first = _engine(tmp_path / ".koppel")
    await first.start()
    run_id = await first.submit("counting", counting_args(log, total=3, size=1, pause=1.0))
    waiter = asyncio.create_task(first.wait(run_id))
    await _until(lambda: any(e.kind == "begin" and e.batch == 2 for e in executions(log)))

    first.request_stop()
    first.request_stop()
    await first.wait_stopped()

    with pytest.raises(RunInterrupted, match=run_id):
        await waiter
    assert [(e.kind, e.batch) for e in executions(log)][-1] == ("begin", 2)
    async with _engine(tmp_path / ".koppel") as second:
        summary = await second.wait(run_id)
    assert summary.status == "completed"
    assert summary.counts == {"processed": 3}
    begun = [e.batch for e in executions(log) if e.kind == "begin"]
    assert begun == [1, 2, 2, 3]


def test_schedule_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every_seconds must be greater than 0"):
        FlowSchedule("counting", "x", every_seconds=0)


def test_one_live_process_per_executor_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dbos.sqlite'}"
    lock = ExecutorLock.acquire(url, "local")
    try:
        with pytest.raises(ExecutorInUse, match="executor id 'local' is in use"):
            ExecutorLock.acquire(url, "local")
        ExecutorLock.acquire(url, "other").release()
    finally:
        lock.release()
    ExecutorLock.acquire(url, "local").release()
