"""A flow's mapping editor: the effective mapping as a table (everyone), a row edited with its
validation as one types, saved as a new version (admins, audited), a preview on a real source
record, and the versions: compared two at a time, one restored (admins, audited).

Everything goes through `koppel.services.mapping_editor` and `koppel.services.mappings`, the
services the REST API and the CLI use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, cast, get_args

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response

from koppel.mapping import MappingIssue
from koppel.mapping.preview import flatten
from koppel.services import mapping_editor as editor
from koppel.services import mappings
from koppel.services.checks import SIDES
from koppel.services.errors import InvalidRequest
from koppel.services.mapping_editor import MappingRefused, RuleInput, RuleKind
from koppel.store import Flow
from koppel.web.context import CurrentUser, page_context
from koppel.web.deps import Admin, Runner, SignedIn, admin_user, signed_in
from koppel.web.routes.forms import redirect, refused
from koppel.web.templating import render

pages = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
actions = APIRouter(dependencies=[Depends(admin_user)], include_in_schema=False)


def _editor_view(
    current: CurrentUser, flow: Flow, side: str | None = None, field: str | None = None
) -> dict[str, Any]:
    state = editor.mapping_editor(current.store, flow)
    editing = None
    if side in state.rows and field:
        editing = next((row for row in state.rows[side] if row.target == field), None)
    return {
        "editor": state,
        "flow": flow,
        "side": side,
        "field": field,
        "editing": editing,
        "may_edit": current.user.is_admin,
    }


@pages.get("/flows/{flow_id}/mapping", name="mapping_page")
def mapping_page(
    request: Request,
    current: SignedIn,
    flow_id: int,
    side: Annotated[str | None, Query(pattern=r"^(get|send)$")] = None,
    field: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    flow = editor.flow_of(current.store, flow_id)
    return render(page_context(request), "mapping.html", _editor_view(current, flow, side, field))


def _issues(issues: tuple[MappingIssue, ...]) -> list[dict[str, str]]:
    return [{"severity": str(i.severity), "field": i.field, "message": i.message} for i in issues]


@dataclass(frozen=True)
class RuleForm:
    side: str
    target: str
    rule: RuleInput
    reset: bool


async def _rule_form(request: Request) -> RuleForm:
    """The editor's form, read once the flow is found (another workspace's flow is "not
    found" whatever the form holds); a field that is missing or wrong is named."""
    form = await request.form()

    def text(name: str, limit: int = 4000) -> str:
        value = form.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidRequest(f"the field {name} must be text of at most {limit} characters")
        return value

    side, target, kind = text("side"), text("target", 200).strip(), text("kind")
    if side not in SIDES:
        raise InvalidRequest("the field side must be get or send")
    if not target:
        raise InvalidRequest("the field target must name a target field")
    if kind not in get_args(RuleKind):
        raise InvalidRequest("the field kind must be from, expr or const")
    rule = RuleInput(
        cast(RuleKind, kind),
        text("value"),
        text("transforms"),
        text("default"),
        create_only=text("create_only") == "true",
        truncate=text("truncate") == "true",
    )
    return RuleForm(side, target, rule, reset=text("reset") == "true")


@actions.post("/flows/{flow_id}/mapping/check", name="check_mapping_rule")
async def check_rule(request: Request, current: Admin, flow_id: int) -> JSONResponse:
    """What validation says of one rule as it is being written (the editor fetches it)."""
    flow = editor.flow_of(current.store, flow_id)
    form = await _rule_form(request)
    issues = editor.check_rule(current.store, flow, form.side, form.target, form.rule)
    return JSONResponse({"issues": _issues(issues)})


@actions.post("/flows/{flow_id}/mapping/rule", name="save_mapping_rule")
async def save_rule(request: Request, current: Admin, flow_id: int) -> Response:
    flow = editor.flow_of(current.store, flow_id)
    form = await _rule_form(request)
    rule = None if form.reset else form.rule
    try:
        saved = editor.save_rule(
            current.store, flow, form.side, form.target, rule, actor=current.user.email
        )
    except MappingRefused as error:
        view = {
            **_editor_view(current, flow, form.side, form.target),
            "draft": form.rule,
            "draft_issues": [issue for _, issue in error.issues],
        }
        return refused(request, "mapping.html", view, error)
    notice = "mapping-saved" if saved.changed else "mapping-unchanged"
    return redirect(f"/flows/{flow.id}/mapping", notice)


@pages.get("/flows/{flow_id}/mapping/preview", name="mapping_preview_page")
async def preview_page(
    request: Request,
    current: SignedIn,
    runner: Runner,
    flow_id: int,
    search: Annotated[str, Query(max_length=200)] = "",
    record: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Pick (or search) one of the source's first records; see it through both stages."""
    flow = editor.flow_of(current.store, flow_id)
    transport = runner.transport if runner is not None else None
    samples = await editor.sample_records(current.store, flow, search=search, transport=transport)
    view: dict[str, Any] = {"flow": flow, "samples": samples, "search": search, "record": record}
    if record is not None:
        previewed = editor.preview_sample(current.store, flow, samples, record)
        result = previewed.preview
        view |= {
            "preview": result,
            "resolved": previewed.resolved,
            "stages": [
                ("source", flatten(result.source)),
                ("canonical", flatten(result.canonical) if result.canonical else []),
                ("target", flatten(result.target) if result.target else []),
            ],
        }
    return render(page_context(request), "mapping_preview.html", view)


@pages.get("/flows/{flow_id}/mapping/versions", name="mapping_versions_page")
def versions_page(
    request: Request,
    current: SignedIn,
    flow_id: int,
    older: Annotated[int | None, Query(ge=1)] = None,
    newer: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    flow = editor.flow_of(current.store, flow_id)
    history = mappings.mapping_versions(current.store, flow)
    if newer is None:
        newer = flow.mapping_version
    if older is None:
        older = max(1, newer - 1)
    diff = editor.mapping_diff(current.store, flow, older, newer)
    view = {
        "flow": flow,
        "versions": tuple(reversed(history)),
        "older": older,
        "newer": newer,
        "diff": diff,
        "may_edit": current.user.is_admin,
    }
    return render(page_context(request), "mapping_versions.html", view)


@actions.post("/flows/{flow_id}/mapping/restore", name="restore_mapping_version")
def restore(
    current: Admin, flow_id: int, version: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    flow = editor.flow_of(current.store, flow_id)
    if not version.isdigit():
        raise InvalidRequest("the field version must be a version number")
    mappings.restore_mapping(current.store, flow, int(version), actor=current.user.email)
    return redirect(f"/flows/{flow.id}/mapping/versions", "mapping-restored")


__all__ = ["actions", "pages"]
