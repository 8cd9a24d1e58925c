"""`koppel reconcile`: compare both systems of the flows and list the drift, or sync it."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from koppel.commands.common import (
    ConfigFile,
    ExitCode,
    console,
    describe_counts,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
)
from koppel.commands.flows import FlowsOption, JsonOption
from koppel.commands.running import stop_acknowledged
from koppel.config import load_config
from koppel.engine.jobs import RunSummary
from koppel.services import reconcile as reconciliation
from koppel.services import runs, setup
from koppel.services.reconcile import Difference, FlowDrift, ReconcileReport
from koppel.settings import Settings
from koppel.store import Store

SHOWN = 50
"""Differences printed per flow (all of them with --json, up to DIFFERENCES_KEPT)."""


async def _sync(store: Store, settings: Settings, report: ReconcileReport) -> dict[str, RunSummary]:
    stored = [store.reconciliations.get(f.id) for f in report.flows if f.id is not None]
    records = [r for r in stored if r is not None]
    async with runs.started_runner(store, settings) as runner, stop_acknowledged(runner):
        done = await reconciliation.sync_drift(store, runner, records)
    return {flow.name: summary for flow, summary in done}


def _flow_json(found: FlowDrift) -> dict[str, Any]:
    return {
        "flow": found.flow,
        "entity": found.entity,
        "compared": found.compared,
        "not_compared": found.not_compared,
        "drift": found.drift,
        "api_calls": found.api_calls,
        "error": found.error,
        "differences": [d.to_json() for d in found.differences],
    }


def _what(difference: Difference) -> str:
    if difference.kind is reconciliation.DriftKind.MISSING:
        return "not in AccountView"
    if difference.kind is reconciliation.DriftKind.NO_SOURCE:
        return "its Parts Pim record is gone"
    return f"{difference.field}: AccountView has {difference.target_value!r}, the flow sends " + (
        f"{difference.source_value!r}"
    )


def _print(report: ReconcileReport, label: str) -> None:
    table = Table(title=f"reconciliation of {label}")
    for column in ("flow", "compared", "drift", "API calls", "note"):
        table.add_column(column, justify="right" if column in ("compared", "drift") else "left")
    for found in report.flows:
        notes = []
        if found.not_compared:
            notes.append(f"{found.not_compared} not sent by the flow (see its activity log)")
        if found.error:
            notes.append(found.error)
        table.add_row(
            found.flow,
            str(found.compared),
            str(found.drift),
            str(found.api_calls),
            "; ".join(notes),
        )
    console.print(table)
    for found in report.flows:
        for difference in found.differences[:SHOWN]:
            console.print(f"{found.flow}: {difference.record}: {_what(difference)}", markup=False)
        if found.drift > SHOWN:
            console.print(f"{found.flow}: … and {found.drift - SHOWN} more (see --json)")


@friendly_errors
def reconcile(
    config: ConfigFile,
    flow: FlowsOption = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="orders: compare those changed since this day (default: the last 30 days)",
        ),
    ] = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--sync",
            help="sync the drifted records again (written even when unchanged in the source) "
            "and wait for those runs",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare Parts Pim and AccountView record by record and list every difference.

    Default: every enabled products, stock and orders flow. Exit code 0: no drift; 1: drift
    found (or a flow could not be compared); 2: the file or a flow name must be fixed.
    """
    settings = load_settings()
    loaded = load_config(config)
    with opened_store(settings) as store:
        applied = setup.apply_file(store, loaded, config, actor="cli")
        chosen = setup.choose_flows(store, applied.integration, flow or [])
        flows = chosen if flow else reconciliation.reconcilable(store, chosen)
        if not flows:
            fail(f"{config}: no enabled products, stock or orders flow to reconcile")
        day: date | None = since.date() if since else None
        report = asyncio.run(reconciliation.reconcile_flows(store, flows, since=day))
        synced = asyncio.run(_sync(store, settings, report)) if fix and report.drift else {}
    if as_json:
        document = {
            "integration": applied.label,
            "flows": [_flow_json(f) for f in report.flows],
            "synced": {
                name: {"run": s.run_id, "status": s.status, "counts": s.counts}
                for name, s in synced.items()
            },
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        _print(report, applied.label)
        for name, summary in synced.items():
            console.print(
                f"{name}: synced again in run {summary.run_id}: {summary.status}, "
                f"{describe_counts(summary.counts)}",
                markup=False,
            )
    clean = report.ok and (not report.drift or (synced and all_completed(synced)))
    raise typer.Exit(int(ExitCode.OK if clean else ExitCode.FAILED))


def all_completed(synced: dict[str, RunSummary]) -> bool:
    return all(s.status == "completed" for s in synced.values())


__all__ = ["reconcile"]
