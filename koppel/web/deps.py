"""What a route may ask for: the signed-in user, the store scoped to their workspace, the runner.

Scope and permission are settled here, at one point, before a route does any work: a route that
takes `SignedIn` gets a store that sees only the user's workspace; `Admin` refuses viewers.
Routers declare `signed_in` (or `anonymous` for the sign-in pages) for all of their routes, and
both check the anti-forgery token of every state-changing request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import Response

from koppel.accounts.signin import csrf_token, session_for, user_for_token
from koppel.accounts.users import require_admin
from koppel.engine.runner import FlowRunner
from koppel.store import Store
from koppel.web.context import CurrentUser, web_state
from koppel.web.errors import LoginRequired, is_api
from koppel.web.security import (
    SAFE_METHODS,
    anonymous_cookie_name,
    new_anonymous_token,
    require_csrf,
    session_cookie_name,
    set_cookie,
)


def _bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def current_user(request: Request) -> CurrentUser:
    """The user of a valid session cookie, or (under /api/) of an API token; else LoginRequired."""
    state = web_state(request)
    bearer = _bearer_token(request) if is_api(request) else None
    session_token: str | None = None
    if bearer is not None:
        user = user_for_token(state.store, bearer)
    else:
        session_token = request.cookies.get(session_cookie_name(request, state.settings), "")
        signed = session_for(state.store, state.policy, session_token)
        user = signed.user if signed else None
    if user is None:
        raise LoginRequired("sign in first")
    tenant = state.store.tenants.get(user.tenant_id)
    current = CurrentUser(
        user=user,
        store=state.store.scoped(user.tenant_id),
        workspace=tenant.name if tenant else str(user.tenant_id),
        session_token=session_token,
        csrf_token=csrf_token(session_token) if session_token else "",
    )
    request.state.current = current
    return current


async def signed_in(
    request: Request, current: Annotated[CurrentUser, Depends(current_user)]
) -> CurrentUser:
    """A signed-in user; a browser's state-changing request must carry the session's token.
    (A request authenticated by an API token carries no cookie, so it cannot be forged.)"""
    if current.session_token is not None:
        await require_csrf(request, current.csrf_token)
    return current


def admin_user(current: Annotated[CurrentUser, Depends(signed_in)]) -> CurrentUser:
    require_admin(current.user)
    return current


def workspace_store(current: Annotated[CurrentUser, Depends(signed_in)]) -> Store:
    return current.store


def runner(request: Request) -> FlowRunner | None:
    """The engine of this process; None when `koppel serve --no-worker` left runs to workers."""
    return web_state(request).runner


async def anonymous(request: Request) -> str:
    """For the pages before sign-in: the visitor's anti-forgery token (double-submit cookie)."""
    state = web_state(request)
    token = request.cookies.get(anonymous_cookie_name(request, state.settings), "")
    if request.method not in SAFE_METHODS:
        await require_csrf(request, token)
    request.state.anonymous_csrf = token or new_anonymous_token()
    request.state.anonymous_csrf_is_new = not token
    return str(request.state.anonymous_csrf)


def keep_anonymous_token(request: Request, response: Response) -> Response:
    """Give a new visitor the cookie that their forms' token is checked against."""
    if getattr(request.state, "anonymous_csrf_is_new", False):
        state = web_state(request)
        name = anonymous_cookie_name(request, state.settings)
        set_cookie(response, request, state.settings, name, request.state.anonymous_csrf)
    return response


SignedIn = Annotated[CurrentUser, Depends(signed_in)]
Admin = Annotated[CurrentUser, Depends(admin_user)]
WorkspaceStore = Annotated[Store, Depends(workspace_store)]
Runner = Annotated[FlowRunner | None, Depends(runner)]
AnonymousToken = Annotated[str, Depends(anonymous)]

__all__ = [
    "Admin",
    "AnonymousToken",
    "Runner",
    "SignedIn",
    "WorkspaceStore",
    "admin_user",
    "anonymous",
    "current_user",
    "keep_anonymous_token",
    "runner",
    "signed_in",
    "workspace_store",
]
