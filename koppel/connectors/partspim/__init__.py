"""Parts Pim connector: the assumed REST API (contract.py), its client and the record interface."""

from koppel.connectors.partspim.client import (
    DuplicateRecordError,
    FieldError,
    PartsPimClient,
    PartsPimValidationError,
    WebhookSignatureError,
    verify_webhook,
)
from koppel.connectors.partspim.connector import ENTITIES, PartsPimConnector

__all__ = [
    "ENTITIES",
    "DuplicateRecordError",
    "FieldError",
    "PartsPimClient",
    "PartsPimConnector",
    "PartsPimValidationError",
    "WebhookSignatureError",
    "verify_webhook",
]
