"""The dead letters' pages: the records that failed and wait for a retry, for everyone to read;
replaying and discarding them, for admins (each change audited, POST, redirect, GET)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from starlette.requests import Request
from starlette.responses import Response

from koppel.services import dead_letters
from koppel.services.dead_letters import DeadLetterRefused, ReplayStarted
from koppel.services.errors import NotFound
from koppel.web.context import CurrentUser, page_context
from koppel.web.deps import Admin, Runner, SignedIn, admin_user, signed_in
from koppel.web.routes.forms import redirect, refused
from koppel.web.templating import render

pages = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
actions = APIRouter(dependencies=[Depends(admin_user)], include_in_schema=False)
PAGE_SIZE = 100
Chosen = Annotated[list[int] | None, Form(alias="dead_letter")]
Reason = Annotated[str, Form(max_length=2000)]


def _view(current: CurrentUser, flow_id: int | None, after: int | None) -> dict[str, object]:
    return {
        "page": dead_letters.waiting(current.store, flow_id=flow_id, after=after, limit=PAGE_SIZE),
        "flows": current.store.flows.list(),
        "flow_id": flow_id,
        "reason_max": dead_letters.DISCARD_REASON_MAX,
    }


@pages.get("/dead-letters", name="dead_letters_page")
def dead_letters_page(
    request: Request,
    current: SignedIn,
    flow: Annotated[str | None, Query(max_length=20, pattern=r"^\d*$")] = None,
    after: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    view = _view(current, int(flow) if flow else None, after)
    return render(page_context(request), "dead_letters.html", view)


def _after_replay(started: list[ReplayStarted]) -> Response:
    """To the replay's records when it was one flow's; else back to the list."""
    notice = "replayed" if all(run.finished for run in started) else "replay-running"
    if len(started) == 1:
        return redirect(f"/activity?run={started[0].run_id}", notice)
    return redirect("/dead-letters", notice)


async def _replay(
    request: Request,
    current: CurrentUser,
    runner: Runner,
    *,
    ids: list[int] | None = None,
    flow_id: int | None = None,
) -> Response:
    try:
        started = await dead_letters.replay(
            current.store, runner, current.user, dead_letter_ids=ids or (), flow_id=flow_id
        )
    except DeadLetterRefused as error:
        return refused(request, "dead_letters.html", _view(current, flow_id, None), error)
    return _after_replay(started)


@actions.post("/dead-letters/replay", name="replay_dead_letters")
async def replay_chosen(
    request: Request, current: Admin, runner: Runner, chosen: Chosen = None
) -> Response:
    """The dead letters ticked in the list."""
    return await _replay(request, current, runner, ids=chosen)


@actions.post("/dead-letters/{dead_letter_id}/replay", name="replay_dead_letter")
async def replay_one(
    request: Request, current: Admin, runner: Runner, dead_letter_id: int
) -> Response:
    dead_letters.dead_letter(current.store, dead_letter_id)  # another workspace's: 404 first
    return await _replay(request, current, runner, ids=[dead_letter_id])


@actions.post("/flows/{flow_id}/dead-letters/replay", name="replay_flow_dead_letters")
async def replay_flow(request: Request, current: Admin, runner: Runner, flow_id: int) -> Response:
    """Every dead letter of the flow that waits."""
    if current.store.flows.get(flow_id) is None:
        raise NotFound(f"no flow {flow_id} in this workspace")
    return await _replay(request, current, runner, flow_id=flow_id)


def _discard(
    request: Request, current: CurrentUser, ids: list[int] | None, reason: str
) -> Response:
    try:
        dead_letters.discard(current.store, current.user, ids or [], reason)
    except DeadLetterRefused as error:
        view = {**_view(current, None, None), "reason": reason}
        return refused(request, "dead_letters.html", view, error)
    return redirect("/dead-letters", "discarded")


@actions.post("/dead-letters/discard", name="discard_dead_letters")
def discard_chosen(
    request: Request, current: Admin, chosen: Chosen = None, reason: Reason = ""
) -> Response:
    return _discard(request, current, chosen, reason)


@actions.post("/dead-letters/{dead_letter_id}/discard", name="discard_dead_letter")
def discard_one(
    request: Request, current: Admin, dead_letter_id: int, reason: Reason = ""
) -> Response:
    dead_letters.dead_letter(current.store, dead_letter_id)  # another workspace's: 404 first
    return _discard(request, current, [dead_letter_id], reason)


__all__ = ["actions", "pages"]
