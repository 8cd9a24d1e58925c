"""Errors the engine raises to its callers."""

from __future__ import annotations

from koppel.errors import ErrorCategory, KoppelError

__all__ = ["EngineError", "ExecutorInUse", "RunInterrupted", "UnknownJob"]


class EngineError(KoppelError):
    """The engine was used in a way it cannot honour (not started, started twice, ...)."""

    category = ErrorCategory.INTERNAL


class UnknownJob(EngineError):
    """A run names a job that was not registered."""


class ExecutorInUse(EngineError):
    """Another live process uses this executor id on the same system database."""

    category = ErrorCategory.CONFLICT


class RunInterrupted(EngineError):
    """The engine is stopping: the run stays pending and resumes on the next engine start."""

    category = ErrorCategory.CONFLICT

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was interrupted by a stop; it resumes on the next start")
        self.run_id = run_id
