"""`koppel runs`, `koppel log RUN`, `koppel dead-letters`: what moved, what did not, and why;
`koppel purge`: forget what the retention no longer allows; `koppel workers`: who runs them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
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
from koppel.commands.running import purge_line
from koppel.mapping.preview import flatten
from koppel.services import activity, setup
from koppel.services import dead_letters as dead_letter_service
from koppel.services import workers as worker_service
from koppel.services.activity import RunView
from koppel.store import Flow, Outcome, OutcomeKind, Store, entity_counts

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


class OutcomeChoice(StrEnum):
    created = "created"
    updated = "updated"
    skipped = "skipped"
    failed = "failed"


WIDTH = 80
"""What the tables fit when the terminal is not wider (or not a terminal)."""


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
        "number": run.number,
        "flow": run.flow,
        "status": run.status.value,
        **{name: run.counts.get(name, 0) for name in OUTCOMES},
        "entities": entity_counts(run.counts),
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
    width = max(WIDTH, console.width)
    console.print(
        "runs, newest first (koppel log NUMBER); new/upd/skip/fail = records created, "
        "updated, skipped, failed; times UTC",
        markup=False,
        width=width,
    )
    for line in _run_lines(found, width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _run_lines(found: Sequence[RunView], width: int) -> list[str]:
    """One aligned line per run that fits `width` (long flow names are shortened), and under a
    failed run its reason, cut to the width."""
    headers = ("run", "flow", "status", "new", "upd", "skip", "fail", "calls", "started")
    rows = [
        (
            f"#{run.number}" if run.number is not None else run.id[:12],
            run.flow,
            run.status.value,
            *(str(run.counts.get(name, 0)) for name in OUTCOMES),
            str(run.api_calls),
            run.started_at.strftime("%m-%d %H:%M"),
        )
        for run in found
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    spare = width - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:
        widths[1] = max(len(headers[1]), widths[1] + spare)
    right = {3, 4, 5, 6, 7}
    lines: list[str] = []
    for line, run in [(headers, None), *zip(rows, found, strict=True)]:
        cells = [
            _fit(c, w).rjust(w) if i in right else _fit(c, w).ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if run is not None and run.error:
            lines.append(_fit("    " + " / ".join(run.error.splitlines()), width))
    return lines


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


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
        f"run #{run.number} ({run.id}) of flow {run.flow}: {run.status.value}; "
        f"{describe_counts(run.counts)}; "
        f"{run.api_calls} API calls; mapping v{run.mapping_version}; "
        f"{when(run.started_at)} - {when(run.finished_at)} UTC",
        markup=False,
    )
    if run.error:
        console.print(f"error: {run.error}", markup=False, style="red")
    if payload:
        for item in outcomes:
            _print_record(item)
    else:
        table = Table()
        table.add_column("source key", overflow="fold")
        table.add_column("outcome")
        table.add_column("reason", overflow="fold")
        table.add_column("target key", overflow="fold")
        table.add_column("warnings", overflow="fold")
        for item in outcomes:
            table.add_row(
                *plain(
                    item.source_key,
                    Text(item.outcome.value, style=_STYLES[item.outcome.value]),
                    item.reason or "",
                    item.target_key or "",
                    "\n".join(item.warnings),
                )
            )
        console.print(table)
    if len(outcomes) == limit:
        console.print(f"showing the first {limit}; see more with --limit")


_STYLES = {"created": "green", "updated": "cyan", "skipped": "dim", "failed": "red"}


def _print_record(item: Outcome) -> None:
    """One outcome with its payload as a block that reads at any width: a heading line, then
    the reason, warnings and each payload field on lines of their own."""
    target = f" -> {item.target_key}" if item.target_key else ""
    heading = Text(f"{item.source_key}: ")
    heading.append(item.outcome.value, style=_STYLES[item.outcome.value])
    heading.append(target)
    console.print(heading)
    lines = [f"reason: {item.reason}"] if item.reason else []
    lines += [f"warning: {warning}" for warning in item.warnings]
    excerpt = item.payload_excerpt or {}
    if not excerpt:
        lines.append("payload not kept (KOPPEL_PAYLOAD_EXCERPTS or retention)")
    for title, key in (("from the source", "source"), ("sent to the target", "sent")):
        if excerpt:
            lines.append(f"{title}:")
            value = excerpt.get(key)
            lines += (
                [f"  {path} = {field!r}" for path, field in flatten(value)]
                if value is not None
                else ["  -"]
            )
    for line in lines:
        console.print(Text("  " + line), soft_wrap=False, overflow="fold")


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
    console.print("pending dead letters (times in UTC):", markup=False)
    for letter in letters:
        console.print(
            Text(
                f"{letter.flow}  {letter.source_key}  attempt {letter.attempts}, next "
                f"{when(letter.next_attempt_at)}"
            ),
            style="bold",
            soft_wrap=True,
        )
        console.print(Text("  " + letter.reason), overflow="fold")
    console.print("run them again now with: koppel replay [--flow NAME]")


__all__ = ["dead_letters", "log", "runs"]


@friendly_errors
def purge(as_json: JsonOption = False) -> None:
    """Run the retention purge once: delete log entries older than the retention
    (KOPPEL_LOG_RETENTION_DAYS), closed dead letters and the payloads of old ones, and remove
    e-mail addresses from old dead letters' reasons. The worker does this every hour; run it
    from cron beside `koppel sync`."""
    settings = load_settings()
    with opened_store(settings) as store:
        result = store.retention.purge()
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    console.print(purge_line(result), markup=False)


@friendly_errors
def workers(as_json: JsonOption = False) -> None:
    """The engine processes (worker, serve, sync) and their heartbeats: live, silent (taken
    for dead after KOPPEL_TAKEOVER_AFTER_SECONDS), stopped, or taken over, and by whom."""
    settings = load_settings()
    with opened_store(settings) as store:
        found = worker_service.workers(store, settings)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        **dataclasses.asdict(view),
                        "state": view.state.value,
                        "started_at": view.started_at.isoformat(),
                        "last_beat_at": view.last_beat_at.isoformat(),
                    }
                    for view in found
                ],
                indent=2,
            )
        )
        return
    if not found:
        console.print("no worker has run yet; start one with: koppel worker")
        return
    table = Table(title="workers, most recently heard first (times UTC)")
    for column in ("worker", "host", "pid", "state", "last beat", "runs", "taken over by"):
        table.add_column(column, justify="right" if column in ("pid", "runs") else "left")
    for view in found:
        table.add_row(
            *plain(
                view.id,
                view.host,
                str(view.pid),
                view.state.value,
                f"{when(view.last_beat_at)} ({view.silent_seconds:.0f}s ago)",
                str(view.running),
                view.taken_over_by or "-",
            )
        )
    console.print(table)
