"""The connections: each one's health, and (admins) a test that logs in and makes one call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from koppel.accounts.errors import N_
from koppel.errors import ErrorCategory, NotFound
from koppel.services import authorization, dashboard, workers
from koppel.services.connections import ConnectionCheck, check_connection
from koppel.store import Store
from koppel.web.context import page_context, web_state
from koppel.web.deps import Admin, WorkspaceStore, signed_in
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)

HINTS = {
    ErrorCategory.CONNECTION: N_(
        "Koppel could not reach the application: check its address and that the service is up."
    ),
    ErrorCategory.AUTHORISATION: N_(
        "The application refused Koppel's credentials: enter them again, or authorise the "
        "connection again."
    ),
    ErrorCategory.CONFIGURATION: N_(
        "The connection's settings are not valid: fix them in the integration file and apply it."
    ),
}
"""What to do, in the user's language, for each way a test fails."""


def _view(
    request: Request,
    store: Store,
    check: ConnectionCheck | None = None,
    tested: int | None = None,
) -> dict[str, Any]:
    hint = HINTS.get(check.category) if check and check.category else None
    return {
        "connections": dashboard.connections_health(store),
        # A connection's health tells little while no engine process makes the calls.
        "live_workers": workers.live(workers.workers(store, web_state(request).settings)),
        "check": check,
        "tested": tested,
        "hint": hint,
    }


@router.get("/connections", name="connections_page")
def connections_page(request: Request, store: WorkspaceStore) -> Response:
    return render(page_context(request), "connections.html", _view(request, store))


@router.post("/connections/{connection_id}/test", name="test_connection")
async def test_connection(request: Request, current: Admin, connection_id: int) -> Response:
    connection = current.store.connections.get(connection_id)
    if connection is None:  # another workspace's, or none: not found, before any call
        raise NotFound(f"connection {connection_id} not found")
    check = await check_connection(current.store, connection)
    view = _view(request, current.store, check, connection.id)
    return render(page_context(request), "connections.html", view)


@router.post("/connections/{connection_id}/authorize", name="authorize_connection")
def authorize_connection(request: Request, current: Admin, connection_id: int) -> Response:
    """ "Authorise again": to the application's login page, whose answer comes back to the
    setup wizard's callback (the grant is stored there, and this page says so)."""
    connection = current.store.connections.get(connection_id)
    if connection is None:
        raise NotFound(f"connection {connection_id} not found")
    redirect_uri = str(request.url_for("setup_authorized"))
    started = authorization.start(current.store, connection, redirect_uri)
    # A link, not a redirect: the page's form-action 'self' stops a form's redirect elsewhere.
    view = {**_view(request, current.store, tested=connection.id), "login_url": started.url}
    return render(page_context(request), "connections.html", view)


__all__ = ["router"]
