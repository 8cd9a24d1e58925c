"""`koppel sync`, `koppel worker`, `koppel replay`: moving data now, on schedule, or again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from koppel.commands.common import (
    ExitCode,
    console,
    fail,
    friendly_errors,
    integration_label,
    load_settings,
    opened_store,
    pick_flows,
    pick_integration,
)
from koppel.commands.running import (
    FlowReport,
    check_flows_can_run,
    exit_code,
    print_reports,
    run_flows,
    serve,
    started_runner,
)
from koppel.config import apply_config, load_config
from koppel.settings import Settings
from koppel.store import DeadLetterStatus, Flow, Store

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the integration file (YAML, docs/config.md)")
]
FlowsOption = Annotated[
    list[str] | None,
    typer.Option("--flow", "-f", help="a flow's name; repeat for several (default: all enabled)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the summary as JSON")]


async def _run(
    store: Store, settings: Settings, flows: list[Flow], *, replay: bool
) -> list[FlowReport]:
    await check_flows_can_run(store, flows)
    async with started_runner(store, settings) as runner:
        return await run_flows(runner, store, flows, replay=replay)


def _finish(reports: list[FlowReport], label: str, title: str, as_json: bool) -> None:
    code = exit_code(reports)
    if as_json:
        document = {
            "integration": label,
            "runs": [report.to_json() for report in reports],
            "exit_code": int(code),
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        print_reports(reports, title)
    raise typer.Exit(int(code))


@friendly_errors
def sync(
    config: ConfigOption,
    flow: FlowsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the integration file, then run its flows once (default: every enabled flow).

    Exit code 0: every record synced; 1: some records failed (see `koppel log RUN`) or a run
    failed; 2: the file, a flow name or a mapping must be fixed; 3: a worker holds the engine.
    """
    settings = load_settings()
    loaded = load_config(config)
    with opened_store(settings) as store:
        integration = apply_config(store, loaded, actor="cli")
        label = integration_label(store, integration)
        flows = pick_flows(store, integration, flow or [])
        if not flows:
            fail(f"{config}: no flow is enabled; add one under flows: or name one with --flow")
        reports = asyncio.run(_run(store, settings, flows, replay=False))
    _finish(reports, label, f"sync of {label}", as_json)


@friendly_errors
def replay(
    flow: FlowsOption = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="apply this integration file first (its mapping and settings)"
        ),
    ] = None,
    integration: Annotated[
        str | None, typer.Option(help="TENANT/NAME, when the store holds several")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the pending dead letters again, through today's mapping and settings.

    Without --flow, every flow of the integration that has pending dead letters.
    """
    settings = load_settings()
    with opened_store(settings) as store:
        if config is not None:
            chosen = apply_config(store, load_config(config), actor="cli")
        else:
            chosen = pick_integration(store, None, integration)
        label = integration_label(store, chosen)
        named = flow or []
        candidates = pick_flows(store, chosen, named) if named else store.flows.list(chosen.id)
        flows = [
            f
            for f in candidates
            if store.dead_letters.list(f.id, status=DeadLetterStatus.PENDING, limit=1)
        ]
        if not flows:
            console.print(f"{label}: no pending dead letters; nothing to replay")
            raise typer.Exit(int(ExitCode.OK))
        reports = asyncio.run(_run(store, settings, flows, replay=True))
    _finish(reports, label, f"replay of {label}", as_json)


async def _work(store: Store, settings: Settings) -> None:
    async with started_runner(store, settings) as runner:
        schedules = await runner.schedules()
        names = {f.id: f.name for f in store.flows.list()}
        if schedules:
            plan = ", ".join(
                f"{names.get(int(s.args), s.args)} every {s.every_seconds:g}s" for s in schedules
            )
            console.print(f"worker {settings.worker_id}: {plan}", markup=False)
        else:
            console.print(
                "worker: no enabled flow has a schedule yet; flows applied later "
                "(koppel config apply FILE) start on the next tick",
                markup=False,
            )
        console.print("stop with Ctrl-C or SIGTERM: the batches in flight finish first")
        await serve(runner, store)


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
