"""`koppel serve`: the web app, and by default the flows' schedules in the same process."""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from koppel.commands.common import (
    ExitCode,
    console,
    exit_code_for,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
)
from koppel.engine.runner import FlowRunner
from koppel.services import webhooks
from koppel.settings import Settings
from koppel.store import Store


class _Stopped(Exception):
    """SIGTERM, after uvicorn has shut the app down."""


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


class _MaskHookTokens(logging.Filter):
    """Access log lines without the token of a webhook delivery address."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                webhooks.masked(a) if isinstance(a, str) else a for a in record.args
            )
        return True


def run_server(
    settings: Settings,
    store: Store,
    *,
    host: str,
    port: int,
    worker: bool,
    notes: Sequence[str] = (),
    access_log: bool = True,
) -> None:
    """Serve the web app over `store` until Ctrl-C or SIGTERM; with `worker`, this process also
    runs every enabled flow on its schedule. `notes` are printed below the address (the demo's
    login); without `access_log` requests are not logged (the demo's sandboxes would fill the
    console every minute)."""
    # Imported here: the web app (FastAPI, its routes and templates) is a second of imports
    # that every other command, `koppel sync` first, would otherwise pay for nothing.
    from koppel.web import create_app

    runner = FlowRunner(store, settings, handle_signals=False) if worker else None
    app = create_app(settings, store=store, runner=runner)
    state = app.state.koppel
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    allowed = settings.allowed_hosts
    console.print(f"Koppel's web app: {url}", markup=False)
    console.print(
        "flows: run here on their schedules" if runner else "flows: left to koppel worker",
        markup=False,
    )
    for note in notes:
        console.print(note, markup=False, soft_wrap=True)
    if "*" not in allowed and host not in allowed and f"[{host}]" not in allowed:
        console.print(
            f"requests must name one of the hosts {', '.join(allowed)}; "
            "set KOPPEL_WEB_ALLOWED_HOSTS to the names people use",
            markup=False,
        )
    if state.first_run.token is not None:
        console.print(
            "no account exists yet: make the first admin (this link works once): "
            f"{url}/first-run?token={state.first_run.token}",
            markup=False,
            soft_wrap=True,
        )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            server_header=False,
            log_level="info",
            access_log=access_log,
        )
    )
    logging.getLogger("uvicorn.access").addFilter(_MaskHookTokens())
    # A startup error of ours is said once, below, without uvicorn's traceback of it.
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: state.startup_error is None or "Traceback" not in record.getMessage()
    )
    # uvicorn stops gracefully on SIGTERM and Ctrl-C, then raises the signal again: it ends here.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run()
    except (_Stopped, KeyboardInterrupt):  # after uvicorn's graceful shutdown
        pass
    except SystemExit:  # uvicorn's way to say the startup failed
        if state.startup_error is None:
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if state.startup_error is not None:
        error = state.startup_error
        fail(
            f"{error}\nlet that process run the flows and start this one with --no-worker, "
            "or stop it first",
            exit_code_for(error),
        )
    if not server.started:
        fail("the web app did not start; the lines above say why", ExitCode.FAILED)


@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="serve only; `koppel worker` processes run the flows"),
    ] = False,
) -> None:
    """Serve the web app (docs/web.md) until Ctrl-C or SIGTERM.

    By default this process also runs every enabled flow on its schedule, as `koppel worker`
    does; a stop lets the batches in flight finish first. While no account exists, a one-time
    link to the first-run page is printed here.
    """
    settings = load_settings()
    with opened_store(settings) as store:
        run_server(settings, store, host=host, port=port, worker=not no_worker)
    console.print(
        "koppel serve stopped"
        + (
            ": batches in flight were finished; unfinished runs resume at the next start"
            if not no_worker
            else ""
        ),
        markup=False,
    )


__all__ = ["run_server", "serve"]
