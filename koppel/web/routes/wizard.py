"""The setup wizard under /setup (admins): applications, connections (with the OAuth round trip
and a test each), flows, settings, a dry run, activation. Each step posts, and its page says
what is wrong and how to fix it; the draft is kept per user (`WebState.setup_drafts`) and the
integration is written only on activation (koppel.services.wizard says what is stored when).

The OAuth callback (`/setup/authorized`) is also where "Authorise again" on the connections
page comes back to.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from koppel.connectors.registry import APPLICATIONS
from koppel.engine.runner import FlowRunner
from koppel.errors import N_, ErrorCategory, KoppelError, validation_message
from koppel.services import authorization, wizard
from koppel.services.connections import ConnectionCheck
from koppel.services.errors import InvalidRequest, NotFound
from koppel.services.wizard import SetupDraft
from koppel.store import Flow
from koppel.web.context import CurrentUser, page_context, web_state
from koppel.web.deps import Admin, Runner, admin_user
from koppel.web.errors import problem_for
from koppel.web.routes import hooks
from koppel.web.routes.connections import HINTS
from koppel.web.routes.forms import redirect
from koppel.web.templating import render

logger = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(admin_user)], include_in_schema=False)
CALLBACK_PATH = "/setup/authorized"
Text = Annotated[str, Form(max_length=2000)]

STEPS = (
    ("applications", "/setup"),
    ("connections", "/setup/connections"),
    ("flows", "/setup/flows"),
    ("settings", "/setup/settings"),
    ("dry-run", "/setup/dry-run"),
)


def _draft(request: Request, current: CurrentUser) -> SetupDraft:
    return web_state(request).setup_drafts.setdefault(current.user.id, SetupDraft())


def _page(
    request: Request, current: CurrentUser, step: str, view: dict[str, Any], status: int = 200
) -> Response:
    draft = _draft(request, current)
    base = {
        "step": step,
        "steps": STEPS,
        "draft": draft,
        "applications": APPLICATIONS,
    }
    return render(page_context(request), f"setup_{step}.html", {**base, **view}, status=status)


def _problem(request: Request, error: KoppelError) -> dict[str, Any]:
    # The wizard's errors say what to fix (an address refused and why): shown as they are.
    problem = problem_for(error, page_context(request).locale, for_page=False)
    return {"problem": problem.detail, "problem_kind": problem.kind, "_status": problem.status}


def _with_problem(
    request: Request, current: CurrentUser, step: str, view: dict[str, Any], error: KoppelError
) -> Response:
    found = _problem(request, error)
    status = found.pop("_status")
    return _page(request, current, step, {**view, **found}, status=status)


# -- 1. applications ---------------------------------------------------------------------


@router.get("/setup", name="setup_page")
def setup_page(request: Request, current: Admin) -> Response:
    return _page(request, current, "applications", {"offered": wizard.offered_applications()})


@router.post("/setup/applications", name="setup_applications")
async def setup_applications(request: Request, current: Admin) -> Response:
    form = await request.form()
    chosen = [str(v) for v in form.getlist("application")]
    try:
        _draft(request, current).applications = wizard.choose_applications(chosen)
    except KoppelError as error:
        view = {"offered": wizard.offered_applications()}
        return _with_problem(request, current, "applications", view, error)
    return redirect("/setup/connections")


# -- 2. connections ----------------------------------------------------------------------


def _connections_view(request: Request, current: CurrentUser, **extra: Any) -> dict[str, Any]:
    draft = _draft(request, current)
    stored = {
        application: current.store.connections.get(connection_id)
        for application, connection_id in draft.connections.items()
    }
    return {
        "stored": stored,
        "checks": {},
        "companies": {},
        "entered": {},
        "login": {},
        **extra,
    }


KEY_REFUSED = N_(
    "The application refused the key: copy it again from the application, and check that it "
    "has read and write access."
)
"""The hint for an application that logs in with a key (nothing to authorise there)."""


def _check_view(check: ConnectionCheck) -> dict[str, Any]:
    info = APPLICATIONS.get(check.application)
    hint = HINTS.get(check.category) if check.category else None
    if check.category is ErrorCategory.AUTHORISATION and info and not info.authorised:
        hint = KEY_REFUSED
    return {"check": check, "hint": hint}


@router.get("/setup/connections", name="setup_connections")
def setup_connections(request: Request, current: Admin) -> Response:
    return _page(request, current, "connections", _connections_view(request, current))


@router.post("/setup/connections/{application}", name="setup_connect")
async def setup_connect(
    request: Request, current: Admin, application: str, base_url: Text = ""
) -> Response:
    info = APPLICATIONS.get(application)
    draft = _draft(request, current)
    if info is None or application not in draft.applications:
        raise NotFound(f"application {application!r} is not being set up; choose it in step 1")
    form = await request.form()
    credentials = {f.name: str(form.get(f.name) or "").strip() for f in info.fields}
    entered = {application: {"base_url": base_url}}
    settings = web_state(request).settings
    try:
        if info.authorised:
            connection = await wizard.prepare_authorisation(
                current.store,
                draft,
                current.user.tenant_id,
                application,
                base_url,
                credentials,
                allowed=settings.networks_allowed,
            )
            draft.connections[application] = connection.id
            draft.tested_as(application, False)
            redirect_uri = str(request.url_for("setup_authorized"))
            started = authorization.start(current.store, connection, redirect_uri)
            # A link, not a redirect: the page's form-action 'self' stops a form's redirect
            # to another site, and a link the person follows is plain to see.
            view = _connections_view(request, current, login={application: started.url})
            return _page(request, current, "connections", view)
        check, stored = await wizard.connect_with_key(
            current.store,
            current.user.tenant_id,
            application,
            base_url,
            credentials,
            allowed=settings.networks_allowed,
        )
    except KoppelError as error:
        view = _connections_view(request, current, entered=entered, failed=application)
        return _with_problem(request, current, "connections", view, error)
    if stored is not None:
        draft.connections[application] = stored.id
    else:
        draft.connections.pop(application, None)
    draft.tested_as(application, check.works)
    view = _connections_view(
        request, current, entered=entered, checks={application: _check_view(check)}
    )
    return _page(request, current, "connections", view, status=200 if check.works else 422)


@router.get(CALLBACK_PATH, name="setup_authorized")
async def setup_authorized(
    request: Request,
    current: Admin,
    state: str = "",
    code: str | None = None,
    error: str | None = None,
) -> Response:
    """The login page's answer (the state is checked by `authorization.complete`)."""
    draft = _draft(request, current)
    try:
        result = await wizard.authorised(current.store, draft, state=state, code=code, error=error)
    except KoppelError as refused:
        if not draft.applications:
            raise
        view = _connections_view(request, current, failed="accountview")
        return _with_problem(request, current, "connections", view, refused)
    connection = current.store.connections.get_by_name(current.user.tenant_id, result.connection)
    assert connection is not None
    if connection.id not in draft.connection_ids():
        return redirect("/connections", "authorised")
    view = _connections_view(
        request, current, companies={connection.application.value: result.companies}
    )
    return _page(request, current, "connections", view)


