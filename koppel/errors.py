"""The root of every error Koppel raises on purpose, with the category that says what to do.

Each face translates a category once: the CLI into an exit code (`koppel.commands.common`), the
web app into an HTTP status and a problem document. A message is written for the person who has
to act on it (what is wrong, what to change) and never contains a secret.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError


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


def validation_message(error: ValidationError) -> str:
    """What pydantic found wrong, without the input values (they may be credentials)."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or '(value)'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    ]
    return f"{error.title}: " + "; ".join(problems)


__all__ = ["ErrorCategory", "KoppelError", "NotFound", "validation_message"]
