"""Crash and stop a real worker process mid-run, start it again, and check every batch.

The worker (tests/engine_jobs/worker.py) runs a counting job that logs each call to a SQLite
file of its own, so the log shows which batches ran and how often across processes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from koppel.engine import Engine, ExecutorInUse
from koppel.engine._executor_lock import ExecutorLock
from tests.engine_jobs.counting import CountingJob, Execution, counting_args, executions

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get(
    "KOPPEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"koppel_engine_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _drop_database(name)


def _drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def system_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'dbos.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


class Worker:
    """One worker process, its output kept in a file for when a test fails."""

    def __init__(self, tmp_path: Path, database_url: str, *args: str) -> None:
        self.output = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
        with self.output.open("w") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.engine_jobs.worker",
                    database_url,
                    str(tmp_path / "home"),
                    *args,
                ],
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"worker hung; output:\n{self.output.read_text()}") from None

    def wait_for(
        self, log: Path, condition: str, predicate: Callable[[list[Execution]], bool]
    ) -> list[Execution]:
        """Poll the job's log until ``predicate(log)`` holds, while the worker lives."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = executions(log)
            if predicate(found):
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        self.process.kill()
        raise AssertionError(f"never saw {condition}; output:\n{self.output.read_text()}")


def _ended(found: list[Execution]) -> int:
    return sum(1 for e in found if e.kind == "end")


def _ended_at_least(goal: int) -> Callable[[list[Execution]], bool]:
    return lambda found: _ended(found) >= goal


def test_sigkill_at_random_batches_resumes_after_the_last_recorded_batch(
    tmp_path: Path, system_database_url: str
) -> None:
    log = tmp_path / "log.sqlite"
    total = 60
    args = counting_args(log, total=total, size=1, pause=0.03)
    in_flight_at_kill: list[int] = []

    worker = Worker(tmp_path, system_database_url, args)
    for _ in range(3):
        ended = _ended(executions(log))
        if ended >= total - 8:  # a loaded machine saw the kills late: the run is nearly done
            break
        goal = ended + random.randint(2, 6)
        worker.wait_for(log, f"{goal} batches ended", _ended_at_least(goal))
        worker.process.kill()
        worker.process.wait()
        found = executions(log)
        in_flight_at_kill.append(max(e.batch or 0 for e in found if e.kind == "begin"))
        worker = Worker(tmp_path, system_database_url, "--resume", found[0].run_id)
    assert worker.wait() == 0, worker.output.read_text()

    found = executions(log)
    assert len({e.run_id for e in found}) == 1
    assert [e.kind for e in found].count("start") == 1
    assert [(e.kind, e.interrupted) for e in found if e.kind == "finish"] == [("finish", False)]
    ended = Counter(e.batch for e in found if e.kind == "end")
    assert set(ended) == set(range(1, total + 1))
    begun = Counter(e.batch for e in found if e.kind == "begin")
    rerun = {batch for batch, times in begun.items() if times > 1}
    # Only a batch that was in flight at a kill may run twice; every other batch runs once.
    assert rerun <= set(in_flight_at_kill), (rerun, in_flight_at_kill)
    assert all(times <= 2 for times in begun.values())


def test_sigterm_lets_the_current_batch_finish_and_the_run_resumes_later(
    tmp_path: Path, system_database_url: str
) -> None:
    log = tmp_path / "log.sqlite"
    total = 6
    args = counting_args(log, total=total, size=1, pause=0.5)

    worker = Worker(tmp_path, system_database_url, args)
    found = worker.wait_for(
        log,
        "batch 2 in flight",
        lambda found: bool(found) and found[-1].kind == "begin" and found[-1].batch == 2,
    )
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 3, worker.output.read_text()

    stopped = executions(log)
    # The batch in flight at SIGTERM ran to its end, and no further batch began.
    assert [(e.kind, e.batch) for e in stopped[-2:]] == [("begin", 2), ("end", 2)]

    worker = Worker(tmp_path, system_database_url, "--resume", found[0].run_id)
    assert worker.wait() == 0, worker.output.read_text()
    found = executions(log)
    # Batch 2's result was recorded at the stop: nothing ran twice.
    assert [(e.kind, e.batch) for e in found] == [
        ("start", None),
        *[(kind, b) for b in range(1, total + 1) for kind in ("begin", "end")],
        ("finish", None),
    ]


@pytest.mark.postgres
def test_one_live_process_per_executor_id_on_postgres(postgres_url: str) -> None:
    lock = ExecutorLock.acquire(postgres_url, "worker-1")
    try:
        with pytest.raises(ExecutorInUse, match="executor id 'worker-1' is in use"):
            ExecutorLock.acquire(postgres_url, "worker-1")
        ExecutorLock.acquire(postgres_url, "worker-2").release()
    finally:
        lock.release()
    ExecutorLock.acquire(postgres_url, "worker-1").release()


@pytest.mark.postgres
async def test_engine_creates_a_missing_postgres_database(tmp_path: Path) -> None:
    name = f"koppel_engine_{uuid.uuid4().hex[:12]}"
    engine = Engine(
        database_url=POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}",
        poll_seconds=0.1,
        handle_signals=False,
    )
    engine.register("counting", CountingJob)
    try:
        async with engine:
            summary = await engine.run_now(
                "counting", counting_args(tmp_path / "log.sqlite", total=4, size=2)
            )
        assert summary.status == "completed"
        assert summary.batches == 2
        assert "koppel_engine_" in engine.database_url
    finally:
        _drop_database(name)
