"""The REST API for the records: the activity log (outcomes, searched by key) and the dead
letters (list, replay, discard). The same service functions as the pages; errors are problem
documents, lists are paged by cursor (`koppel.web.pagination`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from koppel.services import dead_letters, outcomes
from koppel.services.dead_letters import DISCARD_REASON_MAX
from koppel.services.outcomes import OutcomeFilter
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
    """An outcome as the API shows it, read from the service's `ActivityEntry` by attribute."""

    model_config = ConfigDict(from_attributes=True)

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


class OutcomeDetailOut(OutcomeOut):
    payload_kept: bool
    """False when the payloads were not kept (KOPPEL_PAYLOAD_EXCERPTS off)."""
    source: Any
    """What came from the source (long texts shortened); null when not kept."""
    sent: Any
    """What was sent to the target; null when nothing was."""


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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


class ReplayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    flow: str
    run_id: str
    """The replay's run: its records are `GET /outcomes?run_id=...`."""
    dead_letters: int
    """How many were chosen; 0 for all of the flow's."""
    finished: bool
    """False when the run still went on as the answer was sent."""


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
        items=[OutcomeOut.model_validate(entry) for entry in page.entries],
        next_cursor=None if page.next_before is None else encode_cursor(page.next_before),
    )


@router.get("/outcomes/{outcome_id}", name="api_outcome")
def get_outcome(request: Request, current: SignedIn, outcome_id: int) -> OutcomeDetailOut:
    """One record's outcome with what came from the source and what was sent."""
    retention_days = web_state(request).settings.log_retention_days
    found = outcomes.entry(current.store, outcome_id, retention_days=retention_days)
    return OutcomeDetailOut.model_validate(found)


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
        items=[DeadLetterOut.model_validate(letter) for letter in page.letters],
        next_cursor=None if page.next_after is None else encode_cursor(page.next_after),
    )


@router.get("/dead-letters/{dead_letter_id}", name="api_dead_letter")
def get_dead_letter(current: SignedIn, dead_letter_id: int) -> DeadLetterOut:
    return DeadLetterOut.model_validate(dead_letters.dead_letter(current.store, dead_letter_id))


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
    return [ReplayOut.model_validate(run) for run in started]


@router.post("/dead-letters/{dead_letter_id}/replay", name="api_replay_dead_letter")
async def replay_dead_letter(
    current: Admin, runner: Runner, dead_letter_id: int
) -> list[ReplayOut]:
    started = await dead_letters.replay(
        current.store, runner, current.user, dead_letter_ids=[dead_letter_id]
    )
    return [ReplayOut.model_validate(run) for run in started]


@router.post("/dead-letters/discard", name="api_discard_dead_letters")
def discard_dead_letters(current: Admin, body: DiscardIn) -> list[DeadLetterOut]:
    """Give up on the chosen dead letters, with the reason (kept in the audit log)."""
    discarded = dead_letters.discard(current.store, current.user, body.dead_letter_ids, body.reason)
    return [DeadLetterOut.model_validate(letter) for letter in discarded]


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
    return DeadLetterOut.model_validate(discarded)


__all__ = ["router"]
