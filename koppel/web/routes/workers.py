"""The engine processes (`koppel worker`, `serve`, `sync`) as their heartbeats show them, for
everyone to read: whether the flows are being run at all, and who took over a silent one's runs.
`koppel workers` prints the same list on the server."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from koppel.services import workers
from koppel.store.tables import utc_now
from koppel.web.context import page_context, web_state
from koppel.web.deps import WorkspaceStore, signed_in
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)


@router.get("/workers", name="workers_page")
def workers_page(request: Request, store: WorkspaceStore) -> Response:
    settings = web_state(request).settings
    now = utc_now()
    view = {
        "workers": workers.workers(store, settings, now),
        "now": now,
        "takeover_after": settings.takeover_after_seconds,
    }
    return render(page_context(request), "workers.html", view)


__all__ = ["router"]
