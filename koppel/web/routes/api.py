"""The REST API, `/api/v1`: an API token (`Authorization: Bearer kpl_...`) or a session, problem
documents for errors (RFC 9457), cursor pagination. Its OpenAPI document is at
`/api/v1/openapi.json` (signed in, like every route)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from starlette.requests import Request

from koppel.store import User
from koppel.web.deps import Admin, SignedIn, signed_in
from koppel.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, paginate

PREFIX = "/api/v1"
router = APIRouter(prefix=PREFIX, dependencies=[Depends(signed_in)], tags=["api"])


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    locale: str | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role.value,
            locale=user.locale,
            created_at=user.created_at,
        )


class MeOut(UserOut):
    workspace: str


@router.get("/me", name="api_me")
def me(current: SignedIn) -> MeOut:
    """The user the token or session belongs to, and their workspace."""
    return MeOut(**UserOut.of(current.user).model_dump(), workspace=current.workspace)


@router.get("/users", name="api_users")
def users(
    current: Admin,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[UserOut]:
    """The workspace's users, by id (admins only)."""
    return paginate(
        lambda after, n: current.store.users.list(current.user.tenant_id, after_id=after, limit=n),
        cursor=cursor,
        limit=limit,
        key=lambda user: user.id,
        key_type=int,
        to_item=UserOut.of,
    )


@router.get("/users/{user_id}", name="api_user")
def user(current: Admin, user_id: int) -> UserOut:
    return UserOut.of(current.store.users.require(user_id))


@router.get("/openapi.json", name="api_openapi", include_in_schema=False)
def openapi(request: Request, _current: SignedIn) -> dict[str, Any]:
    app = request.app
    if app.openapi_schema is None:
        app.openapi_schema = get_openapi(
            title="Koppel API",
            version="1",
            description=__doc__,
            routes=[
                route
                for route in iter_route_contexts(app.routes)
                if (route.path or "").startswith(PREFIX)
            ],
        )
    return dict(app.openapi_schema)


__all__ = ["router"]
