"""Running flows from the command line: the engine started for this process, a progress line per
flow, a summary per flow, and the worker's loop (schedules, retention, a line per finished run).

sync, replay, worker and demo all go through here, so a flow looks the same whichever started it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from koppel.commands.common import (
    OUTCOMES,
    ExitCode,
    console,
    describe_counts,
    err_console,
    fail,
    validation_message,
)
from koppel.connectors.errors import ConnectorError
from koppel.engine import BatchProgress, ExecutorInUse, RunInterrupted, RunSummary
from koppel.engine.runner import FlowRunner
from koppel.flows.mappings import FlowSetupError
from koppel.flows.registry import flow_type
from koppel.flows.runtime import FlowRuntime
from koppel.settings import Settings
from koppel.store import Flow, Run, RunStatus, Store

PURGE_EVERY_S = 3600.0
"""How often the worker deletes what the retention window no longer allows (and once at start)."""
REPORT_EVERY_S = 2.0
"""How often the worker looks for finished runs to print."""


@dataclass(frozen=True)
class FlowReport:
    """How one flow's run went, as the summary shows it."""

    flow: Flow
    run: Run | None
    """The run's row: counts from its outcomes, API calls; None if it never started."""
    summary: RunSummary | None
    """What the engine said; None when the run was interrupted by a stop."""

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run else self.summary.run_id if self.summary else None

    @property
    def status(self) -> str:
        if self.summary is None:
            return "interrupted"
        if self.run is None or self.summary.status != "completed":
            return RunStatus.FAILED.value
        return self.run.status.value

    @property
    def counts(self) -> dict[str, int]:
        counts = {name: 0 for name in OUTCOMES}
        counts.update(self.run.counts if self.run else {})
        if self.summary and "abandoned" in self.summary.counts:
            counts["abandoned"] = int(self.summary.counts["abandoned"])
        return counts

    @property
    def error(self) -> str | None:
        if self.summary is None:
            return "interrupted by a stop; the run resumes on the next start"
        return self.summary.error or (self.run.error if self.run else None)

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED.value and not self.counts["failed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "flow": self.flow.name,
            "run_id": self.run_id,
            "status": self.status,
            **self.counts,
            "api_calls": self.run.api_calls if self.run else 0,
            "mapping_version": self.run.mapping_version if self.run else None,
            "error": self.error,
        }


def exit_code(reports: Sequence[FlowReport]) -> ExitCode:
    if any(report.summary is None for report in reports):
        return ExitCode.INTERRUPTED
    return ExitCode.OK if all(report.ok for report in reports) else ExitCode.FAILED


async def check_flows_can_run(store: Store, flows: Sequence[Flow]) -> None:
    """Open every flow as a run would (connectors, mappings; no API call), before any runs.

    A flow that cannot run is a configuration error the user fixes in the file, said up front
    rather than as a failed run after the others.
    """
    problems: list[str] = []
    for flow in flows:
        try:
            runtime = FlowRuntime.open(store, flow.id)
        except ValidationError as error:
            problems.append(f"flow {flow.name}: {validation_message(error)}")
            continue
        except (FlowSetupError, ConnectorError, LookupError) as error:
            hint = ""
            if isinstance(error, FlowSetupError) and "mapping" in str(error):
                hint = (
                    f"\n  check it with: koppel mapping validate --config FILE --flow {flow.name}"
                )
            problems.append(f"flow {flow.name}: {error}{hint}")
            continue
        try:
            flow_type(runtime.source_connection.application, flow.entity)
        except LookupError as error:
            problems.append(f"flow {flow.name}: {error}")
        finally:
            await runtime.aclose()
    if problems:
        fail("\n".join(problems))


@asynccontextmanager
async def started_runner(store: Store, settings: Settings) -> AsyncIterator[FlowRunner]:
    """The engine for this process; SIGTERM and Ctrl-C stop it gracefully."""
    runner = FlowRunner(store, settings)
    try:
        await runner.__aenter__()
    except ExecutorInUse as error:
        fail(
            "Koppel's engine is in use by another process (a koppel worker, demo or sync): "
            f"{error}.\nLet that process run the flows, or stop it and try again.",
            ExitCode.BUSY,
        )
    acknowledgement = asyncio.create_task(_acknowledge_a_stop(runner))
    try:
        yield runner
    finally:
        # Cancelled first: the shutdown of a normal end is not a stop someone asked for.
        acknowledgement.cancel()
        await runner.__aexit__(None, None, None)


async def _acknowledge_a_stop(runner: FlowRunner) -> None:
    """Say at once that Ctrl-C or SIGTERM was heard: the batches in flight may take a while."""
    await runner.engine.wait_stopping()
    err_console.print(
        "stopping: the batches in flight finish and are recorded first "
        "(Ctrl-C again cuts them; they run again on resume)",
        markup=False,
    )


def _flow_progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} records"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=err_console,
    )


