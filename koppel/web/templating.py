"""Server-rendered pages: one Jinja environment, one shared context, view models only.

Every text goes through the catalogue (`_()` in templates); dates and numbers through the
locale filters (`|moment`, `|day`, `|clock`, `|weekday`, `|relative(now)`, `|amount`,
`|count`, `|duration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import HTMLResponse

from koppel.store import User
from koppel.web.i18n import (
    LANGUAGE_NAMES,
    format_amount,
    format_clock,
    format_count,
    format_day,
    format_interval,
    format_moment,
    format_relative,
    format_weekday,
    translations,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translations(context["locale"]).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, number: int) -> str:
    return translations(context["locale"]).ngettext(singular, plural, number)


@pass_context
def _moment(context: Context, value: datetime | None) -> str:
    return format_moment(value, context["locale"], context["zone"])


@pass_context
def _day(context: Context, value: datetime | None) -> str:
    return format_day(value, context["locale"], context["zone"])


@pass_context
def _clock(context: Context, value: datetime) -> str:
    return format_clock(value, context["locale"], context["zone"])


@pass_context
def _weekday(context: Context, value: datetime) -> str:
    return format_weekday(value, context["locale"], context["zone"])


@pass_context
def _relative(context: Context, value: datetime | None, now: datetime) -> str:
    return "–" if value is None else format_relative(value, now, context["locale"])


@pass_context
def _amount(context: Context, value: Decimal | float | int) -> str:
    return format_amount(value, context["locale"])


@pass_context
def _duration(context: Context, seconds: int) -> str:
    return format_interval(seconds, context["locale"])


@pass_context
def _count(context: Context, value: int) -> str:
    return format_count(value, context["locale"])


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext, ngettext=_ngettext, newstyle=True
    )
    environment.filters.update(
        moment=_moment,
        day=_day,
        clock=_clock,
        weekday=_weekday,
        relative=_relative,
        amount=_amount,
        count=_count,
        duration=_duration,
    )
    environment.globals.update(language_names=LANGUAGE_NAMES)
    return environment


ENVIRONMENT = _environment()


@dataclass(frozen=True)
class PageContext:
    """What every page shares: who is signed in, in which language, and the form token."""

    request: Request
    locale: str
    zone: ZoneInfo
    csrf_token: str
    user: User | None = None
    workspace: str | None = None
    notice: str | None = None
    """A translated message after a change (POST, redirect, GET)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "locale": self.locale,
            "zone": self.zone,
            "csrf_token": self.csrf_token,
            "user": self.user,
            "workspace": self.workspace,
            "notice": self.notice,
            "path": self.request.url.path,
        }


def render(
    page: PageContext, template: str, view: Mapping[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    body = ENVIRONMENT.get_template(template).render({**page.as_dict(), **(view or {})})
    return HTMLResponse(body, status_code=status)


__all__ = ["ENVIRONMENT", "PageContext", "render"]
