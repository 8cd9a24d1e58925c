"""The web app in a real browser: Debian's Chromium driven by Playwright over real HTTP.

Playwright never downloads a browser here: it starts /usr/bin/chromium (the Makefile and .ci/run
install it when missing). Every page is photographed at 1280 and 390 px wide into
.artifacts/screenshots/ (git-ignored), to be looked at as a user would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from koppel.config.model import NotificationSettings
from koppel.settings import Settings
from koppel.store import Store
from koppel.web import create_app
from tests.fixtures_notify import SMTP_PASSWORD, Inbox, Receiver, notifications
from tests.web.conftest import PASSWORD, World

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parents[2] / ".artifacts" / "screenshots"
WIDTHS = {"wide": (1280, 900), "narrow": (390, 844)}


class LiveServer:
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def serve(settings: Settings, store: Store) -> LiveServer:
    return LiveServer(create_app(settings, store=store))


@pytest.fixture
def base_url(web_settings: Settings, store: Store, world: World) -> Iterator[str]:
    with serve(web_settings, store) as url:
        yield url


@pytest.fixture
def page(chromium: Browser, base_url: str) -> Iterator[Page]:
    context = chromium.new_context(
        base_url=base_url, locale="en-GB", timezone_id="Europe/Amsterdam"
    )
    page = context.new_page()
    yield page
    context.close()


def photograph(page: Page, name: str) -> None:
    """The page at both widths; the test goes on at the wide one."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        if label == "narrow":
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{name} is wider than {width} px: {scroll_width}"
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")


def test_sign_in_see_the_workspace_and_sign_out(page: Page, world: World) -> None:
    page.goto("/")
    expect(page).to_have_url("/login")
    photograph(page, "login")
    sign_in(page, world.a.admin.email)
    expect(page.get_by_role("heading", name="Integrations of acme")).to_be_visible()
    photograph(page, "home")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # from the main content on: past the menu, not into it
    expect(page.get_by_role("link", name="Home")).not_to_be_focused()
    expect(page.get_by_role("cell", name="products").first).to_be_visible()
    expect(page.get_by_text("pim → av")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto("/account")
    expect(page).to_have_url("/login?next=/account")


def test_a_wrong_password_says_so_and_keeps_the_address(page: Page, world: World) -> None:
    sign_in(page, world.a.viewer.email, "not the password")
    expect(page.get_by_role("alert")).to_have_text(
        "The e-mail address or the password is not right."
    )
    expect(page.get_by_label("E-mail address")).to_have_value(world.a.viewer.email)
    photograph(page, "login-refused")


def test_a_viewer_cannot_reach_the_admin_actions(page: Page, world: World) -> None:
    sign_in(page, world.a.viewer.email)
    expect(page.get_by_role("link", name="My account")).to_be_visible()
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    page.goto("/users")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("Only an admin of the workspace may do this.")).to_be_visible()
    photograph(page, "not-allowed")


def test_an_admin_manages_users_with_the_keyboard_and_confirms_a_removal(
    page: Page, world: World, store: Store
) -> None:
    sign_in(page, world.a.admin.email)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("E-mail address").fill("new@acme.example")
    page.get_by_label("Name", exact=True).fill("New Colleague")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_role("button", name="Add user").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("The user is added.")
    expect(page.get_by_role("button", name="Remove new@acme.example")).to_be_visible()
    photograph(page, "users")
    questions: list[str] = []

    def answer(dialog: object) -> None:
        questions.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", answer)
    page.get_by_role("button", name="Remove new@acme.example").click()
    expect(page.get_by_role("status")).to_contain_text("The user is removed")
    assert questions == ["Remove new@acme.example? Their sessions and API tokens end at once."]
    assert store.users.get_by_email("new@acme.example") is None


def test_an_api_token_is_made_and_shown_once(page: Page, world: World) -> None:
    sign_in(page, world.a.viewer.email)
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("nightly report")
    page.get_by_label("Valid for").select_option("30")
    page.get_by_role("button", name="Make token").click()
    secret = page.get_by_role("textbox", name="New token").input_value()
    assert secret.startswith("kpl_")
    photograph(page, "tokens")
    page.goto("/account/tokens")
    expect(page.get_by_role("button", name="Revoke nightly report")).to_be_visible()
    assert secret not in page.content()


def test_switching_the_language_to_dutch_shows_dutch(page: Page, world: World) -> None:
    sign_in(page, world.a.viewer.email)
    page.get_by_role("link", name="My account").click()
    photograph(page, "account")
    page.get_by_label("Language of the pages").select_option("nl")
    page.get_by_role("button", name="Save language").click()
    expect(page.get_by_role("heading", name="Mijn account", exact=True)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Uw taal is opgeslagen.")
    expect(page.get_by_role("button", name="Uitloggen")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "nl"
    photograph(page, "account-nl")
    page.get_by_role("link", name="Start").click()
    expect(page.get_by_role("heading", name="Koppelingen van acme")).to_be_visible()
    expect(page.get_by_text("elke 1 minuut")).to_be_visible()
    photograph(page, "home-nl")


def test_the_first_run_makes_the_first_admin_with_the_one_time_token(
    chromium: Browser, web_settings: Settings, store: Store
) -> None:
    app = create_app(web_settings, store=store)
    token = app.state.koppel.first_run.token
    assert token
    with LiveServer(app) as url:
        context = chromium.new_context(base_url=url, locale="de-DE")
        page = context.new_page()
        page.goto("/login")
        expect(page.get_by_text("Es gibt noch kein Konto.")).to_be_visible()
        page.goto(f"/first-run?token={token}")
        expect(page.get_by_role("heading", name="Willkommen bei Koppel")).to_be_visible()
        photograph(page, "first-run-de")
        page.get_by_label("Arbeitsbereich").fill("Acme")
        page.get_by_label("Ihr Name").fill("Anna Admin")
        page.get_by_label("E-Mail-Adresse").fill("anna@acme.example")
        page.get_by_label("Passwort").fill(PASSWORD)
        page.get_by_role("button", name="Ersten Admin anlegen").click()
        expect(page.get_by_role("heading", name="Integrationen von Acme")).to_be_visible()
        photograph(page, "home-empty-de")
        page.goto(f"/first-run?token={token}")
        expect(page.get_by_role("heading", name="Nicht gefunden")).to_be_visible()
        photograph(page, "not-found-de")
        context.close()


def test_an_admin_sends_a_test_notification_from_its_page(
    page: Page, world: World, store: Store, inbox: Inbox, receiver: Receiver
) -> None:
    section = notifications(inbox, receiver)
    section["email"]["password"] = SMTP_PASSWORD
    plain, secrets = NotificationSettings.model_validate(section).stored()
    store.notifications.put_settings(world.a.tenant_id, plain, secrets)
    store.notifications.enqueue(
        world.a.tenant_id,
        "run-failed:r1",
        "run_failed",
        {"title": "Koppel: run 1 of acme/products failed", "text": "", "key": "", "kind": ""},
        ["email"],
    )
    sign_in(page, world.a.admin.email)
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", name="Notifications of acme")).to_be_visible()
    expect(page.get_by_text("Koppel: run 1 of acme/products failed")).to_be_visible()
    photograph(page, "notifications")
    page.get_by_role("button", name="Send a test notification").click()
    expect(page.get_by_role("status")).to_have_text(
        "The test notification is sent through every channel."
    )
    assert [str(m["Subject"]) for m in inbox.messages] == ["Koppel: test notification"]
    assert [d["kind"] for d in receiver.documents()] == ["test"]
