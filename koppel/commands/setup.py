"""`koppel config apply FILE` and `koppel connection test NAME`: setting an integration up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from koppel.commands.common import (
    ConfigFile,
    ExitCode,
    console,
    friendly_errors,
    load_settings,
    opened_store,
    problem,
)
from koppel.config import load_config
from koppel.services import connections, setup

config_app = typer.Typer(no_args_is_help=True, help="Apply integration files to the store.")
connection_app = typer.Typer(no_args_is_help=True, help="Check that a connection works.")


@config_app.command()
@friendly_errors
def apply(
    file: Annotated[Path, typer.Argument(help="the integration file (YAML, docs/config.md)")],
) -> None:
    """Make the store match the file: connections, settings, flows (idempotent, audited)."""
    settings = load_settings()
    loaded = load_config(file)
    with opened_store(settings) as store:
        applied = setup.apply_file(store, loaded, actor="cli")
    table = Table(title=f"Integration {applied.label}, applied from {file}")
    table.add_column("flow", style="bold")
    table.add_column("entity")
    table.add_column("from -> to")
    table.add_column("enabled")
    table.add_column("schedule")
    table.add_column("mapping", justify="right")
    for flow in applied.flows:
        table.add_row(
            flow.name,
            flow.entity,
            f"{flow.source} -> {flow.target}",
            "yes" if flow.enabled else "no",
            f"every {flow.schedule_seconds}s" if flow.schedule_seconds else "manual",
            f"v{flow.mapping_version}",
        )
    console.print(table)


@connection_app.command()
@friendly_errors
def test(
    name: Annotated[str, typer.Argument(help="the connection's name in the file")],
    config: ConfigFile,
) -> None:
    """Log in and make one small call, as the setup wizard does.

    The file is applied first, so a refresh token the API rotates on this call is kept.
    """
    settings = load_settings()
    loaded = load_config(config)
    with opened_store(settings) as store:
        check = asyncio.run(
            connections.check_file_connection(store, loaded, config, name, actor="cli")
        )
    if not check.works:
        problem(f"{check.description} does not work: {check.message}")
        raise typer.Exit(int(ExitCode.FAILED))
    console.print(f"{check.description} works: {check.message}", markup=False)


__all__ = ["config_app", "connection_app"]
