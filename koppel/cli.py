"""Koppel's command line: one Typer app, one sub-command per job a user or operator does.

The commands live in koppel/commands/ (one module per group); docs/operations.md describes them.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Annotated, Any

from koppel.commands.collector import collector_paused

with collector_paused():  # what every command needs, imported as a command's modules are
    import typer
    from typer._click.core import Command
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    from typer.core import TyperGroup
    from typer.main import get_command_from_info, get_group_from_info
    from typer.models import CommandInfo, TyperInfo

    from koppel.commands.common import (
        DEBUG_LOG_ONLY,
        ExitCode,
        configure_logging,
        debug_log_hint,
        problem,
    )

_logger = logging.getLogger("koppel.cli")

COMMANDS: dict[str, str] = {
    "sync": "koppel.commands.flows:sync",
    "worker": "koppel.commands.flows:worker",
    "replay": "koppel.commands.flows:replay",
    "reconcile": "koppel.commands.reconcile:reconcile",
    "runs": "koppel.commands.activity:runs",
    "log": "koppel.commands.activity:log",
    "dead-letters": "koppel.commands.activity:dead_letters",
    "purge": "koppel.commands.activity:purge",
    "workers": "koppel.commands.activity:workers",
    "demo": "koppel.commands.demo:demo",
    "serve": "koppel.commands.web:serve",
    "sandbox": "koppel.commands.sandbox:sandbox",
    "mapping": "koppel.commands.mapping:mapping_app",
    "config": "koppel.commands.setup:config_app",
    "connection": "koppel.commands.setup:connection_app",
    "user": "koppel.commands.users:user_app",
}
"""Each command's function (or sub-app) by name, in `koppel --help`'s order. A command's module
is imported only when that command runs or the help lists it: `koppel sync` then loads what a
sync needs, not the web server, the demo, the mapping editor or the account commands (the
imports were most of a short command's time)."""


def _usage_line(error: UsageError) -> str:
    command = error.ctx.command_path if error.ctx else "koppel"
    message = "; ".join(line.strip() for line in error.format_message().splitlines() if line)
    return f"{command}: {message} (see: {command} --help)"


class _ImportedOnUse(MutableMapping[str, Command]):
    """The root group's commands: every name in `COMMANDS` is listed, and its module imported
    the first time the command is looked up."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._commands and name in COMMANDS:
            self._commands[name] = _imported_command(name)
        return self._commands[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._commands if name not in COMMANDS)

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._commands))


def _imported_command(name: str) -> Command:
    """The Click command Typer makes of `COMMANDS[name]`, as `app.command()` or `app.add_typer()`
    would have made it."""
    module, attribute = COMMANDS[name].split(":")
    with collector_paused():
        target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        return get_group_from_info(
            TyperInfo(target, name=name),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=app.suggest_commands,
            rich_markup_mode=app.rich_markup_mode,
        )
    return get_command_from_info(
        CommandInfo(name=name, callback=target),
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
    )


class _PlainErrors(TyperGroup):
    """Every way a command can end, as one or two plain lines and an exit code: usage errors
    (exit 2), Ctrl-C (130), and a bug, whose traceback goes to the debug log (exit 1). Its
    commands are imported on use (`COMMANDS`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.commands = _ImportedOnUse()

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only: TyperGroup's would import every command

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


class _Program(typer.Typer):
    """The `koppel` program: `app()` (the console script, `python -m koppel.cli`) runs one
    command and ends the process, as Typer's does, without the interpreter's teardown.

    Tearing down what a sync imported (a thousand modules, 200,000 objects freed one by one)
    took 0.12 to 0.20 s of a process whose work was over. Once the command has returned and no
    other thread runs, everything it wrote is committed and closed by its own code (the store,
    the engine); the exit handlers (logging's flush of the debug log, a coverage run's data)
    and the flush of stdout and stderr are all the interpreter would still do that anyone
    sees. The tests' `CliRunner` calls the command itself, never this, so a test process goes
    on."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as end:
            code = end.code
            if not (code is None or isinstance(code, int)) or threading.active_count() > 1:
                raise  # a message to print, or threads the interpreter's exit waits for
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to show
                stream.flush()
        os._exit(code or 0)


app = _Program(
    cls=_PlainErrors,
    no_args_is_help=True,
    help="Koppel: keeps Parts Pim and AccountView in sync.",
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="show every log line, tracebacks included")
    ] = False,
) -> None:
    """Koppel: keeps Parts Pim and AccountView in sync."""
    configure_logging(debug=debug)


if __name__ == "__main__":
    app()
