"""What `koppel sync`, `koppel replay` and `koppel worker` do, once their options are read.

The commands themselves (their options and help) are in `koppel.commands.flows`, which imports
this module only when one of them runs: it brings the store, the engine and the flows, which
a command's `--help` does not need.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from koppel.commands.common import ExitCode, console, fail, load_settings, opened_store
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


def sync(config: Path, named: list[str], *, as_json: bool, dry_run: bool) -> None:
    settings = load_settings()
    loaded = load_config(config)
    with opened_store(settings) as store:
        applied = setup.apply_file(store, loaded, config, actor="cli")
        flows = setup.choose_flows(store, applied.integration, named)
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


def replay(
    named: list[str], config: Path | None, integration: str | None, *, as_json: bool
) -> None:
    settings = load_settings()
    with opened_store(settings) as store:
        if config is not None:
            chosen = setup.apply_file(store, load_config(config), config, actor="cli").integration
        else:
            chosen = setup.choose_integration(store, integration)
        label = setup.integration_label(store, chosen)
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


def worker() -> None:
    settings = load_settings()
    with opened_store(settings) as store:
        asyncio.run(_work(store, settings))
    console.print(
        "worker stopped: batches in flight were finished and recorded; unfinished runs resume "
        "when a worker or sync starts again"
    )


__all__ = ["replay", "sync", "worker"]