@router.post("/setup/connections/{application}/company", name="setup_company")
async def setup_company(
    request: Request, current: Admin, application: str, company_id: Text = ""
) -> Response:
    draft = _draft(request, current)
    connection_id = draft.connections.get(application)
    connection = current.store.connections.get(connection_id) if connection_id else None
    if connection is None:
        raise NotFound(f"no {application} connection is being set up; enter it first")
    try:
        check = await wizard.choose_company(current.store, connection, company_id)
    except KoppelError as error:
        view = _connections_view(request, current, failed=application)
        return _with_problem(request, current, "connections", view, error)
    draft.tested_as(application, check.works)
    view = _connections_view(request, current, checks={application: _check_view(check)})
    return _page(request, current, "connections", view, status=200 if check.works else 422)


# -- 3. flows ----------------------------------------------------------------------------


@router.get("/setup/flows", name="setup_flows")
def setup_flows(request: Request, current: Admin) -> Response:
    offered = wizard.offered_flows(_draft(request, current))
    return _page(request, current, "flows", {"offered": offered})


@router.post("/setup/flows", name="setup_choose_flows")
async def setup_choose_flows(request: Request, current: Admin) -> Response:
    draft = _draft(request, current)
    offered = wizard.offered_flows(draft)
    form = await request.form()
    chosen = {str(v) for v in form.getlist("flow")}
    draft.flows = tuple(f.key for f in offered if f.key in chosen)
    if not draft.flows:
        view = {
            "offered": offered,
            "problem": "Choose at least one flow.",
            "problem_kind": "invalid",
        }
        return _page(request, current, "flows", view, status=422)
    return redirect("/setup/settings")


