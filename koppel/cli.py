"""Koppel's command line: one Typer app, one sub-command per job a user or operator does.

The commands live in koppel/commands/ (one module per group); docs/operations.md describes them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from koppel.commands.activity import dead_letters, log, runs
from koppel.commands.common import configure_logging, console, progress_bar
from koppel.commands.demo import demo
from koppel.commands.flows import replay, sync, worker
from koppel.commands.mapping import mapping_app
from koppel.commands.setup import config_app, connection_app
from koppel.commands.users import user_app
from koppel.commands.web import serve

# No local variables in tracebacks: they could hold credentials.
app = typer.Typer(
    no_args_is_help=True,
    help="Koppel: keeps Parts Pim and AccountView in sync.",
    pretty_exceptions_show_locals=False,
)


class SandboxName(StrEnum):
    accountview = "accountview"
    partspim = "partspim"


@app.callback()
def main() -> None:
    """Koppel: keeps Parts Pim and AccountView in sync."""
    configure_logging()


app.command()(sync)
app.command()(worker)
app.command()(replay)
app.command()(runs)
app.command()(log)
app.command("dead-letters")(dead_letters)
app.command()(demo)
app.add_typer(mapping_app, name="mapping")
app.add_typer(config_app, name="config")
app.add_typer(connection_app, name="connection")
app.command()(serve)
app.add_typer(user_app, name="user")


@app.command()
def sandbox(
    name: Annotated[SandboxName, typer.Argument(help="which application to emulate")],
    port: Annotated[int, typer.Option(help="port to listen on")] = 8100,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    db: Annotated[str, typer.Option(help="SQLite file for the state, or :memory:")] = ":memory:",
    fixture: Annotated[Path | None, typer.Option(help="JSON fixture file to load")] = None,
    products: Annotated[int, typer.Option(help="generate this many products (0: none)")] = 200,
    seed: Annotated[int, typer.Option(help="seed for generated data")] = 0,
    latency_ms: Annotated[float, typer.Option(help="latency added to every request")] = 0,
    error_rate: Annotated[float, typer.Option(help="fraction answered 500/502/503")] = 0,
    rate_429: Annotated[float, typer.Option(help="fraction answered 429")] = 0,
    timeout_rate: Annotated[float, typer.Option(help="fraction that hang, then 504")] = 0,
    drop_rate: Annotated[float, typer.Option(help="fraction handled, then dropped")] = 0,
    rate_limit: Annotated[float | None, typer.Option(help="requests per second")] = None,
    credentials_out: Annotated[
        Path | None, typer.Option(help="write how to connect (JSON) to this file")
    ] = None,
) -> None:
    """Run a sandbox of Parts Pim or AccountView: a faithful local emulator of its API."""
    from koppel.sandbox import sandbox_class
    from koppel.sandbox.common import FaultConfig
    from koppel.sandbox.common.server import serve_forever

    faults = FaultConfig(
        latency_ms=latency_ms,
        error_rate=error_rate,
        rate_429=rate_429,
        timeout_rate=timeout_rate,
        drop_rate=drop_rate,
        rate_limit_per_s=rate_limit,
    )
    instance = sandbox_class(name.value)(db_path=db, faults=faults, seed=seed)
    if fixture is not None:
        instance.load_fixture(fixture)
    elif products:
        with progress_bar() as progress:
            task = progress.add_task(f"generating {name.value} data", total=products)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            instance.generate(products, seed=seed, progress=advance)
    base_url = f"http://{host}:{port}"
    console.print(instance.describe(base_url))
    if credentials_out is not None:
        credentials_out.write_text(json.dumps(instance.credentials(base_url), indent=2))
        credentials_out.chmod(0o600)
        console.print(f"connection details written to {credentials_out}")
    serve_forever(instance.asgi_app(), host, port)


if __name__ == "__main__":
    app()
