"""Flows running, as the command line shows them: a progress line per flow, a summary per flow,
the exit code the reports make, and the worker's log of what moved.

sync, replay, worker and demo all render through here, so a flow looks the same whichever
started it; the running itself is `koppel.services.runs` and `koppel.services.worker`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from koppel.commands.common import (
    OUTCOMES,
    ExitCode,
    console,
    describe_counts,
    err_console,
)
from koppel.engine.runner import FlowRunner
from koppel.services.activity import RunView
from koppel.services.dry_run import DryRunReport
from koppel.services.runs import FlowReport
from koppel.store import Flow, OutcomeKind, PurgeResult, RunStatus, counted, entity_counts


class _ProgressLines:
    """A Rich progress line per flow, on stderr (so --json stays clean)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[int, TaskID] = {}
        self._done: dict[int, int] = {}

    def started(self, flow: Flow) -> None:
        self._tasks[flow.id] = self._progress.add_task(flow.name, total=None, counts="waiting")
        self._done[flow.id] = 0

    def advanced(self, flow: Flow, totals: Mapping[str, int]) -> None:
        self._done[flow.id] = sum(totals.values())
        self._progress.update(
            self._tasks[flow.id], completed=self._done[flow.id], counts=describe_counts(totals)
        )

    def finished(self, flow: Flow, report: FlowReport) -> None:
        task = self._tasks[flow.id]
        if report.interrupted:
            self._progress.update(task, counts="interrupted")
        else:
            self._progress.update(task, total=self._done[flow.id])


