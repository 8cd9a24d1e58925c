"""The one place where errors become HTTP answers.

A `KoppelError`'s category decides the status. Under `/api/` the answer is a problem document
(RFC 9457, `application/problem+json`); elsewhere a page in the user's language. A request
without a valid session goes to the sign-in page (pages) or gets 401 (API).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from koppel.accounts.errors import N_
from koppel.errors import ErrorCategory, KoppelError
from koppel.services import webhooks
from koppel.web.context import page_context, request_locale
from koppel.web.i18n import translate
from koppel.web.templating import render

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
PROBLEM_TYPE = "urn:koppel:problem:"

STATUS_FOR_CATEGORY = {
    ErrorCategory.CONFIGURATION: 422,
    ErrorCategory.RECORD: 422,
    ErrorCategory.AUTHORISATION: 502,
    ErrorCategory.CONNECTION: 502,
    ErrorCategory.CONFLICT: 409,
    ErrorCategory.NOT_FOUND: 404,
    ErrorCategory.PERMISSION: 403,
    ErrorCategory.INTERNAL: 500,
}
"""A category's HTTP status. AUTHORISATION is an application refusing Koppel's credentials
(a connection to authorise again), not the user's: hence 502, like an unreachable application."""

TITLES = {
    400: N_("Bad request"),
    401: N_("Sign-in required"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed"),
    409: N_("Not possible now"),
    422: N_("Please check your input"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    502: N_("An application did not answer as expected"),
}
DETAILS = {
    401: N_("Sign in, or send an API token: Authorization: Bearer kpl_..."),
    404: N_("This page does not exist, or it belongs to another workspace."),
    405: N_("This page cannot be used that way."),
    422: N_("Some fields of the request are missing or not valid."),
    500: N_("Koppel could not finish this. The server's log says why; please try again later."),
}


class LoginRequired(KoppelError):
    """No valid session or API token; the sign-in page (or 401) is the answer."""

    category = ErrorCategory.PERMISSION
    problem = "login_required"


@dataclass(frozen=True)
class Problem:
    status: int
    kind: str
    """The problem's type: a category, or a narrower kind (csrf, login_required)."""
    detail: str
    errors: list[dict[str, Any]] | None = None


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def problem_for(error: KoppelError, locale: str, *, for_page: bool = True) -> Problem:
    """The status and the message in the user's language. An error without a catalogue entry
    keeps its English message in the API; a page shows the status's own text when there is one
    (a store's "user 12 not found" says nothing a person needs)."""
    status = 401 if isinstance(error, LoginRequired) else STATUS_FOR_CATEGORY[error.category]
    kind = str(getattr(error, "problem", error.category.value))
    message_id = getattr(error, "message_id", None)
    if isinstance(message_id, str):
        detail = translate(locale, message_id, **getattr(error, "params", {}))
    elif (for_page or isinstance(error, LoginRequired)) and status in DETAILS:
        detail = translate(locale, DETAILS[status])
    else:
        detail = str(error)
    return Problem(status, kind, detail)


def respond(request: Request, problem: Problem) -> Response:
    locale = request_locale(request)
    title = translate(locale, TITLES.get(problem.status, TITLES[400]))
    if is_api(request):
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE + problem.kind,
            "title": title,
            "status": problem.status,
            "detail": problem.detail,
            "instance": request.url.path,
        }
        if problem.errors is not None:
            body["errors"] = problem.errors
        headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
        return JSONResponse(
            body, status_code=problem.status, media_type="application/problem+json", headers=headers
        )
    view = {
        "title": title,
        "detail": problem.detail,
        "kind": problem.kind,
        "status": problem.status,
    }
    return render(page_context(request), "error.html", view, status=problem.status)


def _login_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    location = (
        "/login" if request.method != "GET" or target == "/" else "/login?next=" + quote(target)
    )
    return RedirectResponse(location, status_code=303)


async def koppel_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, KoppelError)
    if isinstance(error, LoginRequired) and not is_api(request):
        return _login_redirect(request)
    problem = problem_for(error, request_locale(request), for_page=not is_api(request))
    return respond(request, problem)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    locale = request_locale(request)
    detail = DETAILS.get(error.status_code)
    text = translate(locale, detail) if detail else str(error.detail)
    response = respond(request, Problem(error.status_code, "http", text))
    if error.headers:
        response.headers.update(error.headers)
    return response


async def validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    fields = [
        {"field": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
        for item in error.errors()
    ]
    detail = translate(request_locale(request), DETAILS[422])
    return respond(request, Problem(422, ErrorCategory.CONFIGURATION.value, detail, fields))


async def unexpected_error(request: Request, error: Exception) -> Response:
    path = webhooks.masked(request.url.path)
    logger.error("unexpected error on %s %s", request.method, path, exc_info=error)
    detail = translate(request_locale(request), DETAILS[500])
    return respond(request, Problem(500, ErrorCategory.INTERNAL.value, detail))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KoppelError, koppel_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)


__all__ = [
    "STATUS_FOR_CATEGORY",
    "LoginRequired",
    "Problem",
    "install_error_handlers",
    "is_api",
    "problem_for",
    "respond",
]
