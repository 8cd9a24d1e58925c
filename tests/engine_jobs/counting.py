"""A test job that "processes" the numbers 1..total in batches and logs every call it gets.

The log lives in a SQLite file of the job's own, committed before each call returns, so a test
can see exactly which batches ran, how often, and in which order, even across killed processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from koppel.engine import BatchResult, JsonState

__all__ = ["CountingJob", "Execution", "counting_args", "executions"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,          -- start | begin | end | finish
    batch INTEGER,
    interrupted INTEGER,
    pid INTEGER                  -- the process that made the call
)
"""


@dataclass(frozen=True)
class Execution:
    id: int
    run_id: str
    kind: str
    batch: int | None
    interrupted: bool | None
    pid: int = 0


def counting_args(
    log: Path,
    total: int,
    size: int,
    pause: float = 0.0,
    fail_at_batch: int | None = None,
    bad_state_at_batch: int | None = None,
) -> str:
    return json.dumps(
        {
            "log": str(log),
            "total": total,
            "size": size,
            "pause": pause,
            "fail_at_batch": fail_at_batch,
            "bad_state_at_batch": bad_state_at_batch,
        }
    )


def _connect(log: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(log, timeout=30)
    connection.execute(_SCHEMA)
    return connection


def executions(log: Path) -> list[Execution]:
    if not log.exists():
        return []
    with _connect(log) as connection:
        rows = connection.execute(
            "SELECT id, run_id, kind, batch, interrupted, pid FROM executions ORDER BY id"
        ).fetchall()
    return [
        Execution(row[0], row[1], row[2], row[3], None if row[4] is None else bool(row[4]), row[5])
        for row in rows
    ]


class CountingJob:
    def __init__(self, args: str) -> None:
        options = json.loads(args)
        self.log = Path(options["log"])
        self.total: int = options["total"]
        self.size: int = options["size"]
        self.pause: float = options["pause"]
        self.fail_at_batch: int | None = options["fail_at_batch"]
        self.bad_state_at_batch: int | None = options["bad_state_at_batch"]

    def _record(
        self, run_id: str, kind: str, batch: int | None = None, interrupted: bool | None = None
    ) -> None:
        with _connect(self.log) as connection:
            connection.execute(
                "INSERT INTO executions (run_id, kind, batch, interrupted, pid) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, kind, batch, interrupted, os.getpid()),
            )

    async def start(self, run_id: str) -> JsonState:
        self._record(run_id, "start")
        return {"next": 1}

    async def run_batch(self, run_id: str, state: JsonState) -> BatchResult:
        first: int = state["next"]
        batch = (first - 1) // self.size + 1
        self._record(run_id, "begin", batch)
        await asyncio.sleep(self.pause)
        if batch == self.fail_at_batch:
            raise RuntimeError(f"number {first} is unlucky")
        last = min(first + self.size - 1, self.total)
        self._record(run_id, "end", batch)
        next_state: JsonState = {"next": last + 1}
        if batch == self.bad_state_at_batch:
            next_state["when"] = object()
        return BatchResult(
            state=next_state, done=last >= self.total, counts={"processed": last - first + 1}
        )

    def interrupt(self) -> None:
        """Its batches only sleep: the engine's stop handles them."""

    def describe_failure(self, error: Exception) -> str:
        return f"{type(error).__name__}: {error}"

    async def finish(self, run_id: str, state: JsonState, failure: str | None) -> None:
        self._record(run_id, "finish", interrupted=failure is not None)
