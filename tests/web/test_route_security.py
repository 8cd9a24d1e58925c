"""Every route of the app, taken from its own route table, against every kind of intruder.

- nobody signed in: the sign-in page (pages) or 401 (API);
- a viewer on every state-changing route: 403, and nothing changed;
- a user of another workspace on every object of this one: 404, nothing of it in the answer,
  nothing changed (n8n accepted a foreign credential id across tenants: not here);
- every state-changing request without the anti-forgery token: 403.

A new route is walked without editing this file. If it has a path parameter that
`PATH_EXAMPLES` cannot fill, the walk fails and says so: add an example object of workspace `a`
for that parameter name. A new route open to anonymous visitors or to viewers fails until it is
named in `PUBLIC`, `SIGNED` or `VIEWER_MAY_CHANGE`, where a reviewer sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from koppel.engine.runner import FlowRunner
from koppel.settings import Settings
from koppel.store import Store
from koppel.web import create_app
from tests.web.conftest import Browser, World, signed_in

PUBLIC = {
    "login_page",
    "login",
    "first_run_page",
    "first_run",
    "static",
    "healthz",
    "readyz",
    "metrics",
}
"""Routes anyone may use: the sign-in and first-run pages (with their own anti-forgery cookie),
and our stylesheet and script. Public by design as well, for machines: `healthz` and `readyz`
(a load balancer asks them; they show no data) and `metrics` (guarded by its own bearer token,
KOPPEL_METRICS_TOKEN, not by sign-in: tests/web/test_metrics.py)."""
SIGNED = {"partspim_webhook"}
"""Routes for machines that prove themselves by a signature over the request (HMAC with a
secret of their own), not by a session or an anti-forgery token: Parts Pim's webhook
deliveries. Refused unsigned, they change nothing (tests/e2e/test_webhooks.py)."""
VIEWER_MAY_CHANGE = {
    "logout",
    "change_own_password",
    "change_own_language",
    "create_token",
    "revoke_own_token",
    "api_validate_mapping",
    "api_preview_mapping",
}
"""State-changing routes about one's own account, open to viewers, and two POSTs that change
nothing (a mapping checked or previewed, sent as a body). Every other one refuses them."""
PATH_EXAMPLES: dict[str, Callable[[World], object]] = {
    "user_id": lambda world: world.a.viewer.id,
    "token_id": lambda world: world.a.viewer_token.token.id,
    "run_id": lambda world: world.a.run.id,
    "connection_id": lambda world: world.a.seeded.pim.id,
    "integration_id": lambda world: world.a.seeded.integration.id,
    "outcome_id": lambda world: world.a.activity.failed.id,
    "dead_letter_id": lambda world: world.a.activity.dead_letter.id,
    "flow_id": lambda world: world.a.seeded.flow.id,
    "application": lambda world: "partspim",
    "token": lambda world: "not-a-subscription",
}
"""An object of workspace `a` for every path parameter name in the app."""
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
PARAMETER = re.compile(r"{([^}:]+)(?::[^}]+)?}")
SCHEDULED_RUN = re.compile(r"-every[0-9.]+s-[0-9]+$")
"""The id of a run the engine's scheduler started (a slot of the seeded flow's minute), which
the walk's requests did not cause: the walk takes long enough to cross a minute."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    """The path template, e.g. /users/{user_id}/role."""

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    @property
    def changes_state(self) -> bool:
        return self.method in UNSAFE

    @property
    def parameters(self) -> list[str]:
        return PARAMETER.findall(self.path)

    def url(self, world: World) -> str:
        def example(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in PATH_EXAMPLES:
                pytest.fail(
                    f"route {self.name} ({self.method} {self.path}) has the path parameter "
                    f"{name!r}, which PATH_EXAMPLES in {__name__} cannot fill: add an example "
                    "object of workspace a for it"
                )
            return str(PATH_EXAMPLES[name](world))

        return PARAMETER.sub(example, self.path)


def endpoints(app: FastAPI) -> list[Endpoint]:
    found: list[Endpoint] = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            continue
        assert route.name and route.path, f"a route without a name or path: {route}"
        found.extend(
            Endpoint(route.name, method, route.path)
            for method in sorted(route.methods or ())
            if method not in ("HEAD", "OPTIONS")
        )
    return found


def guarded(app: FastAPI) -> list[Endpoint]:
    return [endpoint for endpoint in endpoints(app) if endpoint.name not in PUBLIC | SIGNED]


def ids(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


@pytest.fixture
def app(web_settings: Settings, store: Store, world: World) -> Iterator[FastAPI]:
    """The app with a real engine: a route that runs flows would really start a run."""
    app = create_app(
        web_settings, store=store, runner=FlowRunner(store, web_settings, handle_signals=False)
    )
    with TestClient(app):
        yield app


def call(
    client: TestClient, endpoint: Endpoint, world: World, *, csrf: str = "", bearer: str = ""
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    url = endpoint.url(world)
    if not endpoint.changes_state:
        return client.request(endpoint.method, url, headers=headers)
    return client.request(endpoint.method, url, headers=headers, data={"csrf_token": csrf})


def problem_kind(response: httpx.Response, endpoint: Endpoint) -> str:
    """What the answer says went wrong: the problem type (API) or the error page's kind."""
    if endpoint.is_api:
        assert response.headers["content-type"] == "application/problem+json", response.text
        return str(response.json()["type"]).removeprefix("urn:koppel:problem:")
    found = re.search(r'data-problem="([^"]+)"', response.text)
    assert found, (
        f"{ids(endpoint)}: not an error page: {response.status_code} {response.text[:200]}"
    )
    return found.group(1)


def snapshot(store: Store, world: World) -> dict[str, Any]:
    """Everything of workspace a that a request could change, and the runs of every flow."""
    scoped = store.scoped(world.a.tenant_id)
    users = scoped.users.list(world.a.tenant_id)
    return {
        "users": [(u.id, u.email, u.role, u.locale) for u in users],
        "password_hashes": [scoped.users.password_hash(u.id) for u in users],
        "tokens": {u.id: [t.id for t in scoped.api_tokens.list(u.id)] for u in users},
        "sessions": {u.id: [s.id for s in scoped.user_sessions.list(u.id)] for u in users},
        "audit": len(scoped.audit.list(world.a.tenant_id, limit=10_000)),
        "flows": [(f.id, f.enabled, f.mapping_version) for f in store.flows.list()],
        "runs": [run.id for run in store.runs.list(limit=1000) if not SCHEDULED_RUN.search(run.id)],
        "dead_letters": [
            (d.id, d.status, d.attempts)
            for f in store.flows.list()
            for d in store.dead_letters.list(f.id)
        ],
    }


def secrets_of_a(world: World) -> list[str]:
    a = world.a
    return [
        a.admin.email,
        a.viewer.email,
        a.admin.name,
        a.viewer.name,
        a.admin_token.token.name,
        a.viewer_token.token.name,
        a.seeded.integration.name,
        a.name,
        a.activity.created.target_key or "",
        a.activity.dead_letter.reason,
    ]


def test_the_walk_knows_every_named_route_and_fills_every_parameter(
    app: FastAPI, world: World
) -> None:
    names = {endpoint.name for endpoint in endpoints(app)} | {"static"}
    assert names >= PUBLIC, f"PUBLIC names routes that do not exist: {PUBLIC - names}"
    assert names >= SIGNED, f"SIGNED names routes that do not exist: {SIGNED - names}"
    assert names >= VIEWER_MAY_CHANGE, f"stale VIEWER_MAY_CHANGE: {VIEWER_MAY_CHANGE - names}"
    unused = set(PATH_EXAMPLES) - {p for e in endpoints(app) for p in e.parameters}
    assert not unused, f"PATH_EXAMPLES fills parameters no route has: {unused}"
    for endpoint in endpoints(app):
        endpoint.url(world)  # fails loudly for a parameter without an example
    assert any(endpoint.changes_state for endpoint in guarded(app))
    assert any(endpoint.parameters for endpoint in guarded(app))


def test_nobody_signed_in_gets_the_sign_in_page_or_401(app: FastAPI, world: World) -> None:
    anonymous = Browser(app, follow_redirects=False)
    anonymous.cookies.set("koppel_session", "a-session-that-does-not-exist")
    for endpoint in guarded(app):
        response = call(anonymous, endpoint, world)
        if endpoint.is_api:
            assert response.status_code == 401, ids(endpoint)
            assert problem_kind(response, endpoint) == "login_required"
            assert response.headers["www-authenticate"] == "Bearer"
            bad_token = call(anonymous, endpoint, world, bearer="kpl_not-a-token")
            assert bad_token.status_code == 401, ids(endpoint)
        else:
            assert response.status_code == 303, ids(endpoint)
            assert response.headers["location"].startswith("/login"), ids(endpoint)
        for secret in secrets_of_a(world):
            assert secret not in response.text, f"{ids(endpoint)} shows {secret!r}"


def test_a_viewer_is_refused_every_state_changing_route_and_changes_nothing(
    app: FastAPI, store: Store, world: World
) -> None:
    """n8n let a read-only role run workflows; here every change but one's own account is 403."""
    before = snapshot(store, world)
    refused = [
        endpoint
        for endpoint in guarded(app)
        if endpoint.changes_state and endpoint.name not in VIEWER_MAY_CHANGE
    ]
    assert refused, "the app has state-changing routes; the walk found none"
    for endpoint in refused:
        viewer = signed_in(app, store, world.a.viewer)
        response = call(viewer, endpoint, world, csrf=viewer.csrf)
        assert response.status_code == 403, f"{ids(endpoint)}: {response.status_code}"
        assert problem_kind(response, endpoint) == "permission", ids(endpoint)
        if endpoint.is_api:
            by_token = call(viewer, endpoint, world, bearer=world.a.viewer_token.secret)
            assert by_token.status_code == 403, ids(endpoint)
    after = snapshot(store, world)
    # The viewer's own sessions are the ones this test signed in with; nobody else's changed.
    after["sessions"].pop(world.a.viewer.id)
    before["sessions"].pop(world.a.viewer.id)
    assert after == before


def test_another_workspace_gets_404_for_every_object_of_this_one_and_sees_none_of_it(
    app: FastAPI, store: Store, world: World
) -> None:
    """n8n accepted a credential id of another tenant. Here a's ids are simply not found by
    b's admin (a viewer of b may be refused earlier, for the role), and nothing leaks."""
    before = snapshot(store, world)
    assert any(endpoint.parameters for endpoint in guarded(app))
    for intruder, token in (
        (world.b.admin, world.b.admin_token),
        (world.b.viewer, world.b.viewer_token),
    ):
        expected = {404} if intruder.is_admin else {403, 404}
        for endpoint in guarded(app):
            client = signed_in(app, store, intruder)
            answers = [call(client, endpoint, world, csrf=client.csrf)]
            if endpoint.is_api:
                answers.append(call(client, endpoint, world, bearer=token.secret))
            for response in answers:
                where = f"{intruder.email} on {ids(endpoint)}"
                if endpoint.parameters:
                    assert response.status_code in expected, f"{where}: {response.status_code}"
                for secret in secrets_of_a(world):
                    assert secret not in response.text, f"{where} sees {secret!r}"
    assert snapshot(store, world) == before


def test_every_state_changing_request_needs_the_anti_forgery_token(
    app: FastAPI, store: Store, world: World
) -> None:
    before = snapshot(store, world)
    admin = signed_in(app, store, world.a.admin)
    other_session = signed_in(app, store, world.a.viewer)
    changing = [e for e in endpoints(app) if e.changes_state and e.name not in SIGNED]
    anonymous = Browser(app, follow_redirects=False)
    for endpoint in changing:
        client = anonymous if endpoint.name in PUBLIC else admin
        for token in ("", other_session.csrf):
            response = call(client, endpoint, world, csrf=token)
            assert response.status_code == 403, f"{ids(endpoint)} with {token!r}"
            assert problem_kind(response, endpoint) == "csrf", ids(endpoint)
        cross_site = client.request(
            endpoint.method,
            endpoint.url(world),
            data={"csrf_token": admin.csrf},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403, f"{ids(endpoint)} from another site"
    after = snapshot(store, world)
    after["sessions"] = before["sessions"]
    assert after == before


def test_an_unsigned_request_to_a_signed_route_is_refused_and_changes_nothing(
    app: FastAPI, store: Store, world: World
) -> None:
    before = snapshot(store, world)
    anonymous = Browser(app, follow_redirects=False)
    for endpoint in endpoints(app):
        if endpoint.name in SIGNED:
            response = call(anonymous, endpoint, world)
            assert response.status_code in (401, 404), ids(endpoint)
    assert snapshot(store, world) == before
