"""Config as code in the web app: an integration downloaded as its YAML file (credentials as
`${VARIABLE}` references), and a file uploaded and applied as `koppel config apply` applies it
(admins; audited as the apply is)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from koppel.accounts.errors import N_
from koppel.errors import ErrorCategory, KoppelError
from koppel.services import config_export, setup
from koppel.services.config_export import IMPORT_MAX_BYTES
from koppel.services.errors import InvalidRequest
from koppel.store import Store
from koppel.web.context import CurrentUser, page_context, web_state
from koppel.web.deps import Admin, SignedIn, WorkspaceStore, admin_user, signed_in
from koppel.web.routes import hooks
from koppel.web.routes.forms import redirect, refused
from koppel.web.templating import render


class FileRefused(KoppelError):
    """The uploaded file is not applied; the page lists why under its form."""

    category = ErrorCategory.CONFIGURATION
    message_id = N_(
        "The file is not applied: fix what is listed under the form and upload it again."
    )


pages = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
actions = APIRouter(dependencies=[Depends(admin_user)], include_in_schema=False)


def _view(store: Store, current: CurrentUser) -> dict[str, Any]:
    return {
        "integrations": [
            (integration, config_export.export_integration(store, integration).variables)
            for integration in store.integrations.list()
        ],
        "may_import": current.user.is_admin,
    }


@pages.get("/integration-files", name="integration_files_page")
def integration_files_page(request: Request, current: SignedIn) -> Response:
    return render(page_context(request), "integration_files.html", _view(current.store, current))


@pages.get("/integrations/{integration_id}/export", name="export_integration")
def export_integration(store: WorkspaceStore, integration_id: int) -> Response:
    """The integration file, as a download."""
    exported = config_export.export_integration(store, setup.integration(store, integration_id))
    return Response(
        exported.text,
        media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{exported.file_name}"'},
    )


@actions.post("/integration-files", name="import_integration_file")
async def import_integration_file(
    request: Request, current: Admin, file: Annotated[UploadFile | None, File()] = None
) -> Response:
    try:
        if file is None or not file.filename:
            raise InvalidRequest("choose an integration file (YAML) to upload")
        content = await file.read(IMPORT_MAX_BYTES + 1)
        await config_export.import_file(
            current.store,
            current.workspace,
            file.filename,
            content,
            actor=current.user.email,
            allowed=web_state(request).settings.networks_allowed,
        )
    except KoppelError as error:
        view = {**_view(current.store, current), "detail": str(error)}
        return refused(request, "integration_files.html", view, FileRefused(str(error)))
    hooks.follow_flows(web_state(request))
    return redirect("/integration-files", "integration-imported")


__all__ = ["actions", "pages"]
