"""Heartbeats, the takeover claim and the run fence, on SQLite and on PostgreSQL (a database of
its own per test). Several stores on one database stand for several worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from koppel.cli import app
from koppel.engine import Engine, default_executor_id
from koppel.engine._executor_lock import ExecutorLock
from koppel.errors import RunTakenOver
from koppel.store import ExecutorState, LinkEntry, OutcomeEntry, OutcomeKind, RunStatus, Store
from koppel.store.tables import ExecutorRow
from tests.engine_jobs.counting import CountingJob, counting_args, executions
from tests.fixtures_store import PostgresDatabases, StoreFactory, seed_integration

SILENT = timedelta(seconds=30)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/koppel.db"
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.create()


def started() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def silence(store: Store, executor_id: str, seconds: float) -> None:
    """As if the executor's last beat was `seconds` ago (a test waits for states, not time)."""
    with store.engine.begin() as connection:
        connection.execute(
            update(ExecutorRow)
            .where(ExecutorRow.id == executor_id)
            .values(last_beat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def executor(store: Store, executor_id: str) -> object:
    return next(e for e in store.executors.list() if e.id == executor_id)


def test_beats_register_an_executor_and_keep_it_live(store: Store) -> None:
    since = started()
    assert store.executors.beat("a", host="h1", pid=11, started_at=since) is None
    assert store.executors.beat("a", host="h1", pid=11, started_at=since) is None
    [a] = store.executors.list()
    assert (a.id, a.host, a.pid, a.started_at) == ("a", "h1", 11, since)
    assert a.state(datetime.now(UTC), SILENT) is ExecutorState.LIVE
    assert a.state(datetime.now(UTC) + 2 * SILENT, SILENT) is ExecutorState.SILENT
    store.executors.stopped("a")
    assert store.executors.list()[0].state(datetime.now(UTC), SILENT) is ExecutorState.STOPPED


def test_a_claim_hands_the_running_runs_to_the_taker_and_fences_the_old_owner(
    store: Store,
) -> None:
    seeded = seed_integration(store)
    since = started()
    store.executors.beat("a", host="h1", pid=11, started_at=since)
    store.executors.beat("b", host="h2", pid=22, started_at=since)
    store.runs.start(seeded.flow.id, run_id="run-1", executor="a", owner="a/1")
    done = store.runs.start(seeded.flow.id, run_id="run-0", executor="a", owner="a/0")
    store.runs.finish(done.id, RunStatus.SUCCEEDED)
    stale = store.fenced("run-1", "a/1")
    stale.outcomes.record_many("run-1", [OutcomeEntry("P1", OutcomeKind.CREATED, target_key="1")])
    stale.check_owner()  # still its own: a post may go out

    silence(store, "a", 60)
    [seen] = store.executors.others("b")
    assert store.executors.take_over(seen, "b") == ["a"]

    assert store.runs.get("run-1").executor == "b"  # type: ignore[union-attr]
    assert store.runs.get("run-0").executor == "a"  # type: ignore[union-attr]  # ended: kept
    assert executor(store, "a").taken_over_by == "b"  # type: ignore[attr-defined]
    with pytest.raises(RunTakenOver, match="run run-1 was taken over by worker b") as refused:
        stale.outcomes.record_many(
            "run-1", [OutcomeEntry("P2", OutcomeKind.CREATED, target_key="2")]
        )
    assert refused.value.owner == "b"
    with pytest.raises(RunTakenOver), stale.transaction() as tx:  # a batch's recording
        tx.links.upsert_many(seeded.integration.id, "products", [LinkEntry("P2", "2")])
    with pytest.raises(RunTakenOver):
        stale.runs.finish("run-1", RunStatus.SUCCEEDED)
    with pytest.raises(RunTakenOver, match="taken over by worker b"):  # before a post
        stale.check_owner()
    store.check_owner()  # a store that is not fenced has no owner to check
    assert [o.source_key for o in store.outcomes.list("run-1")] == ["P1"]
    assert store.links.get_many(seeded.integration.id, "products", ["P2"]) == {}
    assert store.runs.get("run-1").status is RunStatus.RUNNING  # type: ignore[union-attr]

    # The execution that resumes it, on whichever worker the queue gives it to, claims it.
    store.runs.claim("run-1", "c", "c/1")
    assert store.runs.get("run-1").executor == "c"  # type: ignore[union-attr]
    with pytest.raises(RunTakenOver, match="taken over by worker c"):
        store.fenced("run-1", "b/takeover").runs.progress("run-1", {}, api_calls=0)
    owner = store.fenced("run-1", "c/1")
    owner.outcomes.record_many("run-1", [OutcomeEntry("P2", OutcomeKind.CREATED, target_key="2")])
    assert owner.runs.finish("run-1", RunStatus.SUCCEEDED).executor == "c"


def test_a_fenced_start_of_a_new_run_has_no_owner_to_check(store: Store) -> None:
    seeded = seed_integration(store)
    first = store.fenced("run-9", "a/1")
    run = first.runs.start(seeded.flow.id, run_id="run-9", executor="a", owner="a/1")
    assert run.executor == "a"
    with pytest.raises(RunTakenOver):  # a second execution's start, not having claimed it
        store.fenced("run-9", "z/1").runs.start(seeded.flow.id, run_id="run-9", owner="z/1")
    store.runs.claim("run-9", "a", "a/2")  # the same worker, a later execution (a restart)
    with pytest.raises(RunTakenOver, match="taken over by worker a while worker a"):
        first.runs.progress("run-9", {}, api_calls=0)


def test_an_executor_that_beat_again_since_it_was_seen_is_not_claimed(store: Store) -> None:
    since = started()
    store.executors.beat("a", host="h1", pid=11, started_at=since)
    silence(store, "a", 60)
    [seen] = store.executors.others("b")
    store.executors.beat("a", host="h1", pid=11, started_at=since)  # it woke up meanwhile
    assert store.executors.take_over(seen, "b") == []
    assert executor(store, "a").taken_over_by is None  # type: ignore[attr-defined]


def test_a_woken_executor_learns_who_took_it_over_and_is_live_again(store: Store) -> None:
    since = started()
    store.executors.beat("a", host="h1", pid=11, started_at=since)
    silence(store, "a", 60)
    [seen] = store.executors.others("b")
    assert store.executors.take_over(seen, "b") == ["a"]
    assert store.executors.others("b") == []  # taken over: nobody claims it again
    assert store.executors.beat("a", host="h1", pid=11, started_at=since) == "b"
    assert store.executors.beat("a", host="h1", pid=11, started_at=since) is None
    assert [e.id for e in store.executors.others("b")] == ["a"]


def test_a_restart_with_the_same_id_is_a_new_process(store: Store) -> None:
    store.executors.beat("a", host="h1", pid=11, started_at=started() - timedelta(hours=1))
    silence(store, "a", 60)
    [seen] = store.executors.others("b")
    store.executors.take_over(seen, "b")
    assert store.executors.beat("a", host="h1", pid=12, started_at=started()) is None
    a = executor(store, "a")
    assert (a.pid, a.taken_over_by) == (12, None)  # type: ignore[attr-defined]


def test_the_taker_of_a_dead_taker_also_recovers_what_that_one_had_claimed(store: Store) -> None:
    seeded = seed_integration(store)
    since = started()
    for name in ("a", "b", "c"):
        store.executors.beat(name, host="h", pid=1, started_at=since)
    store.runs.start(seeded.flow.id, run_id="run-1", executor="a", owner="a/1")
    silence(store, "a", 60)
    [a] = [e for e in store.executors.others("b") if e.id == "a"]
    assert store.executors.take_over(a, "b") == ["a"]
    silence(store, "b", 60)  # b died before (or while) it recovered a's runs
    [b] = [e for e in store.executors.others("c") if e.id == "b"]
    assert store.executors.take_over(b, "c") == ["b", "a"]
    assert store.runs.get("run-1").executor == "c"  # type: ignore[union-attr]


def test_of_several_processes_claiming_one_silent_executor_exactly_one_wins(
    store_factory: StoreFactory,
) -> None:
    first = store_factory()
    seeded = seed_integration(first)
    first.executors.beat("dead", host="h", pid=1, started_at=started())
    first.runs.start(seeded.flow.id, run_id="run-1", executor="dead")
    silence(first, "dead", 60)
    takers = [f"taker-{n}" for n in range(6)]
    stores = {name: store_factory() for name in takers}
    seen = {name: stores[name].executors.others(name)[0] for name in takers}
    results: dict[str, list[str]] = {}
    gate = threading.Barrier(len(takers))

    def claim(name: str) -> None:
        gate.wait()
        results[name] = stores[name].executors.take_over(seen[name], name)

    threads = [threading.Thread(target=claim, args=(name,)) for name in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, owners in results.items() if owners]
    assert len(winners) == 1, results
    assert results[winners[0]] == ["dead"]
    assert first.runs.get("run-1").executor == winners[0]  # type: ignore[union-attr]


async def test_an_engine_takes_over_an_ended_peer_at_once_and_a_silent_one_once_steady(
    store: Store, tmp_path: Path
) -> None:
    """A peer whose process ended (its executor lock is free) is taken over as the engine
    starts; one whose process lives but is silent (paused) only once the engine has itself
    beaten for a threshold: after a database outage every peer looks silent."""
    url = f"sqlite:///{tmp_path / 'dbos.sqlite'}"
    store.executors.beat("ended", host="h", pid=1, started_at=started())
    paused = ExecutorLock.acquire(url, "paused")
    try:
        store.executors.beat("paused", host="h", pid=2, started_at=started())
        silence(store, "paused", 60)
        engine = Engine(
            database_url=url,
            executor_id="b",
            executors=store.executors,
            takeover_after_seconds=2,
            heartbeat_seconds=0.25,
            handle_signals=False,
        )
        async with engine:
            assert executor(store, "ended").taken_over_by == "b"  # type: ignore[attr-defined]
            assert executor(store, "paused").taken_over_by is None  # type: ignore[attr-defined]
            for _ in range(200):
                if executor(store, "paused").taken_over_by is not None:  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.1)
            assert executor(store, "paused").taken_over_by == "b"  # type: ignore[attr-defined]
        assert executor(store, "b").stopped_at is not None  # type: ignore[attr-defined]
    finally:
        paused.release()


@pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_woken_engine_stops_only_the_runs_it_had_before_it_went_silent(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A paused worker that wakes may start a queued run before its next beat tells it that
    a peer took over the runs it had. That beat stops the runs it had, and only those: a new
    one stopped there would stay pending under a live worker, its flow never scheduled again.
    The beat is held up (the silence) by a transaction that holds the executor's row, which
    is where the peer's claim is written (PostgreSQL: a row lock waits, it does not fail)."""
    log = tmp_path / "log.sqlite"
    engine = Engine(
        database_url=f"sqlite:///{tmp_path / 'dbos.sqlite'}",
        executor_id="w",
        executors=store.executors,
        heartbeat_seconds=0.25,
        poll_seconds=0.1,
        handle_signals=False,
    )
    engine.register("counting", CountingJob)

    def begun(run_id: str) -> bool:
        return any(e.kind == "begin" and e.run_id == run_id for e in executions(log))

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(1200):
            if condition():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"waited 120s for {condition}")

    async with engine:
        before = await engine.submit("counting", counting_args(log, total=1, size=1, pause=60))
        await until(lambda: begun(before))
        seen = executor(store, "w").last_beat_at  # type: ignore[attr-defined]
        await until(lambda: executor(store, "w").last_beat_at > seen)  # type: ignore[attr-defined]
        with store.engine.connect() as silent:
            silent.execute(
                update(ExecutorRow)
                .where(ExecutorRow.id == "w")
                .values(taken_over_by="t", taken_over_at=datetime.now(UTC))
            )
            after = await engine.submit("counting", counting_args(log, total=2, size=1))
            await until(lambda: begun(after))
            silent.commit()
        summary = await asyncio.wait_for(engine.wait(after), timeout=120)
    assert summary.status == "completed" and summary.batches == 2, summary
    assert "it stops working on 1 of them" in caplog.text, caplog.text
    assert not [e for e in executions(log) if e.run_id == before and e.kind == "end"]


def test_koppel_workers_lists_every_state(
    store: Store, store_url: str, secret_key: str, tmp_path: Path
) -> None:
    since = started()
    seeded = seed_integration(store)
    for name in ("live-one", "gone-one", "stopped-one", "taker"):
        store.executors.beat(name, host="box", pid=7, started_at=since)
    store.runs.start(seeded.flow.id, run_id="run-1", executor="taker", owner="taker/1")
    store.executors.stopped("stopped-one")
    silence(store, "gone-one", 60)
    [gone] = [e for e in store.executors.others("taker") if e.id == "gone-one"]
    store.executors.take_over(gone, "taker")
    env = {
        "KOPPEL_HOME": str(tmp_path / "home"),
        "KOPPEL_DATABASE_URL": store_url,
        "KOPPEL_SECRET_KEY": secret_key,
        "COLUMNS": "200",
    }
    listed = CliRunner().invoke(app, ["workers"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[1]: line for line in listed.output.splitlines() if "box" in line}
    assert "live" in lines["live-one"] and "taken over" not in lines["live-one"]
    assert "stopped" in lines["stopped-one"]
    assert "taken over" in lines["gone-one"] and lines["gone-one"].rstrip(" │").endswith("taker")
    as_json = json.loads(CliRunner().invoke(app, ["workers", "--json"], env=env).output)
    running = {w["id"]: w["running"] for w in as_json}
    assert running == {"live-one": 0, "gone-one": 0, "stopped-one": 0, "taker": 1}


def test_executor_ids_default_to_local_on_sqlite_and_to_host_pid_elsewhere() -> None:
    """SQLite: one engine process per system database, so one id; PostgreSQL: one per process."""
    assert default_executor_id("sqlite:///home/dbos.sqlite") == "local"
    assert default_executor_id("postgresql://db/engine") == f"{socket.gethostname()}-{os.getpid()}"


def test_a_worker_frozen_inside_a_fenced_write_does_not_hold_up_the_taker(store: Store) -> None:
    """A worker paused (or its host frozen) inside a write transaction holds the run's row
    lock; PostgreSQL ends that transaction once it has been silent for
    FROZEN_TRANSACTION_SECONDS, so the taker's claim goes through, and the frozen worker's
    write, when it wakes, is lost with its transaction rather than recorded."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite: one process holds the database file, there is no row lock to end")
    seeded = seed_integration(store)
    store.runs.start(seeded.flow.id, run_id="run-1", executor="a", owner="a/1")
    frozen = store.fenced("run-1", "a/1")
    inside = threading.Event()
    woken = threading.Event()
    failure: list[BaseException] = []

    def freeze_inside_a_write() -> None:
        try:
            with frozen.transaction() as tx:
                tx.outcomes.record_many(
                    "run-1", [OutcomeEntry("P1", OutcomeKind.CREATED, target_key="1")]
                )
                inside.set()
                woken.wait()
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=freeze_inside_a_write)
    worker.start()
    try:
        assert inside.wait(10)
        store.runs.claim("run-1", "b", "b/1")  # waits for PostgreSQL to end the frozen one
        assert store.runs.get("run-1").executor == "b"  # type: ignore[union-attr]
    finally:
        woken.set()
        worker.join()
    assert failure, "the frozen transaction committed after the takeover"
    assert store.outcomes.list("run-1") == []
