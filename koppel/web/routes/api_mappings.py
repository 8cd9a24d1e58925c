"""The REST API for a flow's mapping (get, validate, preview, save, versions, restore) and for
an integration's file (export, import): the same services as the mapping editor's pages and
the CLI; errors are problem documents.

A mapping is the flow's override document, `{"get": {...}, "send": {...}}` in the format of
docs/mapping.md, merged onto the connectors' defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request

from koppel.mapping import MappingIssue
from koppel.services import config_export, mappings, setup
from koppel.services import mapping_editor as editor
from koppel.services.checks import SIDES, FlowMappingView
from koppel.services.errors import InvalidRequest
from koppel.store import Flow
from koppel.web.context import web_state
from koppel.web.deps import Admin, SignedIn, signed_in
from koppel.web.routes.api import PREFIX

router = APIRouter(prefix=PREFIX, dependencies=[Depends(signed_in)], tags=["mappings"])
Body = TypeVar("Body", bound=BaseModel)


class IssueOut(BaseModel):
    severity: str
    field: str
    message: str

    @classmethod
    def of(cls, issue: MappingIssue) -> IssueOut:
        return cls(severity=str(issue.severity), field=issue.field, message=issue.message)


class RuleOut(BaseModel):
    target: str
    kind: str
    """from, expr, const or each."""
    value: str
    transform: list[str]
    default: str | None
    create_only: bool
    truncate: bool
    overridden: bool
    """The flow's own rule; false: the connector's default."""
    added: bool


class SideOut(BaseModel):
    application: str
    rules: list[RuleOut]
    issues: list[IssueOut]


class MappingOut(BaseModel):
    flow_id: int
    flow: str
    version: int
    mapping: dict[str, Any]
    """The flow's own rules (the override document)."""
    sides: dict[str, SideOut]
    """get and send: the effective rules and what validation says."""


class MappingIn(BaseModel):
    mapping: dict[str, Any]
    """An override document: `{"get": {...}, "send": {...}}`."""


class SaveIn(MappingIn):
    note: str = Field(default="saved through the API", max_length=200)


class SavedOut(BaseModel):
    version: int
    changed: bool


class ValidationOut(BaseModel):
    valid: bool
    """No errors (warnings may remain)."""
    issues: dict[str, list[IssueOut]]


class PreviewIn(BaseModel):
    record: dict[str, Any] | None = None
    """A source record as the source's API returns it; or:"""
    key: str | None = Field(default=None, max_length=200)
    """The id of one of the source's first records, read through the stored connection."""


class PreviewOut(BaseModel):
    source: dict[str, Any]
    canonical: dict[str, Any] | None
    target: dict[str, Any] | None
    warnings: list[str]
    error: str | None
    resolved: list[str]
    """Target fields a run looks up in the target; a preview leaves them empty."""


class VersionOut(BaseModel):
    version: int
    current: bool
    created_at: datetime
    note: str
    mapping: dict[str, Any]


class RestoreIn(BaseModel):
    version: int = Field(ge=1)


class ExportOut(BaseModel):
    file_name: str
    text: str
    """The YAML integration file."""
    variables: list[str]
    """The environment variables its credentials are read from when it is applied."""


class ImportIn(BaseModel):
    file_name: str = Field(default="upload.yaml", max_length=200)
    text: str = Field(max_length=config_export.IMPORT_MAX_BYTES)


class ImportedOut(BaseModel):
    integration_id: int
    flows: dict[str, int]
    """flow -> its mapping version now."""


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def _body(request: Request, model: type[Body]) -> Body:
    """The JSON body, read once the flow is found (another workspace's flow is "not found"
    whatever the body holds)."""
    try:
        return model.model_validate_json(await request.body() or b"{}")
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        ) from None


def _issues(view: FlowMappingView) -> dict[str, list[IssueOut]]:
    return {side: [IssueOut.of(i) for i in view.issues[side]] for side in SIDES}


def _mapping_out(current: SignedIn, flow: Flow) -> MappingOut:
    state = editor.mapping_editor(current.store, flow)
    sides = {
        side: SideOut(
            application=state.view.applications[side],
            rules=[
                RuleOut(
                    target=row.target,
                    kind=row.kind,
                    value=row.value,
                    transform=list(row.transforms),
                    default=row.default,
                    create_only=row.create_only,
                    truncate=row.truncate,
                    overridden=row.overridden,
                    added=row.added,
                )
                for row in state.rows[side]
            ],
            issues=[IssueOut.of(i) for i in state.view.issues[side]],
        )
        for side in SIDES
    }
    return MappingOut(
        flow_id=flow.id,
        flow=flow.name,
        version=flow.mapping_version,
        mapping=flow.mapping,
        sides=sides,
    )


