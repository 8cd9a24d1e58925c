"""What the webhook service knows without a server: every event Parts Pim sends has the entity
it names, and delivery addresses are masked wherever a path is logged."""

from __future__ import annotations

import logging

from koppel.commands.web import _MaskHookTokens
from koppel.connectors.partspim import contract
from koppel.services.webhooks import EVENT_ENTITIES, masked


def test_every_event_of_the_contract_names_an_entity_of_it() -> None:
    for event in contract.WEBHOOK_EVENTS:
        assert EVENT_ENTITIES[event.split(".")[0]] in contract.RESOURCES, event


def test_a_delivery_address_is_masked_in_paths_and_access_log_lines() -> None:
    token = "Zm9vYmFyLXRva2VuLW9mLTMyLWJ5dGVz_-x"
    assert masked(f"/hooks/partspim/{token}") == "/hooks/partspim/…"
    assert masked("/runs/12") == "/runs/12"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:4711", "POST", f"/hooks/partspim/{token}", "1.1", 202),
        None,
    )
    assert _MaskHookTokens().filter(record)
    assert token not in record.getMessage()
    assert "/hooks/partspim/…" in record.getMessage()