@contextmanager
def progress_lines() -> Iterator[_ProgressLines]:
    """What `koppel.services.runs.run_flows` reports to while the flows run."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} records"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        yield _ProgressLines(progress)


def exit_code(reports: Sequence[FlowReport]) -> ExitCode:
    if any(report.interrupted for report in reports):
        return ExitCode.INTERRUPTED
    return ExitCode.OK if all(report.ok for report in reports) else ExitCode.FAILED


def report_json(report: FlowReport) -> dict[str, Any]:
    return {
        "flow": report.flow,
        "run_id": report.run_id,
        "status": report.status,
        "resumed": report.resumed,
        **{key: number for key, number in report.counts.items() if "." not in key},
        "entities": entity_counts(report.counts),
        "api_calls": report.api_calls,
        "mapping_version": report.mapping_version,
        "error": report.error,
        "waiting": report.waiting,
    }


def _label(report: FlowReport) -> str:
    return f"{report.flow} (resumed)" if report.resumed else report.flow


def summary_table(reports: Sequence[FlowReport], title: str) -> Table:
    table = Table(title=title)
    table.add_column("flow", style="bold", no_wrap=True, overflow="ellipsis")
    table.add_column("status")
    for name in OUTCOMES:
        table.add_column(name, justify="right")
    table.add_column("API calls", justify="right")
    for report in reports:
        counts = report.counts
        style = "green" if report.ok else "yellow" if report.status != "failed" else "red"
        table.add_row(
            Text(_label(report)),
            Text(report.status, style=style),
            *(str(counts[name]) for name in OUTCOMES),
            str(report.api_calls),
        )
        for entity, numbers in sorted(entity_counts(counts).items()):
            table.add_row(
                Text(f"  {entity}", style="dim"),
                "",
                *(str(numbers[name]) for name in OUTCOMES),
                "",
            )
    return table


def print_reports(reports: Sequence[FlowReport], title: str) -> None:
    """The summary table, then a line for every run that needs attention."""
    console.print(summary_table(reports, title))
    console.print("runs (their activity log: koppel log RUN):")
    for report in reports:
        console.print(f"  {_label(report)}: {report.run_id or '-'}", markup=False)
    for report in reports:
        counts = report.counts
        label = _label(report)
        if report.interrupted:
            console.print(
                f"{label}: stopped after {sum(counts.values())} records "
                f"({describe_counts(counts)}; {report.api_calls} API calls); run "
                f"{report.run_id} resumes on the next start (koppel sync or koppel worker)",
                markup=False,
            )
        elif report.status == RunStatus.FAILED.value:
            console.print(f"{label}: the run failed: {report.error}", markup=False)
        elif report.status == RunStatus.WAITING.value:
            console.print(f"{label}: did not run: {report.error}", markup=False)
        if failed := counted(counts, OutcomeKind.FAILED):
            console.print(
                f"{label}: {failed} records failed; see why: koppel log "
                f"{report.run_id} --outcome failed",
                markup=False,
            )
        if report.waiting:
            waits = "record waits" if report.waiting == 1 else "records wait"
            console.print(
                f"{label}: {report.waiting} {waits} in the dead-letter list for a retry "
                f"(see them: koppel dead-letters --flow {report.flow}; after a fix, now: "
                f"koppel replay --flow {report.flow})",
                markup=False,
            )
        if counts.get("abandoned"):
            console.print(
                f"{report.flow}: {counts['abandoned']} dead letters were abandoned: "
                "their records are gone from the source",
                markup=False,
            )


def dry_run_json(report: DryRunReport) -> dict[str, Any]:
    return {
        "flows": [
            {
                "flow": flow.flow,
                "error": flow.error,
                "entities": {
                    entity.entity: {
                        **flow.counts()[entity.entity],
                        "skip_reasons": entity.skip_reasons,
                        "failures": [
                            {"record": record, "reason": reason}
                            for record, reason in entity.failures
                        ],
                    }
                    for entity in flow.entities
                },
            }
            for flow in report.flows
        ],
        "would_send": [
            {
                "application": application,
                "entity": entity,
                "records": report.writes.get((application, entity), 0),
                "examples": [
                    {"key": e.key, "created": e.created, "record": e.record} for e in examples
                ],
            }
            for (application, entity), examples in report.examples.items()
        ],
    }


def print_dry_run(report: DryRunReport, label: str, as_json: bool) -> NoReturn:
    """The forecast as a table (or JSON), the reasons, a few records that would be sent;
    exits 0 when every record would sync, else 1."""
    code = ExitCode.OK if report.ok else ExitCode.FAILED
    if as_json:
        typer.echo(json.dumps({"integration": label, "dry_run": dry_run_json(report)}, indent=2))
        raise typer.Exit(int(code))
    columns = ("created", "updated", "unchanged", "skipped", "failed")
    table = Table(title=f"dry run of {label}: nothing was written")
    table.add_column("flow", style="bold", no_wrap=True)
    table.add_column("entity")
    for name in columns:
        table.add_column(name, justify="right")
    for flow in report.flows:
        for entity_name, numbers in flow.counts().items():
            table.add_row(flow.flow, entity_name, *(str(numbers[name]) for name in columns))
        if flow.error is not None:
            table.add_row(flow.flow, Text("cannot run", style="red"), *("-" for _ in columns))
    console.print(table)
    for flow in report.flows:
        if flow.error is not None:
            console.print(f"{flow.flow}: {flow.error}", markup=False)
        for entity in flow.entities:
            for reason, number in entity.skip_reasons.items():
                console.print(
                    f"{flow.flow}: {number} {entity.entity} would be skipped: {reason}",
                    markup=False,
                )
            for record, reason in entity.failures:
                console.print(
                    f"{flow.flow}: {entity.entity} {record} would fail: {reason}", markup=False
                )
    for (application, sent), examples in report.examples.items():
        total = report.writes.get((application, sent), 0)
        console.print(f"would send {total} {sent} records to {application}, e.g.:", markup=False)
        for example in examples:
            verb = "create" if example.created else "update"
            record = json.dumps(example.record, ensure_ascii=False)
            console.print(f"  {verb} {example.key}: {record}", markup=False)
    raise typer.Exit(int(code))


@asynccontextmanager
async def stop_acknowledged(runner: FlowRunner) -> AsyncIterator[None]:
    """Say at once when Ctrl-C or SIGTERM is heard: the batches in flight may take a while."""

    async def acknowledge() -> None:
        await runner.engine.wait_stopping()
        err_console.print(
            "stopping: the batches in flight finish and are recorded first "
            "(Ctrl-C again cuts them; they run again on resume)",
            markup=False,
        )

    acknowledgement = asyncio.create_task(acknowledge())
    try:
        yield
    finally:
        # Cancelled before the runner shuts down: a normal end is not a stop someone asked for.
        acknowledgement.cancel()


def purge_line(result: PurgeResult) -> str:
    """What a retention purge did, in one line (the worker's log, `koppel purge`)."""
    return (
        f"retention: deleted {result.outcomes_deleted} log entries and "
        f"{result.dead_letters_deleted} closed dead letters, cleared "
        f"{result.dead_letter_payloads_cleared} dead-letter payloads, removed e-mail addresses "
        f"from {result.dead_letter_reasons_redacted} dead-letter reasons"
    )


class WorkerLines:
    """The worker's log on the console: a line per finished run, per purge that deleted."""

    def run_finished(self, run: RunView) -> None:
        error = f"; {run.error}" if run.error else ""
        console.print(
            f"{run.flow}: {run.status.value}: {describe_counts(run.counts)}; "
            f"{run.api_calls} API calls; run {run.id}{error}",
            markup=False,
        )

    def purged(self, result: PurgeResult) -> None:
        console.print(purge_line(result), markup=False)

    def purge_failed(self, error: Exception) -> None:
        err_console.print(f"retention purge failed: {error}", markup=False)


__all__ = [
    "WorkerLines",
    "exit_code",
    "print_reports",
    "progress_lines",
    "purge_line",
    "report_json",
    "stop_acknowledged",
    "summary_table",
]
