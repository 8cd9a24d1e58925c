"""`koppel sandbox`: a faithful local emulator of Parts Pim's or AccountView's API."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from koppel.commands.common import ExitCode, console, fail, progress_bar


class SandboxName(StrEnum):
    accountview = "accountview"
    partspim = "partspim"


SANDBOX_PORTS = {SandboxName.partspim: 8101, SandboxName.accountview: 8102}
"""Each sandbox's own default port, so both run side by side as they are."""


def sandbox(
    name: Annotated[SandboxName, typer.Argument(help="which application to emulate")],
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="port to listen on [default: partspim 8101, accountview 8102]"
        ),
    ] = None,
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
    from koppel.sandbox.common.server import bind, serve_forever

    port = port or SANDBOX_PORTS[name]
    try:
        listener = bind(host, port)
    except OSError as error:
        fail(
            f"cannot listen on {host}:{port}: {error.strerror or error} (is another sandbox "
            "or program using it?); choose another with --port",
            ExitCode.PORT_IN_USE,
        )

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
    serve_forever(instance.asgi_app(), listener)
