"""`koppel sync`, `koppel worker`, `koppel replay`: moving data now, on schedule, or again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from koppel.commands.collector import collector_paused
from koppel.commands.common import ConfigFile, IntegrationOption, config_option, friendly_errors

FlowsOption = Annotated[
    list[str] | None,
    typer.Option("--flow", "-f", help="a flow's name; repeat for several (default: all enabled)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the summary as JSON")]


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
    with collector_paused():
        from koppel.commands import flow_runs
    flow_runs.sync(config, flow or [], as_json=as_json, dry_run=dry_run)


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
    with collector_paused():
        from koppel.commands import flow_runs
    flow_runs.replay(flow or [], config, integration, as_json=as_json)


@friendly_errors
def worker() -> None:
    """Run every enabled flow on its schedule until stopped (SIGTERM or Ctrl-C).

    A stop lets each batch in flight finish and record its outcomes; unfinished runs resume on
    the next start. Logs and payloads older than KOPPEL_LOG_RETENTION_DAYS are purged hourly.
    """
    with collector_paused():
        from koppel.commands import flow_runs
    flow_runs.worker()


__all__ = ["replay", "sync", "worker"]
