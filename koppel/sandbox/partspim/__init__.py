"""A local Parts Pim: the REST API Koppel assumes (docs/connectors/partspim.md), over SQLite.

Nothing here imports the platform: the sandbox is the other side of the wire.
"""

from koppel.sandbox.partspim.app import API_KEY_HEADER, API_PREFIX
from koppel.sandbox.partspim.sandbox import FIXTURE_ORDER, PartsPimSandbox
from koppel.sandbox.partspim.store import ApiError, PartsPimStore
from koppel.sandbox.partspim.webhooks import Delivery, sign

__all__ = [
    "API_KEY_HEADER",
    "API_PREFIX",
    "FIXTURE_ORDER",
    "ApiError",
    "Delivery",
    "PartsPimSandbox",
    "PartsPimStore",
    "sign",
]
