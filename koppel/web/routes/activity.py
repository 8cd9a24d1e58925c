"""The activity log's pages: every record's outcome across runs, found by its key, and one
record's entry with what came from the source beside what was sent to the target."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from koppel.services import outcomes
from koppel.services.outcomes import OutcomeFilter
from koppel.store import OutcomeKind
from koppel.web.context import page_context, web_state
from koppel.web.deps import WorkspaceStore, signed_in
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
PAGE_SIZE = 50
OUTCOME_PATTERN = "^(" + "|".join(kind.value for kind in OutcomeKind) + ")?$"


def _blank_is_none(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@router.get("/activity", name="activity_page")
def activity_page(
    request: Request,
    store: WorkspaceStore,
    key: Annotated[str | None, Query(max_length=255)] = None,
    flow: Annotated[str | None, Query(max_length=20, pattern=r"^\d*$")] = None,
    outcome: Annotated[str | None, Query(pattern=OUTCOME_PATTERN)] = None,
    run: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The form's empty fields arrive as "" and mean "any"."""
    where = OutcomeFilter(
        key=_blank_is_none(key),
        flow_id=int(flow) if flow else None,
        outcome=OutcomeKind(outcome) if outcome else None,
        run_id=_blank_is_none(run),
    )
    page = outcomes.search(store, where, before=before, limit=PAGE_SIZE)
    view = {
        "where": where,
        "page": page,
        "flows": store.flows.list(),
        "kinds": [kind.value for kind in OutcomeKind],
        "older": None if page.next_before is None else _page_link(request, page.next_before),
        "newest": None if before is None else _page_link(request, None),
        "retention_days": web_state(request).settings.log_retention_days,
    }
    return render(page_context(request), "activity.html", view)


def _page_link(request: Request, before: int | None) -> str:
    """This page's filters, from the newest entry (`before` None) or older than `before`."""
    kept = [
        (name, value)
        for name, value in request.query_params.multi_items()
        if name not in ("before", "notice") and value
    ]
    if before is not None:
        kept.append(("before", str(before)))
    return f"{request.url.path}?{urlencode(kept)}" if kept else request.url.path


@router.get("/activity/{outcome_id}", name="activity_entry_page")
def activity_entry_page(request: Request, store: WorkspaceStore, outcome_id: int) -> Response:
    retention_days = web_state(request).settings.log_retention_days
    found = outcomes.entry(store, outcome_id, retention_days=retention_days)
    view = {"entry": found, "retention_days": retention_days}
    return render(page_context(request), "activity_entry.html", view)


__all__ = ["router"]