async def run_flows(
    runner: FlowRunner, store: Store, flows: Sequence[Flow], *, replay: bool = False
) -> list[FlowReport]:
    """Run the flows one after another (in the file's order: products before orders).

    A stop (Ctrl-C, SIGTERM) ends the list with an interrupted report: that run resumes later.
    """
    reports: list[FlowReport] = []
    start: Callable[..., Awaitable[RunSummary]] = runner.replay if replay else runner.run
    with _flow_progress() as progress:
        for flow in flows:
            task = progress.add_task(flow.name, total=None, counts="waiting")

            def on_progress(update: BatchProgress, task: Any = task) -> None:
                progress.update(
                    task,
                    completed=sum(update.totals.values()),
                    counts=describe_counts(update.totals),
                )

            try:
                summary = await start(flow.id, on_progress)
            except RunInterrupted as stop:
                progress.update(task, counts="interrupted")
                reports.append(FlowReport(flow, store.runs.get(stop.run_id), None))
                break
            done = sum(summary.counts.values())
            progress.update(
                task, total=done, completed=done, counts=describe_counts(summary.counts)
            )
            reports.append(FlowReport(flow, store.runs.get(summary.run_id), summary))
    return reports


def summary_table(reports: Sequence[FlowReport], title: str) -> Table:
    table = Table(title=title)
    table.add_column("flow", style="bold")
    table.add_column("status")
    for name in OUTCOMES:
        table.add_column(name, justify="right")
    table.add_column("API calls", justify="right")
    for report in reports:
        counts = report.counts
        style = "green" if report.ok else "yellow" if report.status != "failed" else "red"
        table.add_row(
            Text(report.flow.name),
            Text(report.status, style=style),
            *(str(counts[name]) for name in OUTCOMES),
            str(report.run.api_calls if report.run else 0),
        )
    return table


def print_reports(reports: Sequence[FlowReport], title: str) -> None:
    """The summary table, then a line for every run that needs attention."""
    console.print(summary_table(reports, title))
    console.print("runs (their activity log: koppel log RUN):")
    for report in reports:
        console.print(f"  {report.flow.name}: {report.run_id or '-'}", markup=False)
    for report in reports:
        counts = report.counts
        if report.summary is None:
            console.print(
                f"{report.flow.name}: stopped; run {report.run_id} resumes on the next start "
                "(koppel sync or koppel worker)",
                markup=False,
            )
        elif report.status == RunStatus.FAILED.value:
            console.print(f"{report.flow.name}: the run failed: {report.error}", markup=False)
        if counts["failed"]:
            console.print(
                f"{report.flow.name}: {counts['failed']} records failed and wait in the "
                f"dead-letter list; see why: koppel log {report.run_id} --outcome failed; "
                f"after a fix: koppel replay --flow {report.flow.name}",
                markup=False,
            )
        if counts.get("abandoned"):
            console.print(
                f"{report.flow.name}: {counts['abandoned']} dead letters were abandoned: "
                "their records are gone from the source",
                markup=False,
            )


async def serve(runner: FlowRunner, store: Store, *, purge_every_s: float = PURGE_EVERY_S) -> None:
    """Run every enabled flow on its schedule until a stop; purge (at start, then every
    `purge_every_s`) and report on the side."""
    started = datetime.now(UTC)
    helpers = [
        asyncio.create_task(_purge_regularly(store, purge_every_s)),
        asyncio.create_task(_report_finished_runs(store, started)),
    ]
    try:
        await runner.work()
    finally:
        for helper in helpers:
            helper.cancel()
        for helper in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await helper


async def _purge_regularly(store: Store, every_s: float) -> None:
    while True:
        try:
            result = await asyncio.to_thread(store.retention.purge)
        except Exception as error:  # a failed purge must not stop the worker; it runs again
            err_console.print(f"retention purge failed: {error}", markup=False)
        else:
            if result.outcomes_deleted or result.dead_letters_deleted:
                console.print(
                    f"retention: deleted {result.outcomes_deleted} log entries and "
                    f"{result.dead_letters_deleted} closed dead letters, cleared "
                    f"{result.dead_letter_payloads_cleared} dead-letter payloads",
                    markup=False,
                )
        await asyncio.sleep(every_s)


async def _report_finished_runs(store: Store, started: datetime) -> None:
    """A line per run that ends while the worker runs: an operator's log of what moved."""
    seen: set[str] = set()
    names: dict[int, str] = {}
    while True:
        runs = await asyncio.to_thread(store.runs.list, limit=50)
        for run in reversed(runs):
            finished = run.finished_at
            if finished is None or run.id in seen:
                continue
            if (finished if finished.tzinfo else finished.replace(tzinfo=UTC)) < started:
                continue
            seen.add(run.id)
            if run.flow_id not in names:
                flow = store.flows.get(run.flow_id)
                names[run.flow_id] = flow.name if flow else str(run.flow_id)
            error = f"; {run.error}" if run.error else ""
            console.print(
                f"{names[run.flow_id]}: {run.status.value}: {describe_counts(run.counts)}; "
                f"{run.api_calls} API calls; run {run.id}{error}",
                markup=False,
            )
        await asyncio.sleep(REPORT_EVERY_S)


__all__ = [
    "FlowReport",
    "check_flows_can_run",
    "exit_code",
    "print_reports",
    "run_flows",
    "serve",
    "started_runner",
    "summary_table",
]
