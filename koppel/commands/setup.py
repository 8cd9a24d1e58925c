"""`koppel config apply FILE`, `koppel connection test NAME` and `koppel connection authorize
NAME`: setting an integration up."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import typer
from rich.table import Table

from koppel.commands.common import (
    ConfigFile,
    ExitCode,
    IntegrationOption,
    console,
    fail,
    friendly_errors,
    load_settings,
    opened_store,
    pick_integration,
    problem,
    when,
)
from koppel.config import load_config
from koppel.services import authorization, config_export, connections, setup

config_app = typer.Typer(
    no_args_is_help=True, help="Apply integration files to the store; export one from it."
)
connection_app = typer.Typer(
    no_args_is_help=True, help="Check that a connection works; authorise it (AccountView)."
)
CALLBACK_PATH = "/callback"


@config_app.command()
@friendly_errors
def apply(
    file: Annotated[Path, typer.Argument(help="the integration file (YAML, docs/config.md)")],
) -> None:
    """Make the store match the file: connections, settings, flows (idempotent, audited)."""
    settings = load_settings()
    loaded = load_config(file)
    with opened_store(settings) as store:
        applied = setup.apply_file(store, loaded, file, actor="cli")
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


@config_app.command()
@friendly_errors
def export(
    integration: IntegrationOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the file here (default: stdout)")
    ] = None,
) -> None:
    """Write an integration as its YAML file; credentials as ${VARIABLE} references."""
    settings = load_settings()
    with opened_store(settings) as store:
        exported = config_export.export_integration(
            store, pick_integration(store, None, integration)
        )
    if output is None:
        typer.echo(exported.text, nl=False)
        return
    output.write_text(exported.text, encoding="utf-8")
    console.print(
        f"wrote {output}; its credentials are read from {', '.join(exported.variables) or 'no'} "
        "environment variables when it is applied",
        markup=False,
    )


@connection_app.command()
@friendly_errors
def test(
    name: Annotated[str, typer.Argument(help="the connection's name in the file")],
    config: ConfigFile,
) -> None:
    """Log in and make one small call; when it fails, say why and what to check.

    The file is applied first, so a refresh token the API rotates on this call is kept.
    """
    settings = load_settings()
    loaded = load_config(config)
    with opened_store(settings) as store:
        check = asyncio.run(
            connections.check_file_connection(store, loaded, config, name, actor="cli")
        )
    if not check.works:
        fix = f"\n{check.fix}" if check.fix else ""
        problem(f"{check.description} does not work: {check.message}{fix}")
        raise typer.Exit(int(ExitCode.FAILED))
    console.print(f"{check.description} works: {check.message}", markup=False)


class _Answer(BaseHTTPRequestHandler):
    """The one request the login page's redirect makes: its query goes to `answers`."""

    answers: queue.Queue[dict[str, str]]

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != CALLBACK_PATH:
            self.send_error(404)
            return
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.answers.put(query)
        body = (
            b"<!doctype html><title>Koppel</title><p>Koppel has the answer; the command line "
            b"shows how it went. You can close this page.</p>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the query holds the code."""


@contextmanager
def _callback_server(port: int) -> Iterator[tuple[str, queue.Queue[dict[str, str]]]]:
    """A server on 127.0.0.1 for the login page's redirect: its URL, and the answers it got."""
    answers: queue.Queue[dict[str, str]] = queue.Queue()
    handler = type("Answer", (_Answer,), {"answers": answers})
    try:
        server = HTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        fail(f"cannot listen on 127.0.0.1:{port} for the answer ({error.strerror}); use --port")
    thread = threading.Thread(target=server.serve_forever, name="authorize-callback", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{CALLBACK_PATH}", answers
    finally:
        server.shutdown()
        server.server_close()


def _wait_for_answer(
    answers: queue.Queue[dict[str, str]], started: authorization.AuthorizationStart, again: str
) -> dict[str, str]:
    """The answer that carries the state of this authorisation; others are ignored."""
    while True:
        remaining = (started.expires_at - datetime.now(UTC)).total_seconds()
        try:
            answer = answers.get(timeout=max(0.1, remaining))
        except queue.Empty:
            fail(
                f"no answer from the login page in time; run the command again: "
                f"koppel connection authorize {again}",
                ExitCode.FAILED,
            )
        if answer.get("state") == started.state:
            return answer
        problem("an answer with another state arrived and was ignored")


@connection_app.command()
@friendly_errors
def authorize(
    name: Annotated[str, typer.Argument(help="the connection's name in the file")],
    config: ConfigFile,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="local port for the answer (0: any free one)")
    ] = 0,
) -> None:
    """Authorise an AccountView connection again (a new grant): prints the login URL, receives
    the answer on 127.0.0.1, stores the new tokens encrypted.

    The file is applied first, so the connection has its client id and secret.
    """
    settings = load_settings()
    loaded = load_config(config)
    with opened_store(settings) as store:
        applied = setup.apply_file(store, loaded, config, actor="cli")
        connection = connections.connection_named(store, applied.integration.tenant_id, name)
        with _callback_server(port) as (redirect_uri, answers):
            started = authorization.start(store, connection, redirect_uri)
            console.print(
                f"Open this address in a browser and log in to allow Koppel:\n  {started.url}\n"
                f"Waiting for the answer on {redirect_uri} until {when(started.expires_at)} "
                "UTC (Ctrl-C stops)",
                markup=False,
                soft_wrap=True,
            )
            answer = _wait_for_answer(answers, started, f"{name} --config {config}")
        result = asyncio.run(
            authorization.complete(
                store, state=started.state, code=answer.get("code"), error=answer.get("error")
            )
        )
    console.print(
        f"connection {result.connection} is authorised; its new tokens are stored encrypted",
        markup=False,
    )
    for company in result.companies:
        chosen = " (company_id of this connection)" if company.id == result.company_id else ""
        console.print(
            f"  {company.id}  {company.code}  {company.description}{chosen}", markup=False
        )
    if not result.company_found:
        problem(
            f"company_id {result.company_id!r} is not one of these companies; put one of the "
            f"ids above in {config} and apply it"
        )
        raise typer.Exit(int(ExitCode.FAILED))


__all__ = ["config_app", "connection_app"]
