"""What the pages' forms share: showing an account rule's refusal in the user's language, and
the safe place to go after signing in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from koppel.errors import KoppelError
from koppel.web.context import page_context
from koppel.web.errors import problem_for
from koppel.web.templating import render


def refused(
    request: Request, template: str, view: Mapping[str, Any], error: KoppelError
) -> HTMLResponse:
    """The form's page again, with the rule that refused it and the status of its category
    (an error with a catalogue entry, `message_id`, in the user's language)."""
    page = page_context(request)
    problem = problem_for(error, page.locale)
    view = {**view, "error": problem.detail, "error_kind": problem.kind}
    return render(page, template, view, status=problem.status)


def redirect(path: str, notice: str | None = None) -> RedirectResponse:
    """POST, redirect, GET: the answer to a change that worked."""
    if notice:
        path += f"{'&' if '?' in path else '?'}notice={notice}"
    return RedirectResponse(path, status_code=303)


def safe_next(target: str | None) -> str:
    """Only a path of this site: never `//host` or `https://host` (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


__all__ = ["redirect", "refused", "safe_next"]
