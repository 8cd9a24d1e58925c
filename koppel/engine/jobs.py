"""The contract between the engine and the flows: batch jobs, their results and progress.

A flow run is a loop of batches. The engine checkpoints after every batch, so a crashed or stopped
run resumes at the first batch whose result was not yet recorded. Record-level state (outcomes,
links, cursors) lives in the flows' own tables; the engine only carries the small JSON state that
one batch hands to the next.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "BatchJob",
    "BatchProgress",
    "BatchResult",
    "FlowSchedule",
    "JobFactory",
    "JsonState",
    "ProgressCallback",
    "RunStatus",
    "RunSummary",
    "RunsAs",
    "ScheduleSource",
    "flow_key",
]

JsonState = dict[str, Any]
"""What a job carries from one batch to the next: must survive ``json.dumps``/``json.loads``."""


@dataclass(frozen=True)
class BatchResult:
    """What one batch reports: the state for the next batch, whether the source is exhausted,
    and how many records ended in each outcome (``{"created": 3, "skipped": 1}``)."""

    state: JsonState
    done: bool
    counts: Mapping[str, int] = field(default_factory=dict)


class BatchJob(Protocol):
    """One flow run, driven batch by batch by the engine.

    Every method runs as a checkpointed step. A step that was running when the process died is
    run again on recovery, with the same arguments: ``run_batch`` must be idempotent for a given
    ``(run_id, state)`` (look up by link before any create, move cursors only past recorded
    outcomes). Steps that completed are never run again; their recorded results are replayed.
    """

    async def start(self, run_id: str) -> JsonState:
        """Prepare the run (e.g. read the flow's cursor) and return the first batch's state."""
        ...

    async def run_batch(self, run_id: str, state: JsonState) -> BatchResult:
        """Process one batch from ``state`` and return the state for the next one."""
        ...

    def interrupt(self) -> None:
        """A stop was asked for: cut waits on the outside world short (a hanging API), so the
        batch in flight ends within seconds; it runs again when the run resumes."""
        ...

    def describe_failure(self, error: Exception) -> str:
        """Why the run fails, for the person who has to act: the cause and the fix, in one or
        two plain lines (no traceback; the engine logs that)."""
        ...

    async def finish(self, run_id: str, state: JsonState, failure: str | None) -> None:
        """Close the run. ``failure`` is None when every batch succeeded; otherwise a batch
        raised, the run ends failed and ``failure`` says why (the error's message, written for
        the person who has to act on it); ``state`` is then the state after the last batch
        that succeeded."""
        ...


JobFactory = Callable[[str], BatchJob]
"""Builds a job from its arguments string (e.g. a flow id). Called again on every resume, so it
must be cheap and free of I/O: do the I/O in ``start``."""

RunsAs = Callable[[str], tuple[str, str]]
"""A job's arguments -> the (job, arguments) of the runs it takes turns with: `Engine.register`'s
``runs_as``, for a targeted run of a flow beside that flow's full runs."""


def flow_key(job: str, args: str) -> str:
    """The identity of a flow for mutual exclusion: one run per (job, arguments) at a time."""
    return f"{job}:{args}"


@dataclass(frozen=True)
class BatchProgress:
    """Reported after each recorded batch, e.g. to drive a progress bar."""

    run_id: str
    batch: int
    counts: Mapping[str, int]
    totals: Mapping[str, int]
    done: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "batch": self.batch,
            "counts": dict(self.counts),
            "totals": dict(self.totals),
            "done": self.done,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchProgress:
        return cls(
            run_id=str(data["run_id"]),
            batch=int(data["batch"]),
            counts=dict(data["counts"]),
            totals=dict(data["totals"]),
            done=bool(data["done"]),
        )


ProgressCallback = Callable[[BatchProgress], None]

RunStatus = Literal["completed", "failed", "cancelled"]


@dataclass(frozen=True)
class RunSummary:
    """How a run ended. ``error`` is set when it did not complete."""

    run_id: str
    job: str
    args: str
    status: RunStatus
    batches: int
    counts: Mapping[str, int]
    error: str | None = None


@dataclass(frozen=True)
class FlowSchedule:
    """An enabled flow and how often it runs; read anew on every scheduler tick."""

    job: str
    args: str
    every_seconds: float

    def __post_init__(self) -> None:
        if self.every_seconds <= 0:
            raise ValueError(
                f"schedule of flow {flow_key(self.job, self.args)!r}: every_seconds must be "
                f"greater than 0, got {self.every_seconds}"
            )


ScheduleSource = Callable[[], Awaitable[Iterable[FlowSchedule]]]
"""Returns the schedules in force now (typically read from the store), so that enabling,
disabling or re-timing a flow takes effect at the next tick without a restart."""


def checked_state(state: object, where: str) -> JsonState:
    """Return ``state`` as it will be after a JSON round trip, or say which step broke the rule.

    The state is checkpointed and replayed on resume; anything that does not survive JSON would
    resume as something else than what the job returned.
    """
    if not isinstance(state, dict):
        raise TypeError(
            f"{where}: the state must be a JSON object (dict), got {type(state).__name__}"
        )
    try:
        restored: JsonState = json.loads(json.dumps(state, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where}: the state must be JSON-serialisable: {error}") from None
    return restored
