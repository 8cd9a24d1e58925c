"""The runs: a list filtered by flow, status and days, paged by key; a run's own page with its
counts per entity, duration, API calls, error and records (its outcomes)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from koppel.accounts.errors import N_
from koppel.errors import ErrorCategory, KoppelError
from koppel.services import activity
from koppel.store import Flow, OutcomeKind, RunStatus, Store, entity_counts
from koppel.web.context import page_context, web_state
from koppel.web.deps import WorkspaceStore, signed_in
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
RUNS_PER_PAGE = 50
RECORDS_PER_PAGE = 100
KINDS = [kind.value for kind in OutcomeKind]


class InvalidFilter(KoppelError):
    """A filter of the runs page that is not one the form offers (a hand-made address)."""

    category = ErrorCategory.CONFIGURATION
    message_id = N_("The filter %(field)s does not take %(value)s: %(rule)s.")

    def __init__(self, field: str, value: str, rule: str) -> None:
        self.params = {"field": field, "value": repr(value)[:60], "rule": rule}
        super().__init__(self.message_id % self.params)


def _flow(store: Store, value: str) -> Flow | None:
    if not value:
        return None
    found = store.flows.get(int(value)) if value.isdigit() else None
    if found is None:
        raise InvalidFilter("flow", value, "choose one of the workspace's flows")
    return found


def _status(value: str) -> RunStatus | None:
    if not value:
        return None
    try:
        return RunStatus(value)
    except ValueError:
        raise InvalidFilter("status", value, ", ".join(s.value for s in RunStatus)) from None


def _day(field: str, value: str, zone: ZoneInfo) -> datetime | None:
    """The start of the day in the app's time zone."""
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), zone)
    except ValueError:
        raise InvalidFilter(field, value, "a date as YYYY-MM-DD") from None


@router.get("/runs", name="runs_page")
def runs_page(
    request: Request,
    store: WorkspaceStore,
    flow: Annotated[str, Query(max_length=20)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    since: Annotated[str, Query(max_length=20)] = "",
    until: Annotated[str, Query(max_length=20)] = "",
    before: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    zone = web_state(request).zone
    chosen = _flow(store, flow)
    chosen_status = _status(status)
    started_from = _day("since", since, zone)
    last_day = _day("until", until, zone)
    page = activity.recent_runs(
        store,
        flows=None if chosen is None else [chosen],
        status=chosen_status,
        started_from=started_from,
        started_until=None if last_day is None else last_day + timedelta(days=1),
        limit=RUNS_PER_PAGE,
        before=before or None,
    )
    filters = {"flow": flow, "status": status, "since": since, "until": until}
    integrations = {i.id: i.name for i in store.integrations.list()}
    view: dict[str, Any] = {
        "runs": page.runs,
        "next_before": page.next_before,
        "filters": filters,
        "filtered": any(filters.values()),
        "flows": [
            (f.id, f"{integrations.get(f.integration_id, '?')} · {f.name}")
            for f in store.flows.list()
        ],
        "statuses": [s.value for s in RunStatus],
        "paged": bool(before),
    }
    return render(page_context(request), "runs.html", view)


@router.get("/runs/{run_id}", name="run_page")
def run_page(
    request: Request,
    store: WorkspaceStore,
    run_id: str,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    log = activity.run_log(store, run_id, limit=RECORDS_PER_PAGE, after=after)
    run = log.run
    flow = store.flows.get(run.flow_id)
    own = {kind: run.counts.get(kind, 0) for kind in KINDS}
    entities = {flow.entity if flow else run.flow: own, **entity_counts(run.counts)}
    duration = int((run.finished_at - run.started_at).total_seconds()) if run.finished_at else None
    view = {
        "run": run,
        "entities": entities,
        "kinds": KINDS,
        "duration": duration,
        "outcomes": log.outcomes,
        "next_after": log.next_after,
    }
    return render(page_context(request), "run.html", view)


__all__ = ["router"]
