"""The reconciliation page: each products, stock and orders flow's last comparison of both
systems and the drift it found, for everyone to read; comparing now and "sync these", for
admins (POST, redirect, GET)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from koppel.engine.runner import FlowRunner
from koppel.services import reconcile
from koppel.services.reconcile import NoEngineHere
from koppel.store.reconciliations import ReconciliationRecord
from koppel.web.context import CurrentUser, page_context, web_state
from koppel.web.deps import Admin, Runner, SignedIn, admin_user, signed_in
from koppel.web.routes.forms import redirect, refused
from koppel.web.templating import render

logger = logging.getLogger("koppel.web")
pages = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
actions = APIRouter(dependencies=[Depends(admin_user)], include_in_schema=False)


def _view(current: CurrentUser) -> dict[str, Any]:
    lines = reconcile.latest(current.store, current.store.flows.list())
    return {
        "lines": lines,
        "fixable": sum(line.fixable for line in lines),
        "kept": reconcile.DIFFERENCES_KEPT,
    }


@pages.get("/reconciliation", name="reconciliation_page")
def reconciliation_page(request: Request, current: SignedIn) -> Response:
    return render(page_context(request), "reconciliation.html", _view(current))


@actions.post("/reconciliation/run", name="run_reconciliation")
async def run_reconciliation(request: Request, current: Admin, runner: Runner) -> Response:
    """Compare every products, stock and orders flow of the workspace now."""
    flows = reconcile.reconcilable(current.store, current.store.flows.list())
    if flows:
        transport = runner.transport if runner is not None else None
        await reconcile.reconcile_flows(current.store, flows, transport=transport)
    return redirect("/reconciliation", "reconciled")


async def _sync(
    current: CurrentUser, runner: FlowRunner, records: list[ReconciliationRecord]
) -> None:
    try:
        await reconcile.sync_drift(
            current.store, runner, records, actor=f"user:{current.user.email}"
        )
    except Exception:  # each run's own row says why; the next reconciliation shows what is left
        logger.exception("syncing the drift of a reconciliation failed")


@actions.post("/reconciliation/sync", name="sync_drift")
async def sync_drift(request: Request, current: Admin, runner: Runner) -> Response:
    """Sync the drifted records of the last reconciliations again, in the background."""
    if runner is None:
        return refused(request, "reconciliation.html", _view(current), NoEngineHere())
    flows = reconcile.reconcilable(current.store, current.store.flows.list())
    last = current.store.reconciliations.latest([f.id for f in flows])
    state = web_state(request)
    task = asyncio.create_task(_sync(current, runner, list(last.values())))
    state.background.add(task)
    task.add_done_callback(state.background.discard)
    return redirect("/reconciliation", "drift-syncing")


__all__ = ["actions", "pages"]
