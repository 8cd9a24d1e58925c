"""Per-request facts every layer of the web app reads: the app's state, who is signed in (once
the dependencies in `koppel.web.deps` have found out), the language, the page context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from starlette.requests import Request

from koppel.accounts.errors import N_
from koppel.accounts.signin import secret_hash
from koppel.store import Store, User
from koppel.web.i18n import negotiate, translate
from koppel.web.state import WebState
from koppel.web.templating import PageContext

NOTICES = {
    "signed-out": N_("You are signed out."),
    "password-changed": N_("Your password is changed; your other sessions have ended."),
    "language-changed": N_("Your language is saved."),
    "user-created": N_("The user is added. Pass the password on to them in person."),
    "role-changed": N_("The role is changed."),
    "user-removed": N_("The user is removed; their sessions and API tokens have ended."),
    "token-revoked": N_("The API token is revoked."),
    "replayed": N_("The replay has run with today's mapping and settings."),
    "replay-running": N_(
        "The replay is running with today's mapping and settings; reload the page to see "
        "its records."
    ),
    "discarded": N_("The dead letters are discarded; they are not retried again."),
    "mapping-saved": N_("The mapping is saved as a new version; the next runs use it."),
    "mapping-unchanged": N_("The mapping was already this one; nothing is saved."),
    "mapping-restored": N_("The version is restored as a new version; the next runs use it."),
    "integration-imported": N_("The integration file is applied."),
    "authorised": N_("The connection is authorised again."),
    "activated": N_(
        "The integration is active: the first run has started, then the flows run on their "
        "schedules."
    ),
    "test-sent": N_("The test notification is sent through every channel."),
    "reconciled": N_("Both systems are compared; the drift found is below."),
    "drift-syncing": N_(
        "The drifted records are being synced again; compare again in a moment to see them gone."
    ),
}
"""Messages shown after a redirect, named in `?notice=`: only these texts can appear."""


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user of this request, with the store scoped to their workspace."""

    user: User
    store: Store
    workspace: str
    session_token: str | None
    """The session cookie's token; None when an API token authenticated the request."""
    csrf_token: str

    @property
    def session_id(self) -> str | None:
        return secret_hash(self.session_token) if self.session_token else None


def web_state(request: Request) -> WebState:
    return cast(WebState, request.app.state.koppel)


def current_or_none(request: Request) -> CurrentUser | None:
    return cast(CurrentUser | None, getattr(request.state, "current", None))


def request_locale(request: Request) -> str:
    current = current_or_none(request)
    if current is not None and current.user.locale:
        return current.user.locale
    return negotiate(request.headers.get("accept-language"))


def page_context(request: Request) -> PageContext:
    current = current_or_none(request)
    locale = request_locale(request)
    notice_id = NOTICES.get(request.query_params.get("notice", ""))
    return PageContext(
        request=request,
        locale=locale,
        zone=web_state(request).zone,
        csrf_token=(
            current.csrf_token if current else getattr(request.state, "anonymous_csrf", "")
        ),
        user=current.user if current else None,
        workspace=current.workspace if current else None,
        notice=translate(locale, notice_id) if notice_id else None,
    )


__all__ = [
    "NOTICES",
    "CurrentUser",
    "current_or_none",
    "page_context",
    "request_locale",
    "web_state",
]
