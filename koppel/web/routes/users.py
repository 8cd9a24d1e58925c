"""The workspace's users, for its admins: add one, change a role, remove one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from starlette.requests import Request
from starlette.responses import Response

from koppel.accounts.errors import AccountError
from koppel.accounts.users import PASSWORD_MIN, add_user, change_role, parse_role, remove_user
from koppel.store import Role
from koppel.web.context import CurrentUser, page_context
from koppel.web.deps import Admin, admin_user
from koppel.web.routes.forms import redirect, refused
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(admin_user)], include_in_schema=False)


def _view(current: CurrentUser, **form: Any) -> dict[str, Any]:
    return {
        "users": current.store.users.list(current.user.tenant_id, limit=1000),
        "roles": [role.value for role in Role],
        "password_min": PASSWORD_MIN,
        "form": {"email": "", "name": "", "role": Role.VIEWER.value, **form},
    }


@router.get("/users", name="users_page")
def users_page(request: Request, current: Admin) -> Response:
    return render(page_context(request), "users.html", _view(current))


@router.post("/users", name="create_user")
def create_user(
    request: Request,
    current: Admin,
    email: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = Role.VIEWER.value,
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        add_user(
            current.store,
            current.user,
            email=email,
            name=name,
            password=password,
            role=parse_role(role),
        )
    except AccountError as error:
        view = _view(current, email=email, name=name, role=role)
        return refused(request, "users.html", view, error)
    return redirect("/users", "user-created")


@router.post("/users/{user_id}/role", name="change_user_role")
def change_user_role(
    request: Request,
    current: Admin,
    user_id: int,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    target = current.store.users.require(user_id)  # another workspace's user: 404 first
    try:
        change_role(current.store, current.user, target.id, parse_role(role))
    except AccountError as error:
        return refused(request, "users.html", _view(current), error)
    return redirect("/users", "role-changed")


@router.post("/users/{user_id}/remove", name="remove_user")
def remove_user_route(request: Request, current: Admin, user_id: int) -> Response:
    try:
        removed = remove_user(current.store, current.user, user_id)
    except AccountError as error:
        return refused(request, "users.html", _view(current), error)
    if removed.id == current.user.id:
        return redirect("/login")
    return redirect("/users", "user-removed")


__all__ = ["router"]
