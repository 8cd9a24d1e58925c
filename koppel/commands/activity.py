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
    console,
    describe_counts,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
    pick_flows,
    pick_integration,
    plain,
    when,
)
from koppel.mapping.preview import flatten
from koppel.store import DeadLetterStatus, Flow, Outcome, OutcomeKind, Run, Store

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="the integration file naming the integration")
]
IntegrationOption = Annotated[
    str | None, typer.Option(help="TENANT/NAME, when the store holds several integrations")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


class OutcomeChoice(StrEnum):
    created = "created"
    updated = "updated"
    skipped = "skipped"
    failed = "failed"


RUN_ID_SHOWN = 13
"""`flow-` and eight characters: enough to tell runs apart; `koppel log` takes an id's start."""


def _flow_names(store: Store) -> dict[int, str]:
    return {flow.id: flow.name for flow in store.flows.list()}


def _selected_flows(
    store: Store, flow: str | None, config: Path | None, integration: str | None
) -> list[Flow] | None:
    """The one named flow, every flow of the chosen integration, or None for all of them."""
    if flow is None and config is None and integration is None:
        return None
    chosen = pick_integration(store, config, integration)
    return pick_flows(store, chosen, [flow]) if flow else store.flows.list(chosen.id)


def _run_json(run: Run, flow_name: str) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "flow": flow_name,
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
    config: ConfigOption = None,
    integration: IntegrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """The recent runs: status, outcome counts, API calls, mapping version, times (UTC)."""
    settings = load_settings()
    with opened_store(settings) as store:
        flows = _selected_flows(store, flow, config, integration)
        names = _flow_names(store)
        if flows is None:
            found = store.runs.list(limit=limit)
        else:
            found = sorted(
                (r for f in flows for r in store.runs.list(flow_id=f.id, limit=limit)),
                key=lambda r: r.started_at,
                reverse=True,
            )[:limit]
    if as_json:
        typer.echo(json.dumps([_run_json(r, names.get(r.flow_id, "?")) for r in found], indent=2))
        return
    if not found:
        console.print("no runs yet; run the flows with: koppel sync --config FILE")
        return
    rows = [
        (
            run.id[:RUN_ID_SHOWN],
            names.get(run.flow_id, "?"),
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
        found = store.runs.find(run_id)
        if not found:
            fail(f"no run {run_id!r}; list the recent runs with: koppel runs")
        if len(found) > 1:
            fail(
                f"{run_id!r} starts {len(found)} run ids ({', '.join(r.id for r in found[:3])}, "
                "...); type more of it"
            )
        run = found[0]
        kind = OutcomeKind(outcome.value) if outcome else None
        outcomes = store.outcomes.list(run.id, outcome=kind, limit=limit)
        flow_name = _flow_names(store).get(run.flow_id, "?")
    if as_json:
        document = {
            "run": _run_json(run, flow_name),
            "outcomes": [_outcome_json(o, payload) for o in outcomes],
        }
        typer.echo(json.dumps(document, indent=2, default=str))
        return
    console.print(
        f"run {run.id} of flow {flow_name}: {run.status.value}; {describe_counts(run.counts)}; "
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
    config: ConfigOption = None,
    integration: IntegrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """The records that failed and wait for a retry (pending dead letters)."""
    settings = load_settings()
    with opened_store(settings) as store:
        flows = _selected_flows(store, flow, config, integration) or store.flows.list()
        letters = [
            (f.name, letter)
            for f in flows
            for letter in store.dead_letters.list(
                f.id, status=DeadLetterStatus.PENDING, limit=limit
            )
        ]
    if as_json:
        document = [
            {
                "flow": name,
                "source_key": letter.source_key,
                "reason": letter.reason,
                "attempts": letter.attempts,
                "next_attempt_at": when(letter.next_attempt_at),
                "since": when(letter.created_at),
            }
            for name, letter in letters
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
    for name, letter in letters:
        table.add_row(
            *plain(
                name,
                letter.source_key,
                letter.reason,
                str(letter.attempts),
                when(letter.next_attempt_at),
            )
        )
    console.print(table)
    console.print("run them again now with: koppel replay [--flow NAME]")


__all__ = ["dead_letters", "log", "runs"]
