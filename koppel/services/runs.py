"""Running flows: checked up front, started on this process's engine, reported per flow.

The CLI (sync, replay, demo) and the web app run flows through here, so a flow looks the same
whichever face started it. Flows run one after another in the order given (products before the
orders that need them); a stop ends the list with an interrupted report, and that run resumes on
the next engine start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import ValidationError

from koppel.connectors.errors import ConnectorError
from koppel.engine import BatchProgress, EngineError, ExecutorInUse, RunInterrupted, RunSummary
from koppel.engine.runner import FlowRunner
from koppel.errors import validation_message
from koppel.flows.mappings import FlowSetupError
from koppel.flows.registry import flow_type
from koppel.flows.runtime import FlowRuntime
from koppel.services.errors import Busy, FlowProblem, FlowsCannotRun
from koppel.settings import Settings
from koppel.store import Flow, OutcomeKind, Run, RunStatus, Store, counted

INTERRUPTED = "interrupted"
"""A report's status when a stop ended the run before it finished (it resumes later)."""


@dataclass(frozen=True)
class FlowReport:
    """How one flow's run went."""

    flow: str
    run_id: str | None
    status: str
    """succeeded, partial (some records failed), failed (the run stopped on an error), or
    interrupted (a stop came first)."""
    counts: Mapping[str, int]
    """Every outcome kind (0 when none), plus `abandoned`: dead letters whose record is gone."""
    api_calls: int
    mapping_version: int | None
    error: str | None
    resumed: bool = False
    """A run a stop had interrupted, resumed and finished here before the flow's own run."""
    waiting: int = 0
    """Records of the flow that wait in the dead-letter list for a retry, after the run."""

    @property
    def interrupted(self) -> bool:
        return self.status == INTERRUPTED

    @property
    def ok(self) -> bool:
        """Every record synced, and none waits for a retry."""
        return (
            self.status == RunStatus.SUCCEEDED.value
            and not counted(self.counts, OutcomeKind.FAILED)
            and not self.waiting
        )


def flow_report(
    flow: Flow,
    run: Run | None,
    summary: RunSummary | None,
    *,
    resumed: bool = False,
    waiting: int = 0,
) -> FlowReport:
    """The report from the run's row (counts from its outcomes, or so far when a stop
    interrupted it; API calls) and what the engine said (None when a stop came first)."""
    counts = {kind.value: 0 for kind in OutcomeKind}
    counts.update(run.counts if run else {})
    error: str | None
    if summary is None:
        status, error = INTERRUPTED, "interrupted by a stop; the run resumes on the next start"
    else:
        if "abandoned" in summary.counts:
            counts["abandoned"] = int(summary.counts["abandoned"])
        completed = run is not None and summary.status == "completed"
        status = run.status.value if run is not None and completed else RunStatus.FAILED.value
        # The run's stored reason (the cause and the fix) before the engine's account of it.
        error = (run.error if run else None) or summary.error
    return FlowReport(
        flow=flow.name,
        run_id=run.id if run else summary.run_id if summary else None,
        status=status,
        counts=counts,
        api_calls=run.api_calls if run else 0,
        mapping_version=run.mapping_version if run else None,
        error=error,
        resumed=resumed,
        waiting=waiting,
    )


class RunProgress(Protocol):
    """What a face shows while flows run (a progress bar, a page that refreshes)."""

    def started(self, flow: Flow) -> None: ...

    def advanced(self, flow: Flow, totals: Mapping[str, int]) -> None:
        """Records done so far in the flow's run, by outcome."""

    def finished(self, flow: Flow, report: FlowReport) -> None: ...


class _Unseen:
    def started(self, flow: Flow) -> None:
        pass

    def advanced(self, flow: Flow, totals: Mapping[str, int]) -> None:
        pass

    def finished(self, flow: Flow, report: FlowReport) -> None:
        pass


async def check_flows_can_run(store: Store, flows: Sequence[Flow]) -> None:
    """Open every flow as a run would (connectors, mappings, flow type; no API call).

    A flow that cannot run must be fixed in its configuration: said up front for every flow at
    once, rather than as a failed run after the others.
    """
    problems: list[FlowProblem] = []
    for flow in flows:
        try:
            runtime = FlowRuntime.open(store, flow.id)
        except ValidationError as error:
            problems.append(FlowProblem(flow.name, validation_message(error)))
            continue
        except (FlowSetupError, ConnectorError, LookupError) as error:
            hint = None
            if isinstance(error, FlowSetupError) and "mapping" in str(error):
                hint = f"check it with: koppel mapping validate --config FILE --flow {flow.name}"
            problems.append(FlowProblem(flow.name, str(error), hint))
            continue
        try:
            flow_type(runtime.source_connection.application, flow.entity)
        except LookupError as error:
            problems.append(FlowProblem(flow.name, str(error)))
        finally:
            await runtime.aclose()
    if problems:
        raise FlowsCannotRun(problems)


@asynccontextmanager
async def started_runner(
    store: Store,
    settings: Settings,
    *,
    handle_signals: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[FlowRunner]:
    """The engine for this process. With `handle_signals`, SIGTERM and Ctrl-C stop it
    gracefully; a web app's server keeps them and passes False."""
    runner = FlowRunner(store, settings, handle_signals=handle_signals, transport=transport)
    try:
        await runner.__aenter__()
    except ExecutorInUse as error:
        raise Busy(
            "Koppel's engine is in use by another process (a koppel worker, demo or sync): "
            f"{error}.\nLet that process run the flows, or stop it and try again."
        ) from None
    try:
        yield runner
    finally:
        await runner.__aexit__(None, None, None)


async def run_flows(
    runner: FlowRunner,
    store: Store,
    flows: Sequence[Flow],
    *,
    replay: bool = False,
    progress: RunProgress | None = None,
) -> list[FlowReport]:
    """Run the flows one after another, or (`replay`) their pending dead letters, through the
    current mapping and settings. A run of one of them that a stop interrupted in this process
    (same worker id) resumes as the engine starts: it is waited for and reported first."""
    shown = progress or _Unseen()
    reports: list[FlowReport] = []
    start: Callable[..., Awaitable[RunSummary]] = runner.replay if replay else runner.run
    for flow in flows:

        def on_progress(update: BatchProgress, flow: Flow = flow) -> None:
            shown.advanced(flow, update.totals)

        waits: list[tuple[str | None, bool]] = [
            (run.id, True)
            for run in reversed(store.runs.list(flow_id=flow.id, status=RunStatus.RUNNING))
            if run.executor == runner.executor
        ]
        waits.append((None, False))
        for run_id, resumed in waits:
            shown.started(flow)
            try:
                if run_id is None:
                    summary = await start(flow.id, on_progress)
                else:
                    summary = await runner.follow(run_id, on_progress)
            except RunInterrupted as stop:
                report = flow_report(flow, store.runs.get(stop.run_id), None, resumed=resumed)
                shown.finished(flow, report)
                reports.append(report)
                return reports
            except EngineError:
                continue  # its engine state is gone (a new engine database): nothing resumes it
            waiting = 0 if resumed else store.dead_letters.count_pending(flow.id)
            report = flow_report(
                flow, store.runs.get(summary.run_id), summary, resumed=resumed, waiting=waiting
            )
            shown.advanced(flow, report.counts)  # the outcomes' count, as the summary shows
            shown.finished(flow, report)
            reports.append(report)
    return reports


__all__ = [
    "INTERRUPTED",
    "FlowReport",
    "RunProgress",
    "check_flows_can_run",
    "flow_report",
    "run_flows",
    "started_runner",
]
