"""One's own account, for every role: password, language, API tokens, signing out elsewhere."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from starlette.requests import Request
from starlette.responses import Response

from koppel.accounts.errors import AccountError
from koppel.accounts.signin import TOKEN_LIFETIMES_DAYS, issue_token, revoke_token
from koppel.accounts.users import (
    LOCALES,
    PASSWORD_MIN,
    change_password,
    parse_locale,
    set_language,
)
from koppel.web.context import CurrentUser, page_context
from koppel.web.deps import SignedIn, signed_in
from koppel.web.routes.forms import redirect, refused
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)


def _account_view(current: CurrentUser) -> dict[str, Any]:
    return {
        "locales": LOCALES,
        "password_min": PASSWORD_MIN,
        "sessions": len(current.store.user_sessions.list(current.user.id)),
    }


@router.get("/account", name="account_page")
def account_page(request: Request, current: SignedIn) -> Response:
    return render(page_context(request), "account.html", _account_view(current))


@router.post("/account/password", name="change_own_password")
def change_own_password(
    request: Request,
    current: SignedIn,
    current_password: Annotated[str, Form(max_length=1000)] = "",
    new_password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        change_password(
            current.store,
            current.user,
            current=current_password,
            new=new_password,
            keep_session=current.session_id,
        )
    except AccountError as error:
        return refused(request, "account.html", _account_view(current), error)
    return redirect("/account", "password-changed")


@router.post("/account/language", name="change_own_language")
def change_own_language(
    request: Request, current: SignedIn, locale: Annotated[str, Form(max_length=10)] = ""
) -> Response:
    try:
        set_language(current.store, current.user, parse_locale(locale))
    except AccountError as error:
        return refused(request, "account.html", _account_view(current), error)
    return redirect("/account", "language-changed")


def _tokens_view(current: CurrentUser, **extra: Any) -> dict[str, Any]:
    return {
        "tokens": current.store.api_tokens.list(current.user.id),
        "lifetimes": TOKEN_LIFETIMES_DAYS,
        "issued": None,
        "form": {"name": "", "days": 90},
        **extra,
    }


@router.get("/account/tokens", name="tokens_page")
def tokens_page(request: Request, current: SignedIn) -> Response:
    return render(page_context(request), "tokens.html", _tokens_view(current))


@router.post("/account/tokens", name="create_token")
def create_token(
    request: Request,
    current: SignedIn,
    name: Annotated[str, Form(max_length=200)] = "",
    days: Annotated[int, Form()] = 90,
) -> Response:
    """The new token is shown on this answer, once: it is not stored, so no redirect can show it."""
    try:
        issued = issue_token(current.store, current.user, name=name, days=days)
    except AccountError as error:
        view = _tokens_view(current, form={"name": name, "days": days})
        return refused(request, "tokens.html", view, error)
    return render(page_context(request), "tokens.html", _tokens_view(current, issued=issued))


@router.post("/account/tokens/{token_id}/revoke", name="revoke_own_token")
def revoke_own_token(current: SignedIn, token_id: int) -> Response:
    revoke_token(current.store, current.user, token_id)
    return redirect("/account/tokens", "token-revoked")


__all__ = ["router"]
