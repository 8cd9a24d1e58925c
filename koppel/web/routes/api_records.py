"""The REST API for the records: the activity log (outcomes, searched by key) and the dead
letters (list, replay, discard). The same service functions as the pages; errors are problem
documents, lists are paged by cursor (`koppel.web.pagination`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request

from koppel.services import dead_letters, outcomes
from koppel.services.dead_letters import DISCARD_REASON_MAX, DeadLetterView, ReplayStarted
from koppel.services.outcomes import ActivityEntry, OutcomeFilter
from koppel.store import OutcomeKind
from koppel.web.context import web_state
from koppel.web.deps import Admin, Runner, SignedIn, signed_in
from koppel.web.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    decode_cursor,
    encode_cursor,
)
from koppel.web.routes.api import PREFIX

router = APIRouter(prefix=PREFIX, dependencies=[Depends(signed_in)], tags=["records"])
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


class OutcomeOut(BaseModel):
    id: int
    run_id: str
    run_number: int | None
    flow_id: int
    flow: str
    source_key: str
    target_key: str | None
    outcome: OutcomeKind
    reason: str | None
    warnings: list[str]
    created_at: datetime

    @classmethod
    def of(cls, entry: ActivityEntry) -> OutcomeOut:
        return cls(
            id=entry.id,
            run_id=entry.run_id,
            run_number=entry.run_number,
            flow_id=entry.flow_id,
            flow=entry.flow,
            source_key=entry.source_key,
            target_key=entry.target_key,
            outcome=entry.outcome,
            reason=entry.reason,
            warnings=list(entry.warnings),
            created_at=entry.created_at,
        )


class OutcomeDetailOut(OutcomeOut):
    payload_kept: bool
    """False when the payloads were not kept (KOPPEL_PAYLOAD_EXCERPTS off)."""
    source: Any
    """What came from the source (long texts shortened); null when not kept."""
    sent: Any
    """What was sent to the target; null when nothing was."""

    @classmethod
    def of_entry(cls, entry: ActivityEntry) -> OutcomeDetailOut:
        return cls(
            **OutcomeOut.of(entry).model_dump(),
            payload_kept=entry.payload_kept,
            source=entry.source,
            sent=entry.sent,
        )


class DeadLetterOut(BaseModel):
    id: int
    flow_id: int
    flow: str
    source_key: str
    reason: str
    attempts: int
    next_attempt_at: datetime
    since: datetime
    status: str
    payload_kept: bool
    last_outcome_id: int | None
    """The record's newest outcome (`GET /outcomes/{id}`: its payloads), while kept."""

    @classmethod
    def of(cls, letter: DeadLetterView) -> DeadLetterOut:
        return cls(
            id=letter.id,
            flow_id=letter.flow_id,
            flow=letter.flow,
            source_key=letter.source_key,
            reason=letter.reason,
            attempts=letter.attempts,
            next_attempt_at=letter.next_attempt_at,
            since=letter.since,
            status=letter.status.value,
            payload_kept=letter.payload_kept,
            last_outcome_id=letter.last_outcome_id,
        )


class ReplayOut(BaseModel):
    flow: str
    run_id: str
    """The replay's run: its records are `GET /outcomes?run_id=...`."""
    dead_letters: int
    """How many were chosen; 0 for all of the flow's."""
    finished: bool
    """False when the run still went on as the answer was sent."""

    @classmethod
    def of(cls, started: ReplayStarted) -> ReplayOut:
        return cls(
            flow=started.flow,
            run_id=started.run_id,
            dead_letters=started.dead_letters,
            finished=started.finished,
        )


class ReplayIn(BaseModel):
    """Either the dead letters to replay, or a flow all of whose waiting ones are replayed."""

    dead_letter_ids: list[int] = Field(default_factory=list, max_length=MAX_LIMIT)
    flow_id: int | None = None


class DiscardIn(BaseModel):
    dead_letter_ids: list[int] = Field(default_factory=list, max_length=MAX_LIMIT)
    reason: str = Field(default="", max_length=DISCARD_REASON_MAX)


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=DISCARD_REASON_MAX)


