"""Build the connector for a connection, whatever its application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from koppel.connectors.base import ApiClient, ClientLimits, Connector
from koppel.connectors.errors import ConnectionSettingsError, FatalAPIError
from koppel.errors import validation_message

CredentialsCallback = Callable[[dict[str, Any]], Awaitable[None]]


class ClientConnector(Connector, Protocol):
    """A connector over one ApiClient: what the flows count API calls through."""

    @property
    def client(self) -> ApiClient: ...


def build_connector(
    application: str,
    base_url: str,
    credentials: Mapping[str, Any],
    *,
    on_credentials: CredentialsCallback | None = None,
    limits: ClientLimits | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ClientConnector:
    """A connector for `application`; `on_credentials` persists credentials the API rotates.

    `transport` replaces the network under the connector's client (a sandbox served in-process
    through `httpx.ASGITransport`); None is real HTTP.
    """
    try:
        return _build(application, base_url, credentials, on_credentials, limits, transport)
    except ValidationError as error:  # credentials that lack a field: named, values left out
        raise ConnectionSettingsError(validation_message(error)) from None


def _build(
    application: str,
    base_url: str,
    credentials: Mapping[str, Any],
    on_credentials: CredentialsCallback | None,
    limits: ClientLimits | None,
    transport: httpx.AsyncBaseTransport | None,
) -> ClientConnector:
    if application == "accountview":
        from koppel.connectors.accountview import AccountViewConnector

        return AccountViewConnector(
            {**credentials, "base_url": base_url},
            on_tokens=on_credentials,
            limits=limits,
            transport=transport,
        )
    if application == "partspim":
        from koppel.connectors.partspim import PartsPimConnector

        api_key = credentials.get("api_key")
        if not api_key:
            raise FatalAPIError("the Parts Pim connection has no api_key; add it to credentials")
        return PartsPimConnector(base_url, str(api_key), limits=limits, transport=transport)
    raise FatalAPIError(f"no connector for application {application!r}")


__all__ = ["ClientConnector", "CredentialsCallback", "build_connector"]
