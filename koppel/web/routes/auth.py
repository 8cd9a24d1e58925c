"""Signing in and out, and the first run that makes the first admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from starlette.requests import Request
from starlette.responses import Response

from koppel.accounts.errors import N_, AccountError, FirstRunClosed
from koppel.accounts.signin import end_session, sign_in, start_session
from koppel.accounts.users import PASSWORD_MIN, create_first_admin
from koppel.store import User
from koppel.web.context import page_context, web_state
from koppel.web.deps import AnonymousToken, SignedIn, anonymous, current_user, keep_anonymous_token
from koppel.web.errors import LoginRequired
from koppel.web.routes.forms import redirect, refused, safe_next
from koppel.web.security import delete_cookie, session_cookie_name, set_cookie
from koppel.web.templating import render

public = APIRouter(dependencies=[Depends(anonymous)], include_in_schema=False)
signed_in = APIRouter(include_in_schema=False)


def _signed_in_already(request: Request) -> bool:
    try:
        current_user(request)
    except LoginRequired:
        return False
    return True


def _begin_session(request: Request, user: User, target: str) -> Response:
    """A fresh session (never one the browser brought along: no fixation), then on to `target`."""
    state = web_state(request)
    name = session_cookie_name(request, state.settings)
    previous = request.cookies.get(name)
    if previous:
        end_session(state.store, previous)
    response = redirect(safe_next(target))
    set_cookie(response, request, state.settings, name, start_session(state.store, user))
    return response


@public.get("/login", name="login_page")
def login_page(request: Request, _token: AnonymousToken, next: str = "/") -> Response:
    if _signed_in_already(request):
        return redirect(safe_next(next))
    view = {"next": safe_next(next), "email": "", "first_run": web_state(request).first_run.token}
    return keep_anonymous_token(request, render(page_context(request), "login.html", view))


@public.post("/login", name="login")
def login(
    request: Request,
    _token: AnonymousToken,
    email: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    state = web_state(request)
    address = request.client.host if request.client else "unknown"
    try:
        user = sign_in(state.store, state.policy, email=email, password=password, address=address)
    except AccountError as error:
        view = {"next": safe_next(next), "email": email, "first_run": None}
        return keep_anonymous_token(request, refused(request, "login.html", view, error))
    return _begin_session(request, user, next)


@signed_in.post("/logout", name="logout")
def logout(request: Request, current: SignedIn) -> Response:
    state = web_state(request)
    if current.session_token:
        end_session(state.store, current.session_token)
    response = redirect("/login", "signed-out")
    delete_cookie(response, request, state.settings, session_cookie_name(request, state.settings))
    return response


def _first_run_view(request: Request, token: str) -> dict[str, object]:
    if web_state(request).first_run.token is None:
        raise FirstRunClosed(N_("The first admin exists already; sign in instead."))
    tenants = [tenant.name for tenant in web_state(request).store.tenants.list()]
    return {
        "token": token,
        "workspace": tenants[0] if len(tenants) == 1 else "",
        "workspaces": tenants,
        "email": "",
        "name": "",
        "password_min": PASSWORD_MIN,
    }


@public.get("/first-run", name="first_run_page")
def first_run_page(request: Request, _token: AnonymousToken, token: str = "") -> Response:
    view = _first_run_view(request, token)
    return keep_anonymous_token(request, render(page_context(request), "first_run.html", view))


@public.post("/first-run", name="first_run")
def first_run(
    request: Request,
    _token: AnonymousToken,
    token: Annotated[str, Form(max_length=200)] = "",
    workspace: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    state = web_state(request)
    view = {**_first_run_view(request, token), "workspace": workspace, "email": email, "name": name}
    try:
        if not state.first_run.matches(token):
            raise FirstRunClosed(
                N_("The one-time token is not right; copy the link the server printed.")
            )
        user = create_first_admin(
            state.store, workspace=workspace, email=email, name=name, password=password
        )
    except AccountError as error:
        return keep_anonymous_token(request, refused(request, "first_run.html", view, error))
    state.first_run.consume(token)
    return _begin_session(request, user, "/")


__all__ = ["public", "signed_in"]