# -- 4. settings -------------------------------------------------------------------------


async def _settings_view(request: Request, current: CurrentUser) -> dict[str, Any]:
    draft = _draft(request, current)
    lists = await wizard.code_lists(current.store, draft)
    return {
        "lists": lists,
        "settings": draft.settings,
        "schedules": wizard.SCHEDULES,
        "product_fields": wizard.product_send_rules(draft),
        "create_only": wizard.create_only_fields(draft),
    }


@router.get("/setup/settings", name="setup_settings")
async def setup_settings(request: Request, current: Admin) -> Response:
    return _page(request, current, "settings", await _settings_view(request, current))


@router.post("/setup/settings", name="setup_save_settings")
async def setup_save_settings(request: Request, current: Admin) -> Response:
    draft = _draft(request, current)
    form = await request.form()
    text = {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}
    settings = draft.settings
    for name in (
        "employee_number",
        "default_customer",
        "shipping_article_code",
        "document_type",
        "stock_calculation",
        "stock_warehouses",
        "sell_price",
    ):
        settings[name] = text.get(name, settings[name])
    settings["manage_stock"] = "manage_stock" in form
    settings["accountview_prices_include_vat"] = text.get("order_prices") == "incl_vat"
    settings["create_only"] = sorted(
        rule.target
        for rule in wizard.product_send_rules(draft)
        if f"update.{rule.target}" not in form
    )
    for table in ("payment_terms", "payment_methods"):
        prefix = f"{table}."
        settings[table] = {
            k.removeprefix(prefix): v for k, v in text.items() if k.startswith(prefix)
        }
    if text.get("schedule") in wizard.SCHEDULES:
        draft.schedule = text["schedule"]
    try:
        wizard.draft_config(current.store, current.workspace, draft)
    except ValidationError as error:
        view = await _settings_view(request, current)
        refused = InvalidRequest(validation_message(error))
        return _with_problem(request, current, "settings", view, refused)
    except KoppelError as error:
        view = await _settings_view(request, current)
        return _with_problem(request, current, "settings", view, error)
    return redirect("/setup/dry-run")


# -- 5. dry run, activation --------------------------------------------------------------


@router.get("/setup/dry-run", name="setup_dry_run_page")
def setup_dry_run_page(request: Request, current: Admin) -> Response:
    return _page(request, current, "dry-run", {"report": None})


@router.post("/setup/dry-run", name="setup_dry_run")
async def setup_dry_run(request: Request, current: Admin) -> Response:
    draft = _draft(request, current)
    system = web_state(request).store
    try:
        report = await wizard.dry_run(system, current.workspace, draft)
    except KoppelError as error:
        return _with_problem(request, current, "dry-run", {"report": None}, error)
    return _page(request, current, "dry-run", {"report": report})


async def _first_runs(runner: FlowRunner, flows: list[Flow]) -> None:
    """The first run of each flow now, in order (an order needs its customer first)."""
    for flow in flows:
        try:
            await runner.run(flow.id)
        except Exception:  # the run's own row says why; the schedules go on
            logger.exception("the first run of flow %s failed", flow.name)


@router.post("/setup/activate", name="setup_activate")
async def setup_activate(request: Request, current: Admin, runner: Runner) -> Response:
    state = web_state(request)
    draft = _draft(request, current)
    try:
        flows = wizard.activate(
            state.store, current.workspace, draft, actor=f"user:{current.user.email}"
        )
    except KoppelError as error:
        return _with_problem(request, current, "dry-run", {"report": None}, error)
    state.setup_drafts.pop(current.user.id, None)
    hooks.follow_flows(state)
    if runner is not None:
        task = asyncio.create_task(_first_runs(runner, flows))
        state.background.add(task)
        task.add_done_callback(state.background.discard)
    return redirect("/", "activated")


__all__ = ["CALLBACK_PATH", "router"]