@router.get("/flows/{flow_id}/mapping", name="api_mapping")
def mapping(current: SignedIn, flow_id: int) -> MappingOut:
    """The flow's effective mapping, rule by rule, with what validation says."""
    return _mapping_out(current, editor.flow_of(current.store, flow_id))


@router.post(
    "/flows/{flow_id}/mapping/validate",
    name="api_validate_mapping",
    openapi_extra=_body_schema(MappingIn),
)
async def validate_mapping(request: Request, current: SignedIn, flow_id: int) -> ValidationOut:
    """What validation says of `mapping` as the flow's (nothing is saved)."""
    flow = editor.flow_of(current.store, flow_id)
    body = await _body(request, MappingIn)
    view = editor.inspect_flow_mapping(current.store, flow, body.mapping)
    return ValidationOut(valid=not view.has_errors(), issues=_issues(view))


@router.post(
    "/flows/{flow_id}/mapping/preview",
    name="api_preview_mapping",
    openapi_extra=_body_schema(PreviewIn),
)
async def preview_mapping(request: Request, current: SignedIn, flow_id: int) -> PreviewOut:
    """One source record through the current mapping: given (`record`) or one of the source's
    first records (`key`); nothing is written."""
    flow = editor.flow_of(current.store, flow_id)
    body = await _body(request, PreviewIn)
    if (body.record is None) == (body.key is None):
        raise InvalidRequest("give exactly one of record (a source record) and key")
    if body.record is not None:
        previewed = mappings.preview_record(
            editor.inspect_flow_mapping(current.store, flow), body.record
        )
    else:
        runner = web_state(request).runner
        samples = await editor.sample_records(
            current.store, flow, transport=runner.transport if runner else None
        )
        previewed = editor.preview_sample(current.store, flow, samples, str(body.key))
    result = previewed.preview
    return PreviewOut(
        source=dict(result.source),
        canonical=result.canonical,
        target=result.target,
        warnings=[str(w) for w in result.warnings],
        error=result.error,
        resolved=list(previewed.resolved),
    )


@router.put("/flows/{flow_id}/mapping", name="api_save_mapping", openapi_extra=_body_schema(SaveIn))
async def save_mapping(request: Request, current: Admin, flow_id: int) -> SavedOut:
    """Make `mapping` the flow's mapping, as a new version (admins; audited). A mapping with
    errors is refused with every error; an equal one changes nothing."""
    flow = editor.flow_of(current.store, flow_id)
    body = await _body(request, SaveIn)
    saved = editor.save_mapping(
        current.store, flow, body.mapping, actor=current.user.email, note=body.note
    )
    return SavedOut(version=saved.version, changed=saved.changed)


@router.get("/flows/{flow_id}/mapping/versions", name="api_mapping_versions")
def mapping_versions(current: SignedIn, flow_id: int) -> list[VersionOut]:
    """The flow's mapping versions, oldest first."""
    flow = editor.flow_of(current.store, flow_id)
    return [
        VersionOut(
            version=v.version,
            current=v.current,
            created_at=v.created_at,
            note=v.note,
            mapping=v.mapping,
        )
        for v in mappings.mapping_versions(current.store, flow)
    ]


@router.post(
    "/flows/{flow_id}/mapping/restore",
    name="api_restore_mapping",
    openapi_extra=_body_schema(RestoreIn),
)
async def restore_mapping(request: Request, current: Admin, flow_id: int) -> SavedOut:
    """Make an earlier version current again, as a new version (admins; audited)."""
    flow = editor.flow_of(current.store, flow_id)
    body = await _body(request, RestoreIn)
    restored = mappings.restore_mapping(current.store, flow, body.version, actor=current.user.email)
    return SavedOut(version=restored.version, changed=True)


@router.get("/integrations/{integration_id}/export", name="api_export_integration")
def export_integration(current: SignedIn, integration_id: int) -> ExportOut:
    """The integration as its YAML file; credentials as `${VARIABLE}` references."""
    integration = setup.integration(current.store, integration_id)
    exported = config_export.export_integration(current.store, integration)
    return ExportOut(
        file_name=exported.file_name, text=exported.text, variables=list(exported.variables)
    )


@router.post("/integrations/import", name="api_import_integration")
async def import_integration(request: Request, current: Admin, body: ImportIn) -> ImportedOut:
    """An integration file applied as `koppel config apply` applies it (admins; audited); only
    a file of the token's workspace, its base URLs through the address guard."""
    applied = await config_export.import_file(
        current.store,
        current.workspace,
        body.file_name,
        body.text.encode(),
        actor=current.user.email,
        allowed=web_state(request).settings.networks_allowed,
    )
    return ImportedOut(
        integration_id=applied.integration.id,
        flows={flow.name: flow.mapping_version for flow in applied.flows},
    )


__all__ = ["router"]
