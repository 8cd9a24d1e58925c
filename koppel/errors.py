"""The root of every error Koppel raises on purpose, with the category that says what to do.

Each face translates a category once: the CLI into an exit code (`koppel.commands.common`), the
web app into an HTTP status and a problem document. A message is written for the person who has
to act on it (what is wrong, what to change) and never contains a secret.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError


def N_(message: str) -> str:
    """Marks a text for the web app's catalogue without translating it here (gettext_noop);
    the page that shows it translates it."""
    return message


class ErrorCategory(StrEnum):
    CONFIGURATION = "configuration"
    """A file, a setting or a mapping must change; the message says which and how."""
    AUTHORISATION = "authorisation"
    """An application refused the credentials, or the connection must be authorised again."""
    CONNECTION = "connection"
    """An application could not be reached, or answered with an error that is not the record's."""
    RECORD = "record"
    """One record breaks a rule: it fails alone, naming the record, the field and the rule."""
    CONFLICT = "conflict"
    """The thing is busy or in a state that does not allow this now (another process holds it)."""
    NOT_FOUND = "not_found"
    """The thing does not exist (or belongs to another workspace: the two are not told apart)."""
    PERMISSION = "permission"
    """The user may not do this (a viewer changing something)."""
    INTERNAL = "internal"
    """Koppel was used in a way it cannot honour: a bug, reported with a message, not a secret."""


class KoppelError(Exception):
    """Base of Koppel's own errors. Subclasses set `category`; an instance may narrow it."""

    category: ErrorCategory = ErrorCategory.INTERNAL


class NotFound(KoppelError):
    """What the caller named (an integration, a flow, a run, a mapping version) does not exist,
    or belongs to another workspace: the two are not told apart."""

    category = ErrorCategory.NOT_FOUND


class RunTakenOver(KoppelError):
    """This process no longer owns the run: another worker took it over while this one was
    silent (paused, cut off). Raised by the store's fenced writes (`Store.fenced`); the engine
    then drops the run in this process without recording anything for it."""

    category = ErrorCategory.CONFLICT

    def __init__(self, run_id: str, owner: str | None, stale: str) -> None:
        super().__init__(
            f"run {run_id} was taken over by worker {owner or '(none)'} while worker {stale} was "
            "silent; this worker writes nothing more for it"
        )
        self.run_id = run_id
        self.owner = owner


def reason_of(error: BaseException) -> str:
    """What a person is told about an error that ended a run or a command: a Koppel error's own
    message (written for them: the cause and the fix); anything else is a bug, named by its type
    and first line, with its traceback in the log."""
    if isinstance(error, KoppelError):
        return str(error)
    if isinstance(error, ValidationError):
        return validation_message(error)
    text = str(error).strip()
    first = f": {text.splitlines()[0]}" if text else ""
    return (
        f"Koppel failed on an unexpected error ({type(error).__name__}{first}); "
        "the traceback is in the debug log (KOPPEL_HOME/debug.log)"
    )


def validation_message(error: ValidationError) -> str:
    """What pydantic found wrong, without the input values (they may be credentials)."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or '(value)'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    ]
    return f"{error.title}: " + "; ".join(problems)


__all__ = [
    "N_",
    "ErrorCategory",
    "KoppelError",
    "NotFound",
    "RunTakenOver",
    "reason_of",
    "validation_message",
]
