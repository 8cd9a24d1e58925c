"""The REST API, `/api/v1`: an API token (`Authorization: Bearer kpl_...`) or a session, problem
documents for errors (RFC 9457), cursor pagination. Its OpenAPI document is at
`/api/v1/openapi.json` (signed in, like every route)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from starlette.requests import Request

from koppel.errors import NotFound
from koppel.services import activity, dashboard
from koppel.services.activity import RunView
from koppel.services.connections import check_connection
from koppel.store import Flow, Run, RunStatus, User, entity_counts
from koppel.web.context import web_state
from koppel.web.deps import Admin, SignedIn, signed_in
from koppel.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, paginate

PREFIX = "/api/v1"
router = APIRouter(prefix=PREFIX, dependencies=[Depends(signed_in)], tags=["api"])


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    locale: str | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role.value,
            locale=user.locale,
            created_at=user.created_at,
        )


class MeOut(UserOut):
    workspace: str


@router.get("/me", name="api_me")
def me(current: SignedIn) -> MeOut:
    """The user the token or session belongs to, and their workspace."""
    return MeOut(**UserOut.of(current.user).model_dump(), workspace=current.workspace)


@router.get("/users", name="api_users")
def users(
    current: Admin,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[UserOut]:
    """The workspace's users, by id (admins only)."""
    return paginate(
        lambda after, n: current.store.users.list(current.user.tenant_id, after_id=after, limit=n),
        cursor=cursor,
        limit=limit,
        key=lambda user: user.id,
        key_type=int,
        to_item=UserOut.of,
    )


@router.get("/users/{user_id}", name="api_user")
def user(current: Admin, user_id: int) -> UserOut:
    return UserOut.of(current.store.users.require(user_id))


class ConnectionOut(BaseModel):
    id: int
    name: str
    application: str
    base_url: str
    needs_authorisation: bool
    last_success_at: datetime | None
    """When the last run through it that did not fail ended."""
    last_error: str | None
    """The reason of the latest failed run that names it, or why it needs authorisation."""
    last_error_at: datetime | None

    @classmethod
    def of(cls, health: dashboard.ConnectionHealth) -> ConnectionOut:
        connection = health.connection
        return cls(
            id=connection.id,
            name=connection.name,
            application=connection.application.value,
            base_url=connection.base_url,
            needs_authorisation=health.needs_authorisation,
            last_success_at=health.last_good_at,
            last_error=health.last_error,
            last_error_at=health.last_error_at,
        )


class RunOut(BaseModel):
    id: str
    number: int | None
    flow_id: int
    flow: str
    status: str
    counts: dict[str, int]
    """created / updated / skipped / failed; other entities the run wrote as `entity.kind`."""
    api_calls: int
    """Calls to both applications together: the total per run is what Koppel records."""
    mapping_version: int
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    error: str | None

    @classmethod
    def of(cls, run: RunView) -> RunOut:
        duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
        return cls(
            id=run.id,
            number=run.number,
            flow_id=run.flow_id,
            flow=run.flow,
            status=run.status.value,
            counts=dict(run.counts),
            api_calls=run.api_calls,
            mapping_version=run.mapping_version,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_seconds=duration,
            error=run.error,
        )


class RunDetailOut(RunOut):
    entities: dict[str, dict[str, int]]
    """The other entities the run wrote (categories of a products flow), by outcome kind."""


class FlowOut(BaseModel):
    id: int
    integration_id: int
    name: str
    entity: str
    source: str
    target: str
    enabled: bool
    schedule_seconds: int | None
    last_run: RunOut | None
    last_success_at: datetime | None
    next_run_at: datetime | None
    """When its schedule starts the next run (if a worker runs); null on demand or off."""
    freshness: str
    """fresh, stale (no good run for two intervals), never (synced), off."""

    @classmethod
    def of(cls, line: dashboard.FlowHealth) -> FlowOut:
        flow: Flow = line.flow
        return cls(
            id=flow.id,
            integration_id=flow.integration_id,
            name=flow.name,
            entity=flow.entity,
            source=line.source,
            target=line.target,
            enabled=flow.enabled,
            schedule_seconds=flow.schedule_seconds,
            last_run=RunOut.of(line.last_run) if line.last_run else None,
            last_success_at=line.last_good_at,
            next_run_at=line.next_run_at,
            freshness=line.freshness.value,
        )


class ChartOut(BaseModel):
    step_seconds: int
    starts: list[datetime]
    counts: dict[str, list[int]]
    """Per outcome kind, one number per step (by the start of the runs)."""
    totals: dict[str, int]

    @classmethod
    def of(cls, chart: dashboard.Chart) -> ChartOut:
        return cls(
            step_seconds=int(chart.step.total_seconds()),
            starts=[bar.start for bar in chart.bars],
            counts={kind: [bar.counts[kind] for bar in chart.bars] for kind in dashboard.KINDS},
            totals=chart.totals,
        )


