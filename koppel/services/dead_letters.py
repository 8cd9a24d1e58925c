"""The records that failed and wait for a retry, and which flows have any to replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from koppel.store import DeadLetterStatus, Flow, Store


@dataclass(frozen=True)
class DeadLetterView:
    id: int
    flow: str
    source_key: str
    reason: str
    attempts: int
    next_attempt_at: datetime
    since: datetime


def pending(
    store: Store, flows: Sequence[Flow], *, limit_per_flow: int = 100
) -> list[DeadLetterView]:
    """The pending dead letters of these flows, flow by flow, oldest first within a flow."""
    return [
        DeadLetterView(
            id=letter.id,
            flow=flow.name,
            source_key=letter.source_key,
            reason=letter.reason,
            attempts=letter.attempts,
            next_attempt_at=letter.next_attempt_at,
            since=letter.created_at,
        )
        for flow in flows
        for letter in store.dead_letters.list(
            flow.id, status=DeadLetterStatus.PENDING, limit=limit_per_flow
        )
    ]


def flows_to_replay(store: Store, flows: Sequence[Flow]) -> list[Flow]:
    """Those of the flows that have pending dead letters: the ones a replay runs."""
    return [
        flow
        for flow in flows
        if store.dead_letters.list(flow.id, status=DeadLetterStatus.PENDING, limit=1)
    ]


__all__ = ["DeadLetterView", "flows_to_replay", "pending"]
