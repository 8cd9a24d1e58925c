"""The dashboard (the home page): per integration its flows, connections, charts and dead
letters; `/dashboard/live` is the part of it that the page fetches again every 15 seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from koppel.services import dashboard, workers
from koppel.store import Store
from koppel.web.context import page_context, web_state
from koppel.web.deps import Runner, WorkspaceStore, signed_in
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)


def _view(request: Request, store: Store, worker_here: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    state = web_state(request)
    boards = dashboard.dashboards(store, now=now, zone=state.zone)
    live = workers.live(workers.workers(store, state.settings, now))
    return {"boards": boards, "now": now, "worker_here": worker_here, "live_workers": live}


@router.get("/", name="home")
def home(request: Request, store: WorkspaceStore, runner: Runner) -> Response:
    return render(page_context(request), "home.html", _view(request, store, runner is not None))


@router.get("/dashboard/live", name="dashboard_live")
def dashboard_live(request: Request, store: WorkspaceStore, runner: Runner) -> Response:
    return render(
        page_context(request), "dashboard_body.html", _view(request, store, runner is not None)
    )


__all__ = ["router"]