class IntegrationOut(BaseModel):
    id: int
    name: str
    connections: list[ConnectionOut]
    flows: list[FlowOut]
    last_24_hours: ChartOut
    last_7_days: ChartOut
    dead_letters_waiting: int

    @classmethod
    def of(cls, board: dashboard.IntegrationDashboard) -> IntegrationOut:
        return cls(
            id=board.integration.id,
            name=board.integration.name,
            connections=[ConnectionOut.of(health) for health in board.connections],
            flows=[FlowOut.of(line) for line in board.flows],
            last_24_hours=ChartOut.of(board.last_day),
            last_7_days=ChartOut.of(board.last_week),
            dead_letters_waiting=board.dead_letters,
        )


class ConnectionTestOut(BaseModel):
    connection_id: int
    works: bool
    message: str
    category: str | None
    """Why it does not work: connection, authorisation or configuration."""
    fix: str | None


@router.get("/integrations", name="api_integrations")
def integrations(request: Request, current: SignedIn) -> Page[IntegrationOut]:
    """The workspace's integrations with their dashboards (a workspace has a handful: one
    page, `next_cursor` null). Days begin at midnight in the server's KOPPEL_WEB_TIMEZONE."""
    boards = dashboard.dashboards(current.store, zone=web_state(request).zone)
    return Page[IntegrationOut](items=[IntegrationOut.of(b) for b in boards], next_cursor=None)


@router.get("/integrations/{integration_id}", name="api_integration")
def integration(request: Request, current: SignedIn, integration_id: int) -> IntegrationOut:
    zone = web_state(request).zone
    return IntegrationOut.of(dashboard.dashboard_of(current.store, integration_id, zone=zone))


@router.get("/flows", name="api_flows")
def flows(current: SignedIn, integration_id: int | None = None) -> Page[FlowOut]:
    """The workspace's flows (of one integration) with last run, next run and freshness (one
    page, `next_cursor` null)."""
    if integration_id is None:
        boards = dashboard.dashboards(current.store)
    else:
        boards = [dashboard.dashboard_of(current.store, integration_id)]
    lines = [FlowOut.of(line) for board in boards for line in board.flows]
    return Page[FlowOut](items=lines, next_cursor=None)


@router.get("/runs", name="api_runs")
def runs(
    current: SignedIn,
    flow_id: int | None = None,
    status: RunStatus | None = None,
    started_from: datetime | None = None,
    started_until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[RunOut]:
    """Runs newest first, of one flow and status, started from (inclusive) and until
    (exclusive) a moment (ISO 8601 with a zone)."""
    store = current.store
    if flow_id is not None and store.flows.get(flow_id) is None:
        raise NotFound(f"flow {flow_id} not found")
    names = {flow.id: flow.name for flow in store.flows.list()}

    def fetch(after: str | None, n: int) -> list[Run]:
        return store.runs.list(
            flow_id=flow_id,
            status=status,
            started_from=started_from,
            started_until=started_until,
            before=after,
            limit=n,
        )

    return paginate(
        fetch,
        cursor=cursor,
        limit=limit,
        key=lambda run: run.id,
        key_type=str,
        to_item=lambda run: RunOut.of(activity.run_view(run, names)),
    )


@router.get("/runs/{run_id}", name="api_run")
def run(current: SignedIn, run_id: str) -> RunDetailOut:
    found = activity.run(current.store, run_id)
    return RunDetailOut(**RunOut.of(found).model_dump(), entities=entity_counts(found.counts))


@router.get("/connections", name="api_connections")
def connections(current: SignedIn) -> Page[ConnectionOut]:
    """The workspace's connections with their health (one page, `next_cursor` null)."""
    health = dashboard.connections_health(current.store)
    return Page[ConnectionOut](items=[ConnectionOut.of(h) for h in health], next_cursor=None)


@router.post("/connections/{connection_id}/test", name="api_test_connection")
async def test_connection(current: Admin, connection_id: int) -> ConnectionTestOut:
    """Log in and make one small call (admins): whether it works, and why not."""
    connection = current.store.connections.get(connection_id)
    if connection is None:
        raise NotFound(f"connection {connection_id} not found")
    check = await check_connection(current.store, connection)
    return ConnectionTestOut(
        connection_id=connection.id,
        works=check.works,
        message=check.message,
        category=check.category.value if check.category else None,
        fix=check.fix,
    )


@router.get("/openapi.json", name="api_openapi", include_in_schema=False)
def openapi(request: Request, _current: SignedIn) -> dict[str, Any]:
    app = request.app
    if app.openapi_schema is None:
        app.openapi_schema = get_openapi(
            title="Koppel API",
            version="1",
            description=__doc__,
            routes=[
                route
                for route in iter_route_contexts(app.routes)
                if (route.path or "").startswith(PREFIX)
            ],
        )
    return dict(app.openapi_schema)


__all__ = ["router"]
