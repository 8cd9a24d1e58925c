"""Koppel's command line: one Typer app, one sub-command per job a user or operator does.

The commands live in koppel/commands/ (one module per group); docs/operations.md describes them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from koppel.commands.activity import dead_letters, log, purge, runs, workers
from koppel.commands.common import (
    DEBUG_LOG_ONLY,
    ExitCode,
    configure_logging,
    console,
    debug_log_hint,
    fail,
    problem,
    progress_bar,
)
from koppel.commands.demo import demo
from koppel.commands.flows import replay, sync, worker
from koppel.commands.mapping import mapping_app
from koppel.commands.reconcile import reconcile
from koppel.commands.setup import config_app, connection_app
from koppel.commands.users import user_app
from koppel.commands.web import serve

_logger = logging.getLogger("koppel.cli")


def _usage_line(error: UsageError) -> str:
    command = error.ctx.command_path if error.ctx else "koppel"
    message = "; ".join(line.strip() for line in error.format_message().splitlines() if line)
    return f"{command}: {message} (see: {command} --help)"


class _PlainErrors(TyperGroup):
    """Every way a command can end, as one or two plain lines and an exit code: usage errors
    (exit 2), Ctrl-C (130), and a bug, whose traceback goes to the debug log (exit 1)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except NoArgsIsHelpError as error:
            typer.echo(error.format_message())
            code = ExitCode.CONFIG
        except UsageError as error:  # Typer 0.29 carries its own Click: its exceptions are there
            problem(_usage_line(error))
            code = ExitCode.CONFIG
        except ClickException as error:
            problem(error.format_message())
            code = error.exit_code
        except (typer.Abort, KeyboardInterrupt):
            problem("interrupted")
            code = ExitCode.INTERRUPTED
        except Exception as error:  # a bug: one line here, the traceback in the debug log
            _logger.error("unexpected error", exc_info=True, extra=DEBUG_LOG_ONLY)
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            problem(
                f"koppel failed on an unexpected error ({type(error).__name__}"
                f"{': ' + first if first else ''}); {debug_log_hint()}"
            )
            code = ExitCode.FAILED
        code = int(code) if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_PlainErrors,
    no_args_is_help=True,
    help="Koppel: keeps Parts Pim and AccountView in sync.",
    pretty_exceptions_enable=False,
)


class SandboxName(StrEnum):
    accountview = "accountview"
    partspim = "partspim"


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="show every log line, tracebacks included")
    ] = False,
) -> None:
    """Koppel: keeps Parts Pim and AccountView in sync."""
    configure_logging(debug=debug)


app.command()(sync)
app.command()(worker)
app.command()(replay)
app.command()(reconcile)
app.command()(runs)
app.command()(log)
app.command("dead-letters")(dead_letters)
app.command()(purge)
app.command()(workers)
app.command()(demo)
app.add_typer(mapping_app, name="mapping")
app.add_typer(config_app, name="config")
app.add_typer(connection_app, name="connection")
app.command()(serve)
app.add_typer(user_app, name="user")


SANDBOX_PORTS = {SandboxName.partspim: 8101, SandboxName.accountview: 8102}
"""Each sandbox's own default port, so both run side by side as they are."""


@app.command()
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


if __name__ == "__main__":
    app()
