"""`koppel config apply FILE` and `koppel connection test NAME`: setting an integration up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from koppel.commands.common import (
    ExitCode,
    console,
    fail,
    friendly_errors,
    integration_label,
    load_settings,
    opened_store,
    stored_connector,
)
from koppel.config import apply_config, load_config
from koppel.connectors.errors import ConnectorError
from koppel.store import Connection, Store

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
        integration = apply_config(store, loaded, actor="cli")
        label = integration_label(store, integration)
        flows = store.flows.list(integration.id)
        connections = {c.id: c.name for c in store.connections.list(integration.tenant_id)}
    table = Table(title=f"Integration {label}, applied from {file}")
    table.add_column("flow", style="bold")
    table.add_column("entity")
    table.add_column("from -> to")
    table.add_column("enabled")
    table.add_column("schedule")
    table.add_column("mapping", justify="right")
    for flow in flows:
        table.add_row(
            flow.name,
            flow.entity,
            f"{connections[flow.source_connection_id]} -> {connections[flow.target_connection_id]}",
            "yes" if flow.enabled else "no",
            f"every {flow.schedule_seconds}s" if flow.schedule_seconds else "manual",
            f"v{flow.mapping_version}",
        )
    console.print(table)


async def _check(store: Store, connection: Connection) -> str:
    connector = stored_connector(store, connection)
    try:
        return await connector.check()
    finally:
        await connector.aclose()


@connection_app.command()
@friendly_errors
def test(
    name: Annotated[str, typer.Argument(help="the connection's name in the file")],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="the integration file (YAML, docs/config.md)")
    ],
) -> None:
    """Log in and make one small call, as the setup wizard does.

    The file is applied first, so a refresh token the API rotates on this call is kept.
    """
    settings = load_settings()
    loaded = load_config(config)
    if name not in loaded.connections:
        fail(
            f"{config}: no connection named {name!r}; its connections: "
            f"{', '.join(loaded.connections)}"
        )
    with opened_store(settings) as store:
        integration = apply_config(store, loaded, actor="cli")
        connection = store.connections.get_by_name(integration.tenant_id, name)
        assert connection is not None  # just applied
        what = f"connection {name} ({connection.application.value}, {connection.base_url})"
        try:
            message = asyncio.run(_check(store, connection))
        except ConnectorError as error:
            fail(f"{what} does not work: {error}", ExitCode.FAILED)
    console.print(f"{what} works: {message}", markup=False)


__all__ = ["config_app", "connection_app"]
