"""The workspace's home page: its integrations and flows, read from the store as they are."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from koppel.store import Connection, Flow, Integration, Run, Store
from koppel.web.context import page_context
from koppel.web.deps import Runner, WorkspaceStore, signed_in
from koppel.web.templating import render

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)


@dataclass(frozen=True)
class FlowLine:
    flow: Flow
    source: Connection
    target: Connection
    last_run: Run | None


@dataclass(frozen=True)
class IntegrationView:
    integration: Integration
    connections: list[Connection]
    flows: list[FlowLine]


def integrations_view(store: Store) -> list[IntegrationView]:
    connections = {connection.id: connection for connection in store.connections.list()}
    views: list[IntegrationView] = []
    for integration in store.integrations.list():
        lines = [
            FlowLine(
                flow=flow,
                source=connections[flow.source_connection_id],
                target=connections[flow.target_connection_id],
                last_run=next(iter(store.runs.list(flow_id=flow.id, limit=1)), None),
            )
            for flow in store.flows.list(integration.id)
        ]
        pair = [connections[integration.connection_a_id], connections[integration.connection_b_id]]
        views.append(IntegrationView(integration, pair, lines))
    return views


@router.get("/", name="home")
def home(request: Request, store: WorkspaceStore, runner: Runner) -> Response:
    view = {"integrations": integrations_view(store), "worker_here": runner is not None}
    return render(page_context(request), "home.html", view)


__all__ = ["router"]
