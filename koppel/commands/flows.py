"""`koppel sync`, `koppel worker`, `koppel replay`: moving data now, on schedule, or again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from koppel.commands.common import (
    ConfigFile,
    ExitCode,
    IntegrationOption,
    config_option,
    console,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
)
from koppel.commands.running import (
    WorkerLines,
    exit_code,
    print_dry_run,
    print_reports,
    progress_lines,
    report_json,
    stop_acknowledged,
)
from koppel.config import load_config
from koppel.services import dead_letters, runs, setup
from koppel.services import dry_run as dry_runs
from koppel.services import worker as worker_service
from koppel.services.runs import FlowReport
from koppel.settings import Settings
from koppel.store import Flow, Store

FlowsOption = Annotated[
    list[str] | None,
    typer.Option("--flow", "-f", help="a flow's name; repeat for several (default: all enabled)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the summary as JSON")]


async def _run(
    store: Store, settings: Settings, flows: list[Flow], *, replay: bool
) -> list[FlowReport]:
    await runs.check_flows_can_run(store, flows)
    async with runs.started_runner(store, settings) as runner, stop_acknowledged(runner):
        with progress_lines() as progress:
            return await runs.run_flows(runner, store, flows, replay=replay, progress=progress)


def _finish(reports: list[FlowReport], label: str, title: str, as_json: bool) -> None:
    code = exit_code(reports)
    if as_json:
        document = {
            "integration": label,
            "runs": [report_json(report) for report in reports],
            "exit_code": int(code),
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        print_reports(reports, title)
    raise typer.Exit(int(code))


@friendly_errors
def sync(
    config: ConfigFile,
    flow: FlowsOption = None,
    as_json: JsonOption = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="read both systems and show what the sync would do, writing nothing to "
            "either (nor runs, outcomes or cursors to Koppel's store)",
        ),
    ] = False,
) -> None:
    """Apply the integration file, then run its flows once (default: every enabled flow).

    Exit code 0: every record synced; 1: some records failed (see `koppel log RUN`) or a run
    failed; 2: the file, a flow name or a mapping must be fixed; 3: a worker holds the engine.
    With --dry-run: 0 when every record would sync, 1 when some would fail.
    """
    settings = load_settings()
    loaded = load_config(config)
    with opened_store(settings) as store:
        applied = setup.apply_file(store, loaded, config, actor="cli")
        flows = setup.choose_flows(store, applied.integration, flow or [])
        if not flows:
            fail(f"{config}: no flow is enabled; add one under flows: or name one with --flow")
        if dry_run:
            asyncio.run(runs.check_flows_can_run(store, flows))
            forecast = asyncio.run(dry_runs.dry_run_flows(store, flows))
        else:
            reports = asyncio.run(_run(store, settings, flows, replay=False))
    if dry_run:
        print_dry_run(forecast, applied.label, as_json)
    _finish(reports, applied.label, f"sync of {applied.label}", as_json)


@friendly_errors
def replay(
    flow: FlowsOption = None,
    config: Annotated[
        Path | None, config_option("apply this integration file first (its mapping and settings)")
    ] = None,
    integration: IntegrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the pending dead letters again, through today's mapping and settings.

    Without --flow, every flow of the integration that has pending dead letters.
    """
    settings = load_settings()
    with opened_store(settings) as store:
        if config is not None:
            chosen = setup.apply_file(store, load_config(config), config, actor="cli").integration
        else:
            chosen = setup.choose_integration(store, integration)
        label = setup.integration_label(store, chosen)
        named = flow or []
        candidates = (
            setup.choose_flows(store, chosen, named) if named else store.flows.list(chosen.id)
        )
        flows = dead_letters.flows_to_replay(store, candidates)
        if not flows:
            console.print(f"{label}: no pending dead letters; nothing to replay")
            raise typer.Exit(int(ExitCode.OK))
        reports = asyncio.run(_run(store, settings, flows, replay=True))
    _finish(reports, label, f"replay of {label}", as_json)


async def _work(store: Store, settings: Settings) -> None:
    async with runs.started_runner(store, settings) as runner, stop_acknowledged(runner):
        schedules = await runner.schedules()
        names = {f.id: f.name for f in store.flows.list()}
        if schedules:
            plan = ", ".join(
                f"{names.get(int(s.args), s.args)} every {s.every_seconds:g}s" for s in schedules
            )
            console.print(f"worker {runner.executor}: {plan}", markup=False)
        else:
            console.print(
                "worker: no enabled flow has a schedule yet; flows applied later "
                "(koppel config apply FILE) start on the next tick",
                markup=False,
            )
        console.print("stop with Ctrl-C or SIGTERM: the batches in flight finish first")
        await worker_service.serve(runner, store, WorkerLines())


@friendly_errors
def worker() -> None:
    """Run every enabled flow on its schedule until stopped (SIGTERM or Ctrl-C).

    A stop lets each batch in flight finish and record its outcomes; unfinished runs resume on
    the next start. Logs and payloads older than KOPPEL_LOG_RETENTION_DAYS are purged hourly.
    """
    settings = load_settings()
    with opened_store(settings) as store:
        asyncio.run(_work(store, settings))
    console.print(
        "worker stopped: batches in flight were finished and recorded; unfinished runs resume "
        "when a worker or sync starts again"
    )


__all__ = ["replay", "sync", "worker"]
