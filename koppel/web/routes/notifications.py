"""The workspace's notifications, for its admins: the channels, the outbox, a test message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from koppel.services import notifications
from koppel.services.notifications import NotificationsNotSetUp
from koppel.web.context import CurrentUser, page_context
from koppel.web.deps import Admin, admin_user
from koppel.web.routes.forms import redirect, refused
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(admin_user)], include_in_schema=False)


def _view(current: CurrentUser, **extra: Any) -> dict[str, Any]:
    view = notifications.overview(current.store, current.user.tenant_id)
    return {"settings": view.settings, "recent": view.recent, "checks": [], **extra}


@router.get("/notifications", name="notifications_page")
def notifications_page(request: Request, current: Admin) -> Response:
    return render(page_context(request), "notifications.html", _view(current))


@router.post("/notifications/test", name="test_notifications")
async def test_notifications(request: Request, current: Admin) -> Response:
    try:
        checks = await notifications.test_channels(current.store, current.user.tenant_id)
    except NotificationsNotSetUp as error:
        return refused(request, "notifications.html", _view(current), error)
    if all(check.error is None for check in checks):
        return redirect("/notifications", "test-sent")
    return render(page_context(request), "notifications.html", _view(current, checks=checks))


__all__ = ["router"]