@router.get("/outcomes", name="api_outcomes")
def list_outcomes(
    current: SignedIn,
    key: Annotated[str | None, Query(max_length=255)] = None,
    flow_id: int | None = None,
    outcome: OutcomeKind | None = None,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[OutcomeOut]:
    """The activity log newest first: `key` finds a record by its SKU, e-mail address or order
    number (any case) or exactly by its source or target key, across runs."""
    where = OutcomeFilter(key=key, flow_id=flow_id, outcome=outcome, run_id=run_id)
    page = outcomes.search(current.store, where, before=decode_cursor(cursor, int), limit=limit)
    return Page[OutcomeOut](
        items=[OutcomeOut.of(entry) for entry in page.entries],
        next_cursor=None if page.next_before is None else encode_cursor(page.next_before),
    )


@router.get("/outcomes/{outcome_id}", name="api_outcome")
def get_outcome(request: Request, current: SignedIn, outcome_id: int) -> OutcomeDetailOut:
    """One record's outcome with what came from the source and what was sent."""
    retention_days = web_state(request).settings.log_retention_days
    found = outcomes.entry(current.store, outcome_id, retention_days=retention_days)
    return OutcomeDetailOut.of_entry(found)


@router.get("/dead-letters", name="api_dead_letters")
def list_dead_letters(
    current: SignedIn,
    flow_id: int | None = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[DeadLetterOut]:
    """The records waiting for a retry, oldest first."""
    page = dead_letters.waiting(
        current.store, flow_id=flow_id, after=decode_cursor(cursor, int), limit=limit
    )
    return Page[DeadLetterOut](
        items=[DeadLetterOut.of(letter) for letter in page.letters],
        next_cursor=None if page.next_after is None else encode_cursor(page.next_after),
    )


@router.get("/dead-letters/{dead_letter_id}", name="api_dead_letter")
def get_dead_letter(current: SignedIn, dead_letter_id: int) -> DeadLetterOut:
    return DeadLetterOut.of(dead_letters.dead_letter(current.store, dead_letter_id))


@router.post("/dead-letters/replay", name="api_replay_dead_letters")
async def replay_dead_letters(current: Admin, runner: Runner, body: ReplayIn) -> list[ReplayOut]:
    """Replay the chosen dead letters (`dead_letter_ids`), or every waiting one of `flow_id`,
    with today's mapping and settings (admins). One run per flow; waited for a short while."""
    started = await dead_letters.replay(
        current.store,
        runner,
        current.user,
        dead_letter_ids=body.dead_letter_ids,
        flow_id=body.flow_id,
    )
    return [ReplayOut.of(run) for run in started]


@router.post("/dead-letters/{dead_letter_id}/replay", name="api_replay_dead_letter")
async def replay_dead_letter(
    current: Admin, runner: Runner, dead_letter_id: int
) -> list[ReplayOut]:
    started = await dead_letters.replay(
        current.store, runner, current.user, dead_letter_ids=[dead_letter_id]
    )
    return [ReplayOut.of(run) for run in started]


@router.post("/dead-letters/discard", name="api_discard_dead_letters")
def discard_dead_letters(current: Admin, body: DiscardIn) -> list[DeadLetterOut]:
    """Give up on the chosen dead letters, with the reason (kept in the audit log)."""
    discarded = dead_letters.discard(current.store, current.user, body.dead_letter_ids, body.reason)
    return [DeadLetterOut.of(letter) for letter in discarded]


@router.post(
    "/dead-letters/{dead_letter_id}/discard",
    name="api_discard_dead_letter",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReasonIn.model_json_schema()}},
        }
    },
)
async def discard_dead_letter(
    request: Request, current: Admin, dead_letter_id: int
) -> DeadLetterOut:
    """Give up on one dead letter, with the reason: `{"reason": "..."}`."""
    dead_letters.dead_letter(current.store, dead_letter_id)  # another workspace's: 404 first
    try:
        body = ReasonIn.model_validate_json(await request.body() or b"{}")
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        ) from None
    (discarded,) = dead_letters.discard(current.store, current.user, [dead_letter_id], body.reason)
    return DeadLetterOut.of(discarded)


__all__ = ["router"]
