"""The engine processes (`koppel worker`, `serve`, `sync`) as their heartbeats show them: which
are live, which went silent or stopped, and who took over their runs. `koppel workers` and the
web app's `/workers` page show the same list."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from koppel.settings import Settings
from koppel.store import ExecutorState, RunStatus, Store
from koppel.store.tables import utc_now


@dataclass(frozen=True)
class WorkerView:
    id: str
    host: str
    pid: int
    state: ExecutorState
    started_at: datetime
    last_beat_at: datetime
    silent_seconds: float
    """Since the last heartbeat."""
    running: int
    """Runs in progress that it owns."""
    taken_over_by: str | None


def workers(store: Store, settings: Settings, now: datetime | None = None) -> list[WorkerView]:
    """Every executor the store knows (forgotten a week after it stopped or was taken over),
    the most recently heard first."""
    moment = now or utc_now()
    silent_after = timedelta(seconds=settings.takeover_after_seconds)
    owners = Counter(run.executor for run in store.runs.list(status=RunStatus.RUNNING, limit=1000))
    return [
        WorkerView(
            id=executor.id,
            host=executor.host,
            pid=executor.pid,
            state=executor.state(moment, silent_after),
            started_at=executor.started_at,
            last_beat_at=executor.last_beat_at,
            silent_seconds=max(0.0, (moment - executor.last_beat_at).total_seconds()),
            running=owners.get(executor.id, 0),
            taken_over_by=executor.taken_over_by,
        )
        for executor in store.executors.list()
    ]


def live(views: list[WorkerView]) -> int:
    """How many are heartbeating: the connections page and the dashboard link the list by it."""
    return sum(view.state is ExecutorState.LIVE for view in views)


__all__ = ["WorkerView", "live", "workers"]
