"""What every command shares: the consoles, exit codes, expected errors as plain lines, and
finding the integration and flows a command is about.

A failure a user can hit is printed as one or two lines that say what to do, on stderr, with an
exit code from `ExitCode`; never a traceback. Messages come from our own error classes, which
never contain a secret (config values, credentials).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, ParamSpec

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from koppel.config import load_config
from koppel.connectors.registry import ClientConnector, build_connector
from koppel.errors import ErrorCategory, KoppelError
from koppel.settings import Settings, get_settings
from koppel.store import Connection, Flow, Integration, Store, open_store

console = Console()
err_console = Console(stderr=True)

OUTCOMES = ("created", "updated", "skipped", "failed")
P = ParamSpec("P")


class ExitCode(IntEnum):
    """Exit codes of every command (docs/operations.md)."""

    OK = 0
    FAILED = 1
    """Some records failed (they wait in the dead-letter list), a run failed, or a check failed."""
    CONFIG = 2
    """A configuration or usage error: the message says what to change."""
    BUSY = 3
    """Another Koppel process (a worker, a demo) holds the engine."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C or SIGTERM; unfinished runs resume on the next start."""


def fail(message: str, code: ExitCode = ExitCode.CONFIG) -> NoReturn:
    err_console.print(message, markup=False, highlight=False, soft_wrap=True, style="red")
    raise typer.Exit(int(code))


def friendly_errors(command: Callable[P, None]) -> Callable[P, None]:
    """Turn the errors a user can cause into plain lines and exit codes.

    Anything else is a bug and keeps its traceback (without local variables: see `koppel.cli`).
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except KoppelError as error:
            fail(str(error), exit_code_for(error))
        except ValidationError as error:  # e.g. a connection's credentials lack a field
            fail(validation_message(error))
        except KeyboardInterrupt:
            fail("interrupted", ExitCode.INTERRUPTED)

    return wrapper


_EXIT_CODES = {
    ErrorCategory.CONFIGURATION: ExitCode.CONFIG,
    ErrorCategory.NOT_FOUND: ExitCode.CONFIG,
    ErrorCategory.PERMISSION: ExitCode.CONFIG,
    ErrorCategory.INTERNAL: ExitCode.CONFIG,
    ErrorCategory.AUTHORISATION: ExitCode.FAILED,
    ErrorCategory.CONNECTION: ExitCode.FAILED,
    ErrorCategory.RECORD: ExitCode.FAILED,
    ErrorCategory.CONFLICT: ExitCode.BUSY,
}


def exit_code_for(error: KoppelError) -> ExitCode:
    """The one place where an error's category becomes an exit code."""
    return _EXIT_CODES[error.category]


def validation_message(error: ValidationError) -> str:
    """What pydantic found wrong, without the input values (they may be credentials)."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or '(value)'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    ]
    return f"{error.title}: " + "; ".join(problems)


def configure_logging() -> None:
    """Log records from KOPPEL_LOG_LEVEL up (warnings by default), to this invocation's stderr:
    commands print what happened themselves."""
    try:
        level = get_settings().log_level
    except ValidationError:
        level = "WARNING"  # the command's load_settings() says what is wrong with the settings
    logging.basicConfig(
        level=level,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        problems = [
            f"KOPPEL_{'_'.join(str(part) for part in item['loc']).upper()}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        ]
        fail("process settings: " + "; ".join(problems))


@contextmanager
def opened_store(settings: Settings) -> Iterator[Store]:
    """The store the settings name (migrated on open), closed afterwards."""
    try:
        store = open_store(settings)
    except SQLAlchemyError as error:
        url = make_url(settings.store_url).render_as_string(hide_password=True)
        reason = str(getattr(error, "orig", None) or type(error).__name__).splitlines()[0]
        fail(f"cannot open the database {url}: {reason}\ncheck KOPPEL_DATABASE_URL")
    try:
        yield store
    finally:
        store.close()


def progress_bar(*, stderr: bool = False) -> Progress:
    """A bar for work of known size (generating sandbox data)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console if stderr else console,
    )


def integration_label(store: Store, integration: Integration) -> str:
    tenant = store.tenants.get(integration.tenant_id)
    return f"{tenant.name if tenant else integration.tenant_id}/{integration.name}"


def pick_integration(store: Store, config: Path | None, name: str | None) -> Integration:
    """The integration a command is about: the file's, the named one, or the only one there is.

    Reading the file does not apply it: commands that only look never change the store.
    """
    if config is not None:
        loaded = load_config(config)
        tenant = store.tenants.get_by_name(loaded.tenant)
        found = tenant and store.integrations.get_by_name(tenant.id, loaded.integration)
        if not found:
            fail(
                f"integration {loaded.tenant}/{loaded.integration} of {config} is not set up "
                f"yet; apply the file first: koppel config apply {config}"
            )
        return found
    integrations = store.integrations.list()
    labels = {integration_label(store, i): i for i in integrations}
    if name is not None:
        matches = [i for label, i in labels.items() if name in (label, label.split("/", 1)[1])]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted(labels)) or "none"
        what = "several integrations are" if matches else "no integration is"
        fail(f"{what} named {name!r}; integrations: {known}; write TENANT/NAME")
    if len(integrations) == 1:
        return integrations[0]
    if not integrations:
        fail("no integration is set up yet; apply an integration file: koppel config apply FILE")
    fail(
        f"there are several integrations ({', '.join(sorted(labels))}); "
        "name one with --integration TENANT/NAME or --config FILE"
    )


def pick_flows(store: Store, integration: Integration, names: Sequence[str]) -> list[Flow]:
    """The named flows (enabled or not), or every enabled flow when none is named."""
    flows = store.flows.list(integration.id)
    if not names:
        return [flow for flow in flows if flow.enabled]
    by_name = {flow.name: flow for flow in flows}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        fail(
            f"integration {integration_label(store, integration)} has no flow named "
            f"{unknown[0]!r}; its flows: {', '.join(by_name) or 'none'}"
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def stored_connector(store: Store, connection: Connection) -> ClientConnector:
    """A connector for a stored connection; credentials the API rotates are stored again."""
    credentials = store.connections.get_credentials(connection.id)

    async def persist(new_credentials: dict[str, Any]) -> None:
        store.connections.update_credentials(connection.id, new_credentials)

    return build_connector(
        connection.application, connection.base_url, credentials, on_credentials=persist
    )


def when(moment: datetime | None) -> str:
    """A stored moment in UTC, to the second."""
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def describe_counts(counts: Mapping[str, int]) -> str:
    """`created 3, updated 1, skipped 0, failed 0` plus any other count (abandoned)."""
    names = [*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))]
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in names)


def plain(*cells: Any) -> list[Any]:
    """Table cells shown as they are: record text may hold [brackets] that Rich reads as markup."""
    return [Text(cell) if isinstance(cell, str) else cell for cell in cells]


__all__ = [
    "OUTCOMES",
    "ExitCode",
    "configure_logging",
    "console",
    "describe_counts",
    "err_console",
    "exit_code_for",
    "fail",
    "friendly_errors",
    "integration_label",
    "load_settings",
    "opened_store",
    "pick_flows",
    "pick_integration",
    "plain",
    "progress_bar",
    "stored_connector",
    "validation_message",
    "when",
]
