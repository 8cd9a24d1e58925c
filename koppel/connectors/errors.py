"""Connector errors, by what the caller should do about them.

Retriable: wait and try again. Fatal: stop and tell the user (bad credentials, a bug). A record
validation error belongs to one record: that record fails with the reason, the others go on.
Messages are built from method, path and the API's own error text, never from credentials.
"""

from __future__ import annotations

from koppel.errors import ErrorCategory, KoppelError


class ConnectorError(KoppelError):
    """Base of every error a connector raises."""

    category = ErrorCategory.CONNECTION
    connection: str | None = None
    """The name of the connection whose client raised it, when it has one."""
    stops_run: bool = False
    """True when the connection itself cannot be used (credentials refused, the host down):
    the run fails as a whole with this reason, instead of failing every record with it."""


class ConnectionSettingsError(ConnectorError):
    """A connection's credentials or options lack a field or break its rule: fix the file."""

    category = ErrorCategory.CONFIGURATION
    stops_run = True


class RetriableAPIError(ConnectorError):
    """The API answered 429, 5xx or not at all: the same request may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_processed: bool = True,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        # False only when the API certainly did not act on the request (429, 503, no connection):
        # then even a write that is not idempotent may simply be sent again.
        self.maybe_processed = maybe_processed
        # The host gave no answer at all (refused, unreachable, timing out): a connection that
        # keeps doing so is marked down.
        self.unreachable = unreachable


class ConnectionDown(ConnectorError):
    """The API gave no answer at all (refused, unreachable, timing out) for longer than the
    connection's `down_after_seconds`: every further call of the run fails at once with this."""

    stops_run = True


class Interrupted(ConnectorError):
    """A stop was asked for while this call waited on the API: the wait is cut short and the
    batch runs again when the run resumes."""

    stops_run = True


class AmbiguousWriteError(RetriableAPIError):
    """A write that is not idempotent failed after the API may have carried it out.

    Sending it again could create a second record, so the caller must look the record up by its
    natural key first (`ApiClient.write_with_recheck`).
    """


class FatalAPIError(ConnectorError):
    """Trying again will not help: the request or the configuration must change."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(FatalAPIError):
    """The credentials were refused; the user must re-enter or re-authorise them."""

    category = ErrorCategory.AUTHORISATION
    stops_run = True


class GrantLost(AuthenticationError):
    """The API refused the refresh token: the authorisation is gone (revoked, expired, or spent
    by a refresh whose answer was lost). Only authorising the connection again helps."""


class RefreshAnswerLost(ConnectorError):
    """A token refresh was sent but its answer was lost: the API may have rotated the refresh
    token. It is not sent again blindly; the next refresh tries the stored token once."""

    stops_run = True


class PagingLoopError(FatalAPIError):
    """The API handed back a page token seen before, or more pages than can be right."""


class RecordValidationError(ConnectorError):
    """One record breaks a rule of the target: names the record, the field and the rule."""

    category = ErrorCategory.RECORD

    def __init__(self, record_key: str, field: str, rule: str) -> None:
        super().__init__(f"{record_key}: field {field}: {rule}")
        self.record_key = record_key
        self.field = field
        self.rule = rule


__all__ = [
    "AmbiguousWriteError",
    "AuthenticationError",
    "ConnectionDown",
    "ConnectionSettingsError",
    "ConnectorError",
    "FatalAPIError",
    "GrantLost",
    "Interrupted",
    "PagingLoopError",
    "RecordValidationError",
    "RefreshAnswerLost",
    "RetriableAPIError",
]
