"""The HTTP face of the sandbox: the assumed Parts Pim REST API under /api/v1.

Routes are thin: parse, call the store, shape the answer. Every error, including FastAPI's own
404/405, comes back in the contract's `{"errors": [...]}` shape.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from koppel.sandbox.partspim.store import ApiError, PartsPimStore, invalid

API_PREFIX = "/api/v1"
API_KEY_HEADER = "X-Api-Key"


def kind_of(scope: Scope) -> str:
    """Request kinds for the request log: "GET products", "PATCH products/:id", "PUT stock"."""
    path: str = scope["path"]
    parts = path.removeprefix(API_PREFIX).strip("/").split("/")
    target = parts[0] if parts[0] else "/"
    if len(parts) > 1:
        target += "/:id"
    return f"{scope['method']} {target}"


def build_app(store: PartsPimStore) -> FastAPI:
    """The FastAPI app (without fault injection; the sandbox wraps it)."""
    app = FastAPI(title="Parts Pim API (Koppel sandbox)", version="1", openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if error.status_code == 404 else "http_error"
        body = {"errors": [{"field": None, "code": code, "message": str(error.detail)}]}
        return JSONResponse(body, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def parameter_error(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": str(e["loc"][-1]), "code": "invalid", "message": str(e["msg"])}
            for e in error.errors()
        ]
        return JSONResponse({"errors": errors}, status_code=422)

    def authenticate(request: Request) -> None:
        given = request.headers.get(API_KEY_HEADER, "")
        if not hmac.compare_digest(given.encode(), store.api_key.encode()):
            message = "missing or invalid API key (header X-Api-Key)"
            raise ApiError(401, [{"field": None, "code": "unauthorized", "message": message}])

    async def json_body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise invalid(None, "the body must be valid JSON", "invalid_json") from None

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticate)])

    @api.get("/account")
    def account() -> dict[str, Any]:
        return {"company": store.company, "environment": "sandbox", "api_version": "v1"}

    @api.get("/webhooks")
    def list_webhooks() -> dict[str, Any]:
        return {"data": store.webhooks(), "next_cursor": None}

    @api.post("/webhooks", status_code=201)
    async def create_webhook(request: Request) -> dict[str, Any]:
        return store.create_webhook(await json_body(request))

    @api.delete("/webhooks/{webhook_id}", status_code=204)
    def delete_webhook(webhook_id: int) -> Response:
        store.delete_webhook(webhook_id)
        return Response(status_code=204)

    @api.put("/stock")
    async def put_stock(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        rows = body.get("data") if isinstance(body, dict) else None
        return {"data": store.upsert_stock(rows)}

    @api.get("/{resource}")
    def list_records(resource: str, request: Request) -> Response:
        body = store.list_page(resource, dict(request.query_params))
        return Response(body, media_type="application/json")

    @api.get("/{resource}/{record_id}")
    def get_record(resource: str, record_id: int) -> dict[str, Any]:
        return store.get(resource, record_id)

    @api.post("/{resource}", status_code=201)
    async def create_record(resource: str, request: Request) -> dict[str, Any]:
        if resource == "stock":
            raise ApiError(405, [{"field": None, "code": "http_error", "message": "use PUT"}])
        return store.create(resource, await json_body(request))

    @api.patch("/{resource}/{record_id}")
    async def update_record(resource: str, record_id: int, request: Request) -> dict[str, Any]:
        if resource == "stock":
            raise ApiError(405, [{"field": None, "code": "http_error", "message": "use PUT"}])
        return store.update(resource, record_id, await json_body(request))

    app.include_router(api)
    return app


__all__ = ["API_KEY_HEADER", "API_PREFIX", "build_app", "kind_of"]
