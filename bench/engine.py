"""The engine's own fixed cost: a job that does nothing, run three times through `Engine`.

Per run: the pick-up (submit to the job's `start`), the batches, and the end (the job's
`finish` to `run_now` returning); then the shutdown, and the engine's CPU while idle. No
connector, no store: what is left is DBOS (queue, checkpoints, progress stream) and the
engine around it.
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from koppel.engine import BatchResult, Engine, JsonState

__all__ = ["EngineFigures", "format_engine", "run_engine"]

_BATCHES = 3


@dataclass
class EngineFigures:
    start_ms: float = 0.0
    pickup_ms: list[float] = field(default_factory=list)
    batches_ms: list[float] = field(default_factory=list)
    end_ms: list[float] = field(default_factory=list)
    idle_cpu_s: float = 0.0
    idle_s: float = 0.0
    shutdown_ms: float = 0.0


class _NoOpJob:
    """Three batches that return at once; it notes when the engine calls it."""

    marks: ClassVar[dict[str, float]] = {}
    """When the engine called it; one job at a time, read by `run_engine`."""

    def __init__(self, _args: str) -> None:
        pass

    async def start(self, run_id: str) -> JsonState:
        self.marks["start"] = time.perf_counter()
        return {"batch": 0}

    async def run_batch(self, run_id: str, state: JsonState) -> BatchResult:
        batch = int(state["batch"]) + 1
        self.marks.setdefault("first", time.perf_counter())
        self.marks["last"] = time.perf_counter()
        return BatchResult({"batch": batch}, batch >= _BATCHES, {"done": 1})

    def interrupt(self) -> None:
        pass

    def describe_failure(self, error: Exception) -> str:
        return str(error)

    async def finish(self, run_id: str, state: JsonState, failure: str | None) -> None:
        self.marks["finish"] = time.perf_counter()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(runs: int, idle_s: float) -> EngineFigures:
    figures = EngineFigures(idle_s=idle_s)
    with tempfile.TemporaryDirectory(prefix="koppel-bench-engine-") as home:
        engine = Engine(home=Path(home), handle_signals=False)
        engine.register("noop", _NoOpJob)
        started = time.perf_counter()
        await engine.start()
        figures.start_ms = 1000 * (time.perf_counter() - started)
        try:
            for _ in range(runs):
                _NoOpJob.marks.clear()
                submitted = time.perf_counter()
                summary = await engine.run_now("noop")
                ended = time.perf_counter()
                if summary.status != "completed":
                    raise RuntimeError(f"the no-op run ended {summary.status}: {summary.error}")
                marks = _NoOpJob.marks
                figures.pickup_ms.append(1000 * (marks["start"] - submitted))
                figures.batches_ms.append(1000 * (marks["last"] - marks["first"]))
                figures.end_ms.append(1000 * (ended - marks["finish"]))
            cpu = _cpu_seconds()
            await asyncio.sleep(idle_s)
            figures.idle_cpu_s = _cpu_seconds() - cpu
        finally:
            stopping = time.perf_counter()
            await engine.shutdown()
            figures.shutdown_ms = 1000 * (time.perf_counter() - stopping)
    return figures


def run_engine(*, runs: int = 3, idle_s: float = 5.0) -> EngineFigures:
    return asyncio.run(_measure(runs, idle_s))


def format_engine(figures: EngineFigures) -> str:
    def ms(values: list[float]) -> str:
        return " / ".join(f"{v:.0f}" for v in values) + " ms"

    lines = [
        f"== engine: a no-op job of {_BATCHES} batches, run {len(figures.pickup_ms)} times",
        f"  start        {figures.start_ms:.0f} ms",
        f"  pick-up      {ms(figures.pickup_ms)} (submit to the job's start)",
        f"  batches      {ms(figures.batches_ms)} (first batch to last)",
        f"  end          {ms(figures.end_ms)} (the job's finish to run_now returning)",
        f"  idle         {figures.idle_cpu_s:.3f} s CPU in {figures.idle_s:g} s",
        f"  shutdown     {figures.shutdown_ms:.0f} ms",
    ]
    return "\n".join(lines)
