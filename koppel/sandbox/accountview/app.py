"""The HTTP face of the sandbox: AccountView.Net's Web API v3 under /api/v3 and its login page."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from koppel.sandbox.accountview.auth import SCOPES, OAuthError
from koppel.sandbox.accountview.dictionary import business_objects
from koppel.sandbox.accountview.errors import ApiError, RowError
from koppel.sandbox.accountview.reads import bo_tables, business_object, parse_read, run_read
from koppel.sandbox.accountview.writes import parse_post

if TYPE_CHECKING:
    from koppel.sandbox.accountview.sandbox import AccountViewSandbox

API = "/api/v3"
_DENIED = "Authorization has been denied for this request."


class CaseInsensitivePaths:
    """Clients write `/AccountViewData` and `/Companies`: route on the lower-case path, without
    a trailing slash (assumptions.TRAILING_SLASH_IGNORED)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].lower()
            scope = dict(scope, path=path.rstrip("/") or "/")
        await self.app(scope, receive, send)


def kind_of(scope: Scope) -> str:
    """The request log's name of a call: "GET accountviewdata AK1", "POST token"."""
    path = scope["path"].lower().rstrip("/").rsplit("/", 1)[-1]
    kind = f"{scope['method']} {path}"
    if path in ("accountviewdata", "accountviewsystemdata") and scope["method"] == "GET":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        bo = next((v[0] for k, v in query.items() if k.lower() == "businessobject"), "")
        kind += f" {bo.upper()}"
    return kind


def _params(request: Request) -> dict[str, str]:
    return {key.lower(): value for key, value in request.query_params.multi_items()}


def build_app(sandbox: AccountViewSandbox) -> FastAPI:
    app = FastAPI(
        title="AccountView.Net Web API v3 (Koppel sandbox)",
        docs_url="/_admin/docs",
        redirect_slashes=False,
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            message = f"No HTTP resource was found that matches the request URI '{request.url}'."
        elif error.status_code == 405:
            message = f"The requested resource does not support http method '{request.method}'."
        else:
            message = str(error.detail)
        return JSONResponse(ApiError(error.status_code, message).body(), error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return JSONResponse(ApiError(400, f"The request is invalid: {problems}").body(), 400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(ApiError(500, "An error has occurred.").body(), status_code=500)

    @app.exception_handler(OAuthError)
    async def oauth_error(request: Request, error: OAuthError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    def authorize(request: Request, *, company: bool = True) -> str:
        """Check the bearer token; return the company Id of x-company when one is needed."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not sandbox.auth.access_valid(token.strip()):
            raise ApiError(401, _DENIED)
        if not company:
            return ""
        company_id = request.headers.get("x-company", "").strip()
        if not company_id:
            raise ApiError(400, "The x-company header (the company Id) is required")
        if company_id not in {c["Id"] for c in sandbox.companies()}:
            raise ApiError(403, f"No access to company '{company_id}'")
        return company_id

    @app.get("/ams/authorize.aspx", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        params = _params(request)
        if params.get("response_type") != "code":
            raise ApiError(400, "response_type must be code")
        app_ = sandbox.auth.client(params.get("client_id", ""))
        if app_ is None or not params.get("redirect_uri"):
            raise ApiError(400, "Unknown client_id or missing redirect_uri")
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "scope", "state")
        )
        companies = "".join(
            f"<li>{html.escape(c['Description'])}</li>" for c in sandbox.companies()
        )
        page = (
            "<!doctype html><title>AccountView.Net sandbox login</title>"
            "<h1>AccountView.Net (sandbox)</h1>"
            f"<p>The app <b>{html.escape(app_.name)}</b> asks to read and update your "
            f"administrations:</p><ul>{companies}</ul>"
            f'<form method="post">{hidden}<label>User <input name="username" value="demo">'
            '</label> <button type="submit" name="decision" value="allow">Allow</button> '
            '<button type="submit" name="decision" value="deny">Deny</button></form>'
        )
        return HTMLResponse(page)

    @app.post("/ams/authorize.aspx")
    async def login_submit(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        redirect_uri = form.get("redirect_uri", "")
        if sandbox.auth.client(form.get("client_id", "")) is None or not redirect_uri:
            raise ApiError(400, "Unknown client_id or missing redirect_uri")
        answer = {"state": form.get("state", "")}
        if form.get("decision") == "allow":
            answer["code"] = sandbox.auth.grant_code(
                form["client_id"], redirect_uri, form.get("scope") or SCOPES
            )
        else:
            answer["error"] = "access_denied"
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(answer)}", status_code=302)

    @app.post(f"{API}/token")
    async def token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        return JSONResponse(sandbox.auth.token(form), headers={"cache-control": "no-store"})

    @app.get(f"{API}/companies")
    def companies(request: Request) -> list[dict[str, str]]:
        authorize(request, company=False)
        return sandbox.companies()

    @app.get(f"{API}/accountviewsystembusinessobjects")
    def system_business_objects(request: Request) -> list[dict[str, Any]]:
        authorize(request)
        return [
            {
                "Code": bo.code,
                "Description": bo.description,
                "InsertAllowed": bo.insert_allowed,
                "UpdateAllowed": bo.update_allowed,
                "DeleteAllowed": bo.delete_allowed,
            }
            for bo in business_objects().values()
        ]

    @app.get(f"{API}/accountviewfields")
    def fields(request: Request) -> dict[str, Any]:
        """Koppel's own shape (assumptions.OWN_FIELDS_ENDPOINT)."""
        authorize(request)
        bo = business_object(_params(request).get("businessobject"))
        rows = [f.dct_fld() for table in bo_tables(bo) for f in table.fields.values()]
        return {"DCT_FLD": [dict(row, DCT_FLD_Id=index) for index, row in enumerate(rows)]}

    @app.get(f"{API}/accountviewsystemdata")
    def read_system_data(request: Request) -> dict[str, Any]:
        company = authorize(request)
        read = parse_read(_params(request), system=True)
        with sandbox.store.transaction() as conn:
            return run_read(conn, company, read, sandbox.past_last_page)

    @app.get(f"{API}/accountviewdata")
    def read_data(request: Request) -> dict[str, Any]:
        company = authorize(request)
        read = parse_read(_params(request))
        with sandbox.store.transaction() as conn:
            return run_read(conn, company, read, sandbox.past_last_page)

    @app.post(f"{API}/accountviewdata")
    async def write_data(request: Request) -> dict[str, Any]:
        company = authorize(request)
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise ApiError(400, "The body is not valid JSON") from None
        post = parse_post(body)
        allowed = post.bo.insert_allowed or post.bo.update_allowed
        if not allowed:
            raise ApiError(400, f"Business object {post.bo.code} cannot be changed via the API")
        try:
            return sandbox.post(company, post)
        except RowError as error:
            raise ApiError(sandbox.validation_error_status, str(error)) from None

    return app


__all__ = ["API", "CaseInsensitivePaths", "build_app", "kind_of"]
