"""`koppel runs`, `koppel log RUN`, `koppel dead-letters`: what moved, what did not, and why."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from koppel.commands.common import (
    OUTCOMES,
    IntegrationOption,
    NamingConfigFile,
    console,
    describe_counts,
    friendly_errors,
    load_settings,
    opened_store,
    pick_integration,
    plain,
    when,
)
from koppel.mapping.preview import flatten
from koppel.services import activity, setup
from koppel.services import dead_letters as dead_letter_service
from koppel.services.activity import RunView
from koppel.store import Flow, Outcome, OutcomeKind, Store

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


class OutcomeChoice(StrEnum):
    created = "created"
    updated = "updated"
    skipped = "skipped"
    failed = "failed"


RUN_ID_SHOWN = 13
"""`flow-` and eight characters: enough to tell runs apart; `koppel log` takes an id's start."""


def _selected_flows(
    store: Store, flow: str | None, config: Path | None, integration: str | None
) -> list[Flow] | None:
    """The one named flow, every flow of the chosen integration, or None for all of them."""
    if flow is None and config is None and integration is None:
        return None
    chosen = pick_integration(store, config, integration)
    return setup.choose_flows(store, chosen, [flow]) if flow else store.flows.list(chosen.id)


def _run_json(run: RunView) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "flow": run.flow,
        "status": run.status.value,
        **{name: run.counts.get(name, 0) for name in OUTCOMES},
        "api_calls": run.api_calls,
        "mapping_version": run.mapping_version,
        "started_at": when(run.started_at),
        "finished_at": when(run.finished_at) if run.finished_at else None,
        "error": run.error,
    }


@friendly_errors
def runs(
    flow: Annotated[str | None, typer.Option("--flow", "-f", help="only this flow's runs")] = None,
    limit: Annotated[int, typer.Option(min=1, help="how many runs, newest first")] = 20,
    config: NamingConfigFile = None,
    integration: IntegrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """The recent runs: status, outcome counts, API calls, mapping version, times (UTC)."""
    settings = load_settings()
    with opened_store(settings) as store:
        flows = _selected_flows(store, flow, config, integration)
        found = activity.recent_runs(store, flows=flows, limit=limit).runs
    if as_json:
        typer.echo(json.dumps([_run_json(r) for r in found], indent=2))
        return
    if not found:
        console.print("no runs yet; run the flows with: koppel sync --config FILE")
        return
    rows = [
        (
            run.id[:RUN_ID_SHOWN],
            run.flow,
            run.status.value,
            *(str(run.counts.get(name, 0)) for name in OUTCOMES),
            str(run.api_calls),
            f"v{run.mapping_version}",
            run.started_at.strftime("%m-%d %H:%M"),
        )
        for run in found
    ]
    headers = ("run", "flow", "status", "new", "upd", "skip", "fail", "calls", "map", "started")
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    right = {3, 4, 5, 6, 7}
    console.print(
        "runs, newest first; new/upd/skip/fail = records created, updated, skipped, failed; "
        "times UTC",
        markup=False,
    )
    for line in (headers, *rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        console.print("  ".join(cells).rstrip(), markup=False, highlight=False, soft_wrap=True)


def _outcome_json(outcome: Outcome, payload: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source_key": outcome.source_key,
        "outcome": outcome.outcome.value,
        "reason": outcome.reason,
        "target_key": outcome.target_key,
        "warnings": outcome.warnings,
    }
    if payload:
        data["payload"] = outcome.payload_excerpt
    return data


def _payload_text(value: Any) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text("\n".join(f"{path} = {item!r}" for path, item in flatten(value)))


@friendly_errors
def log(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN", help="a run id, or its start (koppel runs)")
    ],
    outcome: Annotated[
        OutcomeChoice | None, typer.Option(help="only outcomes of this kind")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many outcomes")] = 100,
    payload: Annotated[
        bool, typer.Option("--payload", help="also show what came from the source and was sent")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """A run's activity log: one outcome per source record, with the reason and warnings."""
    settings = load_settings()
    with opened_store(settings) as store:
        found = activity.find_run(store, run_id)
        kind = OutcomeKind(outcome.value) if outcome else None
        page = activity.run_log(store, found.id, outcome=kind, limit=limit)
    run, outcomes = page.run, page.outcomes
    if as_json:
        document = {
            "run": _run_json(run),
            "outcomes": [_outcome_json(o, payload) for o in outcomes],
        }
        typer.echo(json.dumps(document, indent=2, default=str))
        return
    console.print(
        f"run {run.id} of flow {run.flow}: {run.status.value}; {describe_counts(run.counts)}; "
        f"{run.api_calls} API calls; mapping v{run.mapping_version}; "
        f"{when(run.started_at)} - {when(run.finished_at)} UTC",
        markup=False,
    )
    if run.error:
        console.print(f"error: {run.error}", markup=False, style="red")
    table = Table(show_lines=payload)
    table.add_column("source key", overflow="fold")
    table.add_column("outcome")
    table.add_column("reason", overflow="fold")
    table.add_column("target key", overflow="fold")
    table.add_column("warnings", overflow="fold")
    if payload:
        table.add_column("from the source", overflow="fold")
        table.add_column("sent to the target", overflow="fold")
    styles = {"created": "green", "updated": "cyan", "skipped": "dim", "failed": "red"}
    for item in outcomes:
        row: list[str | Text] = [
            item.source_key,
            Text(item.outcome.value, style=styles[item.outcome.value]),
            item.reason or "",
            item.target_key or "",
            "\n".join(item.warnings),
        ]
        if payload:
            excerpt = item.payload_excerpt or {}
            if not excerpt:
                row += [Text("not kept (KOPPEL_PAYLOAD_EXCERPTS or retention)", style="dim"), ""]
            else:
                row += [_payload_text(excerpt.get("source")), _payload_text(excerpt.get("sent"))]
        table.add_row(*plain(*row))
    console.print(table)
    if len(outcomes) == limit:
        console.print(f"showing the first {limit}; see more with --limit")


@friendly_errors
def dead_letters(
    flow: Annotated[str | None, typer.Option("--flow", "-f", help="only this flow")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many per flow")] = 100,
    config: NamingConfigFile = None,
    integration: IntegrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """The records that failed and wait for a retry (pending dead letters)."""
    settings = load_settings()
    with opened_store(settings) as store:
        flows = _selected_flows(store, flow, config, integration) or store.flows.list()
        letters = dead_letter_service.pending(store, flows, limit_per_flow=limit)
    if as_json:
        document = [
            {
                "flow": letter.flow,
                "source_key": letter.source_key,
                "reason": letter.reason,
                "attempts": letter.attempts,
                "next_attempt_at": when(letter.next_attempt_at),
                "since": when(letter.since),
            }
            for letter in letters
        ]
        typer.echo(json.dumps(document, indent=2))
        return
    if not letters:
        console.print("no pending dead letters")
        return
    table = Table(title="Pending dead letters (times in UTC)")
    table.add_column("flow", style="bold")
    table.add_column("source key", overflow="fold")
    table.add_column("reason", overflow="fold")
    table.add_column("attempts", justify="right")
    table.add_column("next attempt")
    for letter in letters:
        table.add_row(
            *plain(
                letter.flow,
                letter.source_key,
                letter.reason,
                str(letter.attempts),
                when(letter.next_attempt_at),
            )
        )
    console.print(table)
    console.print("run them again now with: koppel replay [--flow NAME]")


__all__ = ["dead_letters", "log", "runs"]
