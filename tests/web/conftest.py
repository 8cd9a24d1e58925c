"""The web app over a real store: two workspaces with an admin and a viewer each, API tokens,
and clients signed in as any of them (sessions made the way sign-in makes them)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser as Chromium
from playwright.sync_api import Playwright, sync_playwright

from koppel.accounts.signin import IssuedToken, csrf_token, issue_token, start_session
from koppel.accounts.users import create_user
from koppel.settings import Settings
from koppel.store import (
    DeadLetter,
    DeadLetterEntry,
    Outcome,
    OutcomeEntry,
    OutcomeKind,
    Role,
    Run,
    RunStatus,
    Store,
    User,
)
from koppel.web import create_app
from tests.fixtures_store import SeededIntegration, seed_integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Debian's Chromium, started by Playwright (which never downloads a browser here)."""
PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass(frozen=True)
class SeededActivity:
    """A finished run of the workspace's products flow: one record created, one failed (on
    the dead-letter list), each with what came from the source and what was sent."""

    run: Run
    created: Outcome
    failed: Outcome
    dead_letter: DeadLetter


def seed_activity(store: Store, seeded: SeededIntegration) -> SeededActivity:
    flow_id = seeded.flow.id
    run = store.runs.start(flow_id)
    sku = f"SKU-{seeded.tenant.name.upper()}-1"
    store.outcomes.record_many(
        run.id,
        [
            OutcomeEntry(
                source_key="1",
                record_key=sku,
                outcome=OutcomeKind.CREATED,
                target_key=sku,
                payload_excerpt={
                    "source": {"id": 1, "sku": sku, "title": "Brake disc"},
                    "sent": {"ART_CODE": sku, "ART_DESC1": "Brake disc"},
                },
            ),
            OutcomeEntry(
                source_key="2",
                record_key=f"{sku}-BAD",
                outcome=OutcomeKind.FAILED,
                reason=f"SKU '{sku}-BAD': price must be a number",  # as the dead letter says
                payload_excerpt={"source": {"id": 2, "price": "n/a"}, "sent": None},
            ),
        ],
    )
    reason = f"SKU '{sku}-BAD': price must be a number"
    store.dead_letters.add_many(flow_id, [DeadLetterEntry("2", reason, {"id": 2, "price": "n/a"})])
    finished = store.runs.finish(run.id, RunStatus.PARTIAL, api_calls=4)
    created, failed = store.outcomes.list(run.id)
    (letter,) = store.dead_letters.list(flow_id)
    return SeededActivity(run=finished, created=created, failed=failed, dead_letter=letter)


@dataclass(frozen=True)
class Workspace:
    name: str
    tenant_id: int
    admin: User
    viewer: User
    admin_token: IssuedToken
    viewer_token: IssuedToken
    seeded: SeededIntegration
    run: Run
    """The run of `activity`."""
    activity: SeededActivity


@dataclass(frozen=True)
class World:
    """Workspace `a` (acme) holds the objects the route walk asks for; `b` (globex) is the
    other workspace whose users must never see them."""

    a: Workspace
    b: Workspace


def make_workspace(store: Store, name: str) -> Workspace:
    seeded = seed_integration(store, name)
    tenant_id = seeded.tenant.id
    admin = create_user(
        store,
        actor="test",
        tenant_id=tenant_id,
        email=f"admin@{name}.example",
        name=f"{name.title()} Admin",
        password=PASSWORD,
        role=Role.ADMIN,
    )
    viewer = create_user(
        store,
        actor="test",
        tenant_id=tenant_id,
        email=f"viewer@{name}.example",
        name=f"{name.title()} Viewer",
        password=PASSWORD,
        role=Role.VIEWER,
    )
    activity = seed_activity(store, seeded)
    return Workspace(
        name=name,
        tenant_id=tenant_id,
        admin=admin,
        viewer=viewer,
        admin_token=issue_token(store, admin, name=f"{name} admin script", days=30),
        viewer_token=issue_token(store, viewer, name=f"{name} viewer script", days=30),
        seeded=seeded,
        run=activity.run,
        activity=activity,
    )


@pytest.fixture
def web_settings(tmp_path: Path, store_url: str, secret_key: str) -> Settings:
    return Settings.model_validate(
        {
            "home": tmp_path / "home",
            "database_url": store_url,
            "secret_key": secret_key,
            "web_allowed_hosts": "testserver,127.0.0.1,localhost",
        }
    )


@pytest.fixture
def world(store: Store) -> World:
    return World(a=make_workspace(store, "acme"), b=make_workspace(store, "globex"))


@pytest.fixture
def app(web_settings: Settings, store: Store, world: World) -> Iterator[FastAPI]:
    app = create_app(web_settings, store=store)
    with TestClient(app):
        yield app


class Browser(TestClient):
    """A client that keeps cookies like a browser and knows its forms' anti-forgery token.

    Not entered as a context manager: the app's lifespan runs once, in the `app` fixture.
    """

    csrf: str = ""

    def form(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.post(path, data={"csrf_token": self.csrf, **(data or {})})


def signed_in(app: FastAPI, store: Store, user: User) -> Browser:
    client = Browser(app, follow_redirects=False)
    token = start_session(store, user)
    client.cookies.set("koppel_session", token)
    client.csrf = csrf_token(token)
    return client


@pytest.fixture
def client_for(app: FastAPI, store: Store) -> Callable[[User], Browser]:
    return lambda user: signed_in(app, store, user)


@pytest.fixture
def anonymous(app: FastAPI) -> Browser:
    return Browser(app, follow_redirects=False)


def form_token(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "the page has no form with an anti-forgery token"
    return found.group(1)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Chromium]:
    """The browser of a module's browser tests (tests/web/test_browser*.py)."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()
