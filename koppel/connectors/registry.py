"""Build the connector for a connection, whatever its application."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from koppel.connectors.base import ApiClient, ClientLimits, Connector, EntitySpec
from koppel.connectors.credentials import CredentialStore
from koppel.connectors.errors import ConnectionSettingsError, FatalAPIError
from koppel.errors import N_, validation_message


@dataclass(frozen=True)
class CredentialField:
    """One thing a person enters to connect to an application, with the help beside it."""

    name: str
    label: str
    help: str
    secret: bool = False


@dataclass(frozen=True)
class ApplicationInfo:
    """An application Koppel has a connector for, as the setup wizard offers it."""

    name: str
    label: str
    base_url_help: str
    fields: tuple[CredentialField, ...]
    authorised: bool = False
    """Its login is an OAuth2 grant: after the fields, the person authorises Koppel."""
    lists: Mapping[str, str] = field(default_factory=dict)
    """Code lists the settings ask about -> (entity) the connector reads them from."""
    list_key: Mapping[str, str] = field(default_factory=dict)
    """Entity of a code list -> the field that holds the code."""


APPLICATIONS: dict[str, ApplicationInfo] = {
    "partspim": ApplicationInfo(
        name="partspim",
        label="Parts Pim",
        base_url_help=N_(
            "The address of your Parts Pim API, e.g. https://yourshop.partspim.nl "
            "(Settings > API in Parts Pim)."
        ),
        fields=(
            CredentialField(
                "api_key",
                N_("API key"),
                N_("Made in Parts Pim under Settings > API > Keys; give it read and write access."),
                secret=True,
            ),
        ),
        lists={"payment_terms": "payment_terms", "payment_methods": "payment_methods"},
        list_key={"payment_terms": "code", "payment_methods": "code"},
    ),
    "accountview": ApplicationInfo(
        name="accountview",
        label="AccountView",
        base_url_help=N_(
            "The address of the AccountView Web API, normally https://www.accountview.net/api/v3."
        ),
        fields=(
            CredentialField(
                "client_id",
                N_("Client id"),
                N_("Of the app you registered in the AccountView developer portal for Koppel."),
            ),
            CredentialField(
                "client_secret",
                N_("Client secret"),
                N_("Shown once when you registered the app; make a new one there if it is lost."),
                secret=True,
            ),
        ),
        authorised=True,
        lists={"payment_terms": "payment_conditions", "payment_methods": "payment_methods"},
        list_key={"payment_conditions": "DISC_CODE", "payment_methods": "PAY_TYPE"},
    ),
}
"""The applications Koppel has connectors for: what the setup wizard offers, and asks of each."""


class ClientConnector(Connector, Protocol):
    """A connector over one ApiClient: what the flows count API calls through."""

    @property
    def client(self) -> ApiClient: ...


def build_connector(
    application: str,
    base_url: str,
    credentials: Mapping[str, Any],
    *,
    credential_store: CredentialStore | None = None,
    limits: ClientLimits | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    name: str = "",
) -> ClientConnector:
    """A connector for `application`; `credential_store` keeps credentials the API rotates
    (None: in memory only); `name` is the connection's, named in the errors it raises.

    `transport` replaces the network under the connector's client (a sandbox served in-process
    through `httpx.ASGITransport`); None is real HTTP.
    """
    try:
        return _build(application, base_url, credentials, credential_store, limits, transport, name)
    except ValidationError as error:  # credentials that lack a field: named, values left out
        raise ConnectionSettingsError(validation_message(error)) from None


def entity_specs(application: str) -> Mapping[str, EntitySpec]:
    """The entities a connector for `application` reads and writes, with their schemas; no
    connector is built (checking a mapping needs no client)."""
    if application == "accountview":
        from koppel.connectors.accountview import ENTITIES as ACCOUNTVIEW

        return {name: entity.spec for name, entity in ACCOUNTVIEW.items()}
    if application == "partspim":
        from koppel.connectors.partspim import ENTITIES as PARTSPIM

        return PARTSPIM
    raise FatalAPIError(f"no connector for application {application!r}")


def check_credentials(application: str, base_url: str, credentials: Mapping[str, Any]) -> None:
    """ConnectionSettingsError when the credentials lack what the connector needs (named, the
    values left out); nothing is built and nothing is sent."""
    if application == "accountview":
        from koppel.connectors.accountview import AccountViewCredentials

        try:
            AccountViewCredentials.from_mapping({**credentials, "base_url": base_url})
        except ValidationError as error:
            raise ConnectionSettingsError(validation_message(error)) from None
    elif application == "partspim" and not credentials.get("api_key"):
        raise ConnectionSettingsError(
            "the Parts Pim connection has no api_key; add it to credentials"
        )


def _build(
    application: str,
    base_url: str,
    credentials: Mapping[str, Any],
    credential_store: CredentialStore | None,
    limits: ClientLimits | None,
    transport: httpx.AsyncBaseTransport | None,
    name: str,
) -> ClientConnector:
    if application == "accountview":
        from koppel.connectors.accountview import AccountViewConnector

        return AccountViewConnector(
            {**credentials, "base_url": base_url},
            credential_store=credential_store,
            limits=limits,
            transport=transport,
            name=name,
        )
    if application == "partspim":
        from koppel.connectors.partspim import PartsPimConnector

        api_key = credentials.get("api_key")
        if not api_key:
            raise FatalAPIError("the Parts Pim connection has no api_key; add it to credentials")
        return PartsPimConnector(
            base_url, str(api_key), limits=limits, transport=transport, name=name
        )
    raise FatalAPIError(f"no connector for application {application!r}")


__all__ = [
    "APPLICATIONS",
    "ApplicationInfo",
    "ClientConnector",
    "CredentialField",
    "build_connector",
    "check_credentials",
    "entity_specs",
]
