"""What every command shares: the consoles, exit codes, expected errors as plain lines, the
options several commands take, and finding the integration a command is about.

A failure a user can hit is printed as one or two lines that say what to do, on stderr, with an
exit code from `ExitCode`; never a traceback. Messages come from our own error classes, which
never contain a secret (config values, credentials).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from koppel.errors import ErrorCategory, KoppelError, validation_message
from koppel.files import private_directory
from koppel.settings import Settings, get_settings

if TYPE_CHECKING:
    from koppel.store import Integration, Store

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
    PORT_IN_USE = 4
    """A port Koppel should listen on (a sandbox's) is taken by another process."""
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


DEBUG_LOG = "debug.log"
"""The file under KOPPEL_HOME that keeps what the terminal leaves out: tracebacks, retries."""
_DEBUG_LOG_BYTES = 5_000_000
_debug_log: _PrivateLogFile | None = None
_debugging = False


class _OneLine(logging.Formatter):
    """A record as one line: the terminal gets the message, the debug log the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record).splitlines()[0]
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class _Terminal(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes: a test harness swaps it per
    command, and a handler bound to a closed stream would fail on every later record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _PrivateLogFile(RotatingFileHandler):
    """The debug log, created readable by its owner only, and only when something is logged.

    When it cannot be written (KOPPEL_HOME is not a directory) it falls silent: the terminal
    never shows logging's own traceback about it."""

    broken = False

    def handleError(self, record: logging.LogRecord) -> None:
        self.broken = True
        logging.getLogger().removeHandler(self)

    def _open(self) -> Any:
        path = Path(self.baseFilename)
        private_directory(path.parent)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(descriptor, "a", encoding=self.encoding or "utf-8")


DEBUG_LOG_ONLY = {"debug_log_only": True}
"""`extra=` of a record that the terminal shows otherwise (as a plain line of its own)."""


def _for_the_terminal(record: logging.LogRecord) -> bool:
    """Not records marked DEBUG_LOG_ONLY, nor DBOS's for every failed workflow (with its
    traceback): the run's reason is shown instead."""
    if getattr(record, "debug_log_only", False):
        return False
    return not (record.name.startswith("dbos") and record.getMessage().startswith("Exception"))


def configure_logging(*, debug: bool = False) -> None:
    """Records from KOPPEL_LOG_LEVEL up (warnings by default) as one line each on this
    invocation's stderr (commands print what happened); tracebacks and the connectors' retries
    in KOPPEL_HOME/debug.log. With `debug` (or KOPPEL_LOG_LEVEL=DEBUG), everything on stderr
    too, tracebacks included."""
    global _debug_log, _debugging
    try:
        level = get_settings().log_level
    except ValidationError:
        level = "WARNING"  # the command's load_settings() says what is wrong with the settings
    debug = debug or level == "DEBUG"
    _debugging = debug
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    terminal = _Terminal()
    if debug:
        terminal.setLevel(logging.DEBUG)
        terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        terminal.setLevel(level)
        terminal.setFormatter(_OneLine("%(levelname)s %(name)s: %(message)s"))
        terminal.addFilter(_for_the_terminal)
    root.addHandler(terminal)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for chatty in ("httpx", "httpcore"):  # a line per request: the request logs have them
        logging.getLogger(chatty).setLevel(logging.DEBUG if debug else logging.WARNING)
    _debug_log = None
    try:
        home = get_settings().home
    except ValidationError:
        return  # the command reports the broken setting; nothing is logged to a file
    _debug_log = _PrivateLogFile(
        home / DEBUG_LOG, maxBytes=_DEBUG_LOG_BYTES, backupCount=2, encoding="utf-8", delay=True
    )
    _debug_log.setLevel(logging.INFO)
    _debug_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(_debug_log)


def debug_log_hint() -> str:
    """Where the details of an error are: the debug log, or `--debug`."""
    if _debugging:
        return "the details are above"
    if _debug_log is None or _debug_log.broken:
        return "run the command again with --debug to see the details"
    return f"the details are in {_debug_log.baseFilename} (or run the command again with --debug)"


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
    from sqlalchemy import make_url  # imported here: a command's --help needs no store
    from sqlalchemy.exc import SQLAlchemyError

    from koppel.store import open_store

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
    from koppel.config import load_config
    from koppel.services import setup

    if config is not None:
        return setup.integration_of_file(store, load_config(config), config)
    return setup.choose_integration(store, name)


def koppel_command() -> str:
    """How to run this installation's `koppel` from here: `koppel` when the shell finds it on
    PATH, else its path (`.venv/bin/koppel` after `make demo`), so a printed hint works as it
    is pasted."""
    installed = Path(sys.executable).parent / "koppel"
    found = shutil.which("koppel")
    if found is not None and Path(found).resolve() == installed.resolve():
        return "koppel"
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


def when(moment: datetime | None) -> str:
    """A stored moment in UTC, to the second."""
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def describe_counts(counts: Mapping[str, int]) -> str:
    """`created 3, updated 1, skipped 0, failed 0` plus any other count (abandoned), then each
    other entity the run wrote: `; categories: created 0, updated 0, skipped 22, failed 0`."""
    from koppel.store import entity_counts

    own = {key: number for key, number in counts.items() if "." not in key}
    names = [*OUTCOMES, *sorted(set(own) - set(OUTCOMES))]
    text = ", ".join(f"{name} {own.get(name, 0)}" for name in names)
    for entity, numbers in sorted(entity_counts(counts).items()):
        text += f"; {entity}: " + ", ".join(f"{name} {numbers[name]}" for name in OUTCOMES)
    return text


def plain(*cells: Any) -> list[Any]:
    """Table cells shown as they are: record text may hold [brackets] that Rich reads as markup."""
    return [Text(cell) if isinstance(cell, str) else cell for cell in cells]


__all__ = [
    "DEBUG_LOG_ONLY",
    "OUTCOMES",
    "ConfigFile",
    "ExitCode",
    "IntegrationOption",
    "NamingConfigFile",
    "config_option",
    "configure_logging",
    "console",
    "debug_log_hint",
    "describe_counts",
    "err_console",
    "exit_code_for",
    "fail",
    "friendly_errors",
    "koppel_command",
    "load_settings",
    "opened_store",
    "pick_integration",
    "plain",
    "problem",
    "progress_bar",
    "when",
]
