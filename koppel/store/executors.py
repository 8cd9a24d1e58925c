"""The executors' heartbeats, and the claim that makes one live process the taker of a dead
one's runs.

Every engine process beats every few seconds. A live process that finds another silent for
longer than the threshold (or whose executor lock is free: it died, or stopped) claims it with a
conditional UPDATE: of several processes trying at once, exactly one changes the row, and only
that one recovers the dead executor's runs. The same transaction hands the dead executor's
running runs to the taker, so from its commit on the fence (`Store.fenced`) refuses every write
the old owner still tries (a paused worker that wakes up).
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from koppel.store.context import StoreContext
from koppel.store.records import Executor, RunStatus
from koppel.store.tables import ExecutorRow, RunRow, utc_now

FORGET_AFTER = timedelta(days=7)
"""Executors that stopped or were taken over are listed for this long, then forgotten."""


def _executor(row: ExecutorRow) -> Executor:
    return Executor(
        id=row.id,
        host=row.host,
        pid=row.pid,
        started_at=row.started_at,
        last_beat_at=row.last_beat_at,
        stopped_at=row.stopped_at,
        taken_over_by=row.taken_over_by,
        taken_over_at=row.taken_over_at,
    )


class ExecutorRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def beat(self, executor_id: str, *, host: str, pid: int, started_at: datetime) -> str | None:
        """This process is alive. The first beat of a process (a new `started_at`) registers it
        and forgets long-gone executors. Returns who took over this executor's runs while it was
        silent (a paused process that woke up), else None; either way it counts as live again."""
        now = utc_now()
        with self._context.write() as session:
            row = session.get(ExecutorRow, executor_id, with_for_update=True)
            if row is None or row.started_at != started_at:
                self._forget(session, now)
            if row is None:
                session.add(
                    ExecutorRow(
                        id=executor_id,
                        host=host,
                        pid=pid,
                        started_at=started_at,
                        last_beat_at=now,
                    )
                )
                return None
            taker = row.taken_over_by if row.started_at == started_at else None
            row.host, row.pid, row.started_at, row.last_beat_at = host, pid, started_at, now
            row.stopped_at = row.taken_over_by = row.taken_over_at = None
            return taker

    def stopped(self, executor_id: str) -> None:
        """A graceful stop: a live process takes over what the executor left pending at once."""
        with self._context.write() as session:
            session.execute(
                update(ExecutorRow)
                .where(ExecutorRow.id == executor_id)
                .values(stopped_at=utc_now(), last_beat_at=utc_now())
            )

    def others(self, executor_id: str) -> builtins.list[Executor]:
        """The executors other than this one whose runs nobody has taken over yet."""
        with self._context.read() as session:
            rows = session.scalars(
                select(ExecutorRow)
                .where(ExecutorRow.id != executor_id, ExecutorRow.taken_over_by.is_(None))
                .order_by(ExecutorRow.last_beat_at)
            )
            return [_executor(row) for row in rows]

    def take_over(self, dead: Executor, taker: str) -> builtins.list[str]:
        """Claim `dead` for `taker`, unless another process did or it beat again since it was
        seen as `dead`. Returns the executors whose runs the taker must now recover: `dead`, and
        those `dead` had claimed (it may have died before it recovered them); [] if not claimed.
        Their running runs become the taker's in the same transaction."""
        now = utc_now()
        with self._context.write() as session:
            claimed = session.execute(
                update(ExecutorRow)
                .where(
                    ExecutorRow.id == dead.id,
                    ExecutorRow.taken_over_by.is_(None),
                    ExecutorRow.last_beat_at <= dead.last_beat_at,
                )
                .values(taken_over_by=taker, taken_over_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return []
            chain = [
                str(name)
                for name in session.scalars(
                    select(ExecutorRow.id).where(
                        ExecutorRow.taken_over_by == dead.id, ExecutorRow.id != taker
                    )
                )
            ]
            owners = [dead.id, *chain]
            session.execute(
                update(RunRow)
                .where(RunRow.executor.in_(owners), RunRow.status == RunStatus.RUNNING.value)
                # An owner no execution has: the old ones are fenced off at once; the execution
                # that resumes the run (on any worker) claims it (`runs.claim`).
                .values(executor=taker, owner=f"{taker}/takeover")
            )
            return owners

    def list(self) -> builtins.list[Executor]:
        """Every executor known, the most recently heard first."""
        with self._context.read() as session:
            rows = session.scalars(select(ExecutorRow).order_by(ExecutorRow.last_beat_at.desc()))
            return [_executor(row) for row in rows]

    @staticmethod
    def _forget(session: Session, now: datetime) -> None:
        session.execute(
            delete(ExecutorRow).where(
                ExecutorRow.last_beat_at < now - FORGET_AFTER,
                or_(ExecutorRow.stopped_at.is_not(None), ExecutorRow.taken_over_by.is_not(None)),
            )
        )


__all__ = ["FORGET_AFTER", "ExecutorRepository"]
