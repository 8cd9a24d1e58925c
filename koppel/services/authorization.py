"""Authorising a connection (OAuth2 authorization code): the way to a new grant when the old one
is gone, or the first grant of a connection set up without a refresh token.

`start` makes the application's login URL for a connection, with a random `state` kept (hashed)
in the store for ten minutes; the person logs in there, and the application sends the browser to
`redirect_uri` with a code and that state. `complete` checks the state (known, unused, not
expired, this workspace's), trades the code for tokens, stores them encrypted (the connection is
ready again) and lists the companies the grant reaches. The command line serves `redirect_uri`
on 127.0.0.1 for the one answer (`koppel connection authorize`); the web app has a route.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import httpx

from koppel.connectors.accountview import AccountViewClient
from koppel.connectors.accountview.client import SCOPES
from koppel.errors import ErrorCategory, KoppelError
from koppel.flows.runtime import stored_connector
from koppel.services.errors import InvalidRequest, NotFound
from koppel.store import Application, Connection, Store

AUTHORIZATION_TTL = timedelta(minutes=10)
"""How long a login page's answer is accepted after `start`."""
AUTHORIZE_PATH = "/ams/authorize.aspx"
"""AccountView's login page, on the host of its API (www.accountview.net, or the sandbox)."""


class AuthorizationRefused(KoppelError):
    """The application (or the person at its login page) did not grant access."""

    category = ErrorCategory.AUTHORISATION


@dataclass(frozen=True)
class AuthorizationStart:
    """Where to send the person: the login URL; `state` comes back with the answer."""

    connection: str
    url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True)
class Company:
    id: str
    code: str
    description: str


@dataclass(frozen=True)
class AuthorizationResult:
    """A connection authorised: the companies its new grant reaches and whether the one it is
    set up for (`company_id`) is among them."""

    connection: str
    companies: tuple[Company, ...]
    company_id: str

    @property
    def company_found(self) -> bool:
        return any(company.id == self.company_id for company in self.companies)


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def authorize_url(connection: Connection) -> str:
    """The login page of the connection's application: its `authorize_url` option, else
    AccountView's page on the host of the API's base URL."""
    configured = connection.options.get("authorize_url")
    if configured:
        return str(configured)
    parts = urlsplit(connection.base_url)
    return f"{parts.scheme}://{parts.netloc}{AUTHORIZE_PATH}"


def start(store: Store, connection: Connection, redirect_uri: str) -> AuthorizationStart:
    """The login URL for `connection`, whose answer goes to `redirect_uri`."""
    if connection.application is not Application.ACCOUNTVIEW:
        raise InvalidRequest(
            f"connection {connection.name} ({connection.application.value}) logs in with an API "
            "key in the integration file; only AccountView connections are authorised"
        )
    client_id = store.connections.get_credentials(connection.id).get("client_id")
    if not client_id:
        raise InvalidRequest(
            f"connection {connection.name} has no client_id; add it (and client_secret) to its "
            "credentials in the integration file first"
        )
    state = secrets.token_urlsafe(24)
    expires_at = datetime.now(UTC) + AUTHORIZATION_TTL
    store.authorizations.add(
        _state_hash(state), connection.id, redirect_uri=redirect_uri, expires_at=expires_at
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
        }
    )
    return AuthorizationStart(
        connection.name, f"{authorize_url(connection)}?{query}", state, expires_at
    )


async def complete(
    store: Store,
    *,
    state: str,
    code: str | None,
    error: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AuthorizationResult:
    """The login page's answer: check `state`, trade `code` for tokens and store them (the
    connection is ready again); `error` is the page's refusal (access_denied)."""
    pending = store.authorizations.take(_state_hash(state))
    if pending is None:
        raise InvalidRequest(
            "this answer does not belong to an authorisation under way (unknown, used or "
            "expired state); start the authorisation again"
        )
    connection = store.connections.get(pending.connection_id)
    if connection is None:
        raise NotFound("the connection being authorised no longer exists")
    if error or not code:
        raise AuthorizationRefused(
            f"connection {connection.name}: the login page did not grant access "
            f"({error or 'no code'}); start again and choose Allow"
        )
    connector = stored_connector(store, connection, transport=transport)
    client = connector.client
    assert isinstance(client, AccountViewClient)  # start() allows AccountView only
    try:
        await client.authorize(code, pending.redirect_uri)
        companies = await client.companies()
    finally:
        await connector.aclose()
    return AuthorizationResult(
        connection.name,
        tuple(
            Company(str(c.get("Id", "")), str(c.get("Code", "")), str(c.get("Description", "")))
            for c in companies
        ),
        client.company_id,
    )


__all__ = [
    "AUTHORIZATION_TTL",
    "AuthorizationRefused",
    "AuthorizationResult",
    "AuthorizationStart",
    "Company",
    "authorize_url",
    "complete",
    "start",
]
