"""What every command shares: the consoles, exit codes, expected errors as plain lines, the
options several commands take, and finding the integration a command is about.

A failure a user can hit is printed as one or two lines that say what to do, on stderr, with an
exit code from `ExitCode`; never a traceback. Messages come from our own error classes, which
never contain a secret (config values, credentials).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from koppel.config import load_config
from koppel.errors import ErrorCategory, KoppelError, validation_message
from koppel.services import setup
from koppel.settings import Settings, get_settings
from koppel.store import Integration, Store, open_store

console = Console()
err_console = Console(stderr=True)

OUTCOMES = ("created", "updated", "skipped", "failed")
P = ParamSpec("P")


def config_option(help: str = "the integration file (YAML, docs/config.md)") -> Any:
    """`--config FILE` / `-c FILE`, as every command that reads an integration file takes it."""
    return typer.Option("--config", "-c", help=help)


ConfigFile = Annotated[Path, config_option()]
NamingConfigFile = Annotated[
    Path | None, config_option("the integration file naming the integration")
]
IntegrationOption = Annotated[
    str | None, typer.Option(help="TENANT/NAME, when the store holds several integrations")
]


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


def problem(message: str) -> None:
    """A line on stderr about something that must be fixed (an error, a check that failed)."""
    err_console.print(message, markup=False, highlight=False, soft_wrap=True, style="red")


def fail(message: str, code: ExitCode = ExitCode.CONFIG) -> NoReturn:
    """End the command with a problem: a usage error of the command line itself, or (from
    `friendly_errors`) an error with its category's exit code."""
    problem(message)
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
        except ValidationError as error:  # a model below found a value wrong (flow settings)
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


def pick_integration(store: Store, config: Path | None, name: str | None) -> Integration:
    """The integration a command is about: the file's (read, not applied), the named one, or the
    only one there is."""
    if config is not None:
        return setup.integration_of_file(store, load_config(config), config)
    return setup.choose_integration(store, name)


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
    "ConfigFile",
    "ExitCode",
    "IntegrationOption",
    "NamingConfigFile",
    "config_option",
    "configure_logging",
    "console",
    "describe_counts",
    "err_console",
    "exit_code_for",
    "fail",
    "friendly_errors",
    "load_settings",
    "opened_store",
    "pick_integration",
    "plain",
    "problem",
    "progress_bar",
    "when",
]
