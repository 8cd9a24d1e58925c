"""The account rules' errors. Their messages are catalogue entries: the web app shows them in the
user's language (`message_id` and `params`), the command line in English (`str(error)`)."""

from __future__ import annotations

from koppel.errors import N_, ErrorCategory, KoppelError


class AccountError(KoppelError):
    """An account rule refused. `message_id % params` is the English text."""

    def __init__(self, message_id: str, **params: str | int) -> None:
        self.message_id = message_id
        self.params = params
        super().__init__(message_id % params if params else message_id)


class InvalidAccountInput(AccountError):
    """A field of the form breaks a rule (e-mail, password, role, language)."""

    category = ErrorCategory.CONFIGURATION


class SignInRefused(AccountError):
    """Wrong e-mail or password; which of the two is never said."""

    category = ErrorCategory.PERMISSION


class TooManySignInAttempts(AccountError):
    """The rate limit for this account or address is reached; try again later."""

    category = ErrorCategory.CONFLICT


class PermissionDenied(AccountError):
    """The signed-in user's role does not allow this."""

    category = ErrorCategory.PERMISSION


class LastAdminError(AccountError):
    """The change would leave the workspace without an admin."""

    category = ErrorCategory.CONFLICT


class FirstRunClosed(AccountError):
    """The first admin exists already (or the one-time token is wrong)."""

    category = ErrorCategory.NOT_FOUND


__all__ = [
    "N_",
    "AccountError",
    "FirstRunClosed",
    "InvalidAccountInput",
    "LastAdminError",
    "PermissionDenied",
    "SignInRefused",
    "TooManySignInAttempts",
]
