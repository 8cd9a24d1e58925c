"""Durable flow runs on DBOS: batch jobs, one checkpoint per batch, schedules, graceful stop.

See docs/engine.md for the guarantees and how flows must behave to keep them.
"""

from __future__ import annotations

from koppel.engine.engine import Engine, default_executor_id
from koppel.engine.errors import EngineError, ExecutorInUse, RunInterrupted, UnknownJob
from koppel.engine.jobs import (
    BatchJob,
    BatchProgress,
    BatchResult,
    FlowSchedule,
    JobFactory,
    JsonState,
    ProgressCallback,
    RunsAs,
    RunStatus,
    RunSummary,
    ScheduleSource,
    flow_key,
)

__all__ = [
    "BatchJob",
    "BatchProgress",
    "BatchResult",
    "Engine",
    "EngineError",
    "ExecutorInUse",
    "FlowSchedule",
    "JobFactory",
    "JsonState",
    "ProgressCallback",
    "RunInterrupted",
    "RunStatus",
    "RunSummary",
    "RunsAs",
    "ScheduleSource",
    "UnknownJob",
    "default_executor_id",
    "flow_key",
]
