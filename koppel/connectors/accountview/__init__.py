"""AccountView.Net Web API v3 connector: `AccountViewClient` (HTTP, OAuth2) and
`AccountViewConnector` (entities for the flows). See docs/connectors/accountview.md."""

from koppel.connectors.accountview.client import (
    AccountViewClient,
    AccountViewCredentials,
    AccountViewError,
    Filter,
)
from koppel.connectors.accountview.connector import ENTITIES, AccountViewConnector

__all__ = [
    "ENTITIES",
    "AccountViewClient",
    "AccountViewConnector",
    "AccountViewCredentials",
    "AccountViewError",
    "Filter",
]
