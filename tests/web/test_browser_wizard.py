"""The setup wizard in a real browser, from an empty home to a running integration, against
both sandboxes over real HTTP (the OAuth round trip through the AccountView sandbox's login
page), and its bad paths: each step says what is wrong and how to fix it.

Every step is photographed at 1280 and 390 px (`photograph`, .artifacts/screenshots/wizard-*).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from koppel.engine.runner import FlowRunner
from koppel.sandbox.accountview.app import API
from koppel.services.demo import SHIPPING_ARTICLE, DemoSandboxes, running_sandboxes
from koppel.settings import Settings
from koppel.store import ConnectionState, Store
from koppel.web import create_app
from tests.e2e.cli import sellable_skus
from tests.web.conftest import PASSWORD
from tests.web.test_browser import LiveServer, photograph

pytestmark = pytest.mark.browser

PAYMENT_TERMS = {"DIR": "03", "14D": "01", "30D": "02"}
PAYMENT_METHODS = {
    "IDEAL": "IDEAL",
    "BANK": "BANK",
    "PIN": "PIN",
    "CREDIT": "CREDITCARD",
    "REMBOURS": "CONTANT",
}
ADMIN = "anna@acme.example"


@dataclass
class Home:
    """An empty Koppel home served with its engine, the sandboxes beside it."""

    url: str
    token: str
    sandboxes: DemoSandboxes
    store: Store

    @property
    def pim_url(self) -> str:
        return self.sandboxes.partspim_url

    @property
    def av_url(self) -> str:
        return self.sandboxes.accountview_url.rstrip("/") + API


@pytest.fixture
def home(web_settings: Settings, store: Store) -> Iterator[Home]:
    settings = web_settings.model_copy(update={"allowed_networks": "127.0.0.1"})
    with running_sandboxes(12) as sandboxes:
        sandboxes.accountview.write("ARTICLE", [SHIPPING_ARTICLE])
        runner = FlowRunner(store, settings, handle_signals=False)
        app = create_app(settings, store=store, runner=runner)
        token = app.state.koppel.first_run.token
        assert token
        with LiveServer(app) as url:
            yield Home(url, token, sandboxes, store)


@pytest.fixture
def page(chromium: Browser, home: Home) -> Iterator[Page]:
    context = chromium.new_context(base_url=home.url, locale="en-GB")
    page = context.new_page()
    yield page
    context.close()


def first_admin(page: Page, home: Home) -> None:
    page.goto(f"/first-run?token={home.token}")
    page.get_by_label("Workspace").fill("acme")
    page.get_by_label("Your name").fill("Anna Admin")
    page.get_by_label("E-mail address").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Make the first admin").click()
    expect(page.get_by_role("heading", name="Integrations of acme")).to_be_visible()


def choose_applications(page: Page) -> None:
    page.get_by_role("link", name="Set up an integration").click()
    expect(page.get_by_role("heading", name="Which applications do you connect?")).to_be_visible()
    photograph(page, "wizard-1-applications")
    page.get_by_role("button", name="Next: connections").click()
    expect(page.get_by_role("heading", name="Parts Pim")).to_be_visible()


def parts_pim_card(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("section", has=page.get_by_role("heading", name="Parts Pim"))


def accountview_card(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("section", has=page.get_by_role("heading", name="AccountView"))


def connect_parts_pim(page: Page, base_url: str, api_key: str) -> None:
    card = parts_pim_card(page)
    card.get_by_label("Address (base URL)").fill(base_url)
    card.get_by_label("API key").fill(api_key)
    card.get_by_role("button", name="Save and test").click()


def authorise_accountview(page: Page, base_url: str, client_id: str, secret: str) -> None:
    card = accountview_card(page)
    card.get_by_label("Address (base URL)").fill(base_url)
    card.get_by_label("Client id").fill(client_id)
    card.get_by_label("Client secret").fill(secret)
    card.get_by_role("button", name="Authorise").click()
    card.get_by_role("link", name="Continue to the AccountView login").click()


def test_the_wizard_from_an_empty_home_to_the_first_synced_order(page: Page, home: Home) -> None:
    first_admin(page, home)
    choose_applications(page)
    photograph(page, "wizard-2-connections")
    connect_parts_pim(page, home.pim_url, home.sandboxes.partspim.store.api_key)
    expect(page.get_by_text("The connection works.")).to_be_visible()
    app = home.sandboxes.accountview.client_app
    authorise_accountview(page, home.av_url, app.client_id, app.client_secret)
    expect(page.get_by_role("heading", name="AccountView.Net (sandbox)")).to_be_visible()
    photograph(page, "wizard-2-accountview-login")
    page.get_by_role("button", name="Allow").click()
    expect(
        page.get_by_text("Koppel is authorised. Choose the company it works in.")
    ).to_be_visible()
    photograph(page, "wizard-2-company")
    page.get_by_role("button", name="Use this company and test").click()
    expect(accountview_card(page).get_by_text("The connection works.")).to_be_visible()
    photograph(page, "wizard-2-connected")
    page.get_by_role("link", name="Next: flows").click()

    expect(page.get_by_role("heading", name="What should Koppel keep in sync?")).to_be_visible()
    photograph(page, "wizard-3-flows")
    page.get_by_role("button", name="Next: settings").click()

    expect(page.get_by_role("heading", name="A few questions")).to_be_visible()
    expect(page.get_by_label("Employee number of the orders")).to_have_value("999999")
    page.get_by_label("Article for shipping costs").fill(str(SHIPPING_ARTICLE["ART_CODE"]))
    for code, target in PAYMENT_TERMS.items():
        page.locator(f'select[name="payment_terms.{code}"]').select_option(target)
    for code, target in PAYMENT_METHODS.items():
        page.locator(f'select[name="payment_methods.{code}"]').select_option(target)
    page.get_by_label("Prices of AccountView's orders are").select_option("incl_vat")
    expect(page.get_by_label("ART_MEMO (long_description)")).not_to_be_checked()
    expect(page.get_by_label("ART_DESC2 (short_description)")).to_be_checked()
    page.get_by_label("ART_MEMO (long_description)").check()
    page.get_by_label("ART_DESC2 (short_description)").uncheck()
    photograph(page, "wizard-4-settings")
    page.get_by_role("button", name="Next: dry run").click()

    expect(page.get_by_role("heading", name="What the first sync would do")).to_be_visible()
    writes_before = writes(home)
    page.get_by_role("button", name="Run the dry run").click()
    expect(page.get_by_role("heading", name="Examples of what would be sent")).to_be_visible()
    photograph(page, "wizard-5-dry-run")
    assert writes(home) == writes_before, "the dry run wrote to a sandbox"
    pim = home.sandboxes.partspim.store
    assert forecast(page, "products", "products", "created") == len(sellable_skus_of(home))
    assert forecast(page, "products", "categories", "created") == len(pim.all("categories"))
    assert forecast(page, "customers", "customers", "created") == len(pim.all("relations"))
    assert forecast(page, "orders", "orders", "failed") == 0
    orders_forecast = forecast(page, "orders", "orders", "created")
    assert orders_forecast == len(pim.all("orders")) - forecast(page, "orders", "orders", "skipped")
    assert orders_forecast > 0

    page.get_by_role("button", name="Activate the integration").click()
    expect(page.get_by_text("The integration is active")).to_be_visible()
    photograph(page, "wizard-6-active")
    (integration,) = home.store.integrations.list(tenant_of(home))
    flows = {f.name: f for f in home.store.flows.list(integration.id)}
    assert flows["orders"].settings["accountview_prices_include_vat"] is True
    assert flows["products"].mapping["send"]["fields"]["ART_MEMO"]["on"] == "always"
    assert flows["products"].mapping["send"]["fields"]["ART_DESC2"]["on"] == "create"
    order = first_synced_order(home)
    expect(activity_row(page, order, re.compile(r"· run \d+ orders .* created"))).to_be_visible()
    photograph(page, "wizard-7-activity")

    # A grant AccountView refused later: the connections page offers to authorise it again.
    tenant = tenant_of(home)
    av = home.store.connections.get_by_name(tenant, "accountview")
    assert av is not None
    home.store.connections.set_state(av.id, ConnectionState.NEEDS_AUTHORISATION, "grant revoked")
    page.goto("/connections")
    card = page.locator("section", has=page.get_by_role("heading", name="accountview"))
    expect(card.get_by_text("needs authorisation")).to_be_visible()
    card.get_by_role("button", name="Authorise again").click()
    photograph(page, "connections-authorise-again")
    page.get_by_role("link", name="Continue to the login page").click()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_text("The connection is authorised again.")).to_be_visible()
    card = page.locator("section", has=page.get_by_role("heading", name="accountview"))
    expect(card.get_by_text("ready", exact=True)).to_be_visible()
    expect(card.get_by_text("needs authorisation")).to_have_count(0)


def writes(home: Home) -> list[str]:
    return [
        f"{e.method} {e.path}"
        for sandbox in (home.sandboxes.partspim, home.sandboxes.accountview)
        for e in sandbox.faults.log.entries()
        if e.method in ("POST", "PUT", "PATCH", "DELETE")
        and not e.path.endswith("/token")
        and "authorize" not in e.path
    ]


def sellable_skus_of(home: Home) -> set[str]:
    @dataclass
    class _Platform:
        sandboxes: DemoSandboxes

    return sellable_skus(_Platform(home.sandboxes))  # type: ignore[arg-type]


def forecast(page: Page, flow: str, entity: str, kind: str) -> int:
    card = page.locator("section", has=page.get_by_role("heading", name=flow, exact=True))
    cell = card.locator(f'tr[data-entity="{entity}"] td[data-kind="{kind}"] .count')
    return int(cell.inner_text())


def first_synced_order(home: Home) -> str:
    """The reference of the first Parts Pim order that reached AccountView (the activation's
    first run works in the background; this waits for it, up to a minute)."""
    pim_refs = {
        str(o.get("reference") or o.get("number"))
        for o in home.sandboxes.partspim.store.all("orders")
    }
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        booked = [
            r["ORD_REF"]
            for r in home.sandboxes.accountview.rows("SO_HDR")
            if r["ORD_REF"] in pim_refs
        ]
        if booked:
            return str(sorted(booked)[0])
        time.sleep(0.2)
    raise AssertionError("no Parts Pim order reached AccountView within a minute")


def activity_row(page: Page, key: str, name: re.Pattern[str]) -> Locator:
    """The activity log's row of a record, reloading the page until the run has recorded it:
    the run books an order in AccountView before it writes the batch's activity entries."""
    page.goto(f"/activity?key={key}")
    row = page.get_by_role("row", name=name)
    deadline = time.monotonic() + 60
    while row.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    return row


def test_a_wrong_api_key_says_so_and_saves_nothing(page: Page, home: Home) -> None:
    first_admin(page, home)
    choose_applications(page)
    connect_parts_pim(page, home.pim_url, "not-the-key")
    failed = parts_pim_card(page).get_by_role("alert")
    expect(failed).to_contain_text("The test failed.")
    expect(failed).to_contain_text("credentials were refused")
    expect(failed).to_contain_text("copy it again from the application")
    expect(failed).to_contain_text("Nothing was saved")
    photograph(page, "wizard-bad-api-key")
    assert home.store.connections.list(tenant_of(home)) == []


def test_an_unreachable_address_says_nothing_listens_there(page: Page, home: Home) -> None:
    first_admin(page, home)
    choose_applications(page)
    connect_parts_pim(page, "http://127.0.0.1:9", home.sandboxes.partspim.store.api_key)
    failed = parts_pim_card(page).get_by_role("alert")
    expect(failed).to_contain_text("refused the connection (nothing listens there)")
    expect(failed).to_contain_text("check its address and that the service is up")
    photograph(page, "wizard-bad-unreachable")
    assert home.store.connections.list(tenant_of(home)) == []


@pytest.mark.parametrize(
    ("address", "because"),
    [
        ("http://169.254.169.254/latest/meta-data", "link-local address"),
        ("http://10.20.30.40/api", "KOPPEL_ALLOWED_NETWORKS"),
        ("ftp://127.0.0.1/api", "only http:// and https://"),
    ],
)
def test_a_forbidden_address_is_refused_before_any_call(
    page: Page, home: Home, address: str, because: str
) -> None:
    first_admin(page, home)
    choose_applications(page)
    home.sandboxes.partspim.faults.log.clear()
    page.locator("#partspim-base_url").evaluate("input => input.type = 'text'")
    connect_parts_pim(page, address, home.sandboxes.partspim.store.api_key)
    expect(parts_pim_card(page).get_by_role("alert")).to_contain_text(because)
    if because == "link-local address":
        photograph(page, "wizard-bad-address")
    assert home.store.connections.list(tenant_of(home)) == []


def test_a_refused_authorisation_says_to_choose_allow(page: Page, home: Home) -> None:
    first_admin(page, home)
    choose_applications(page)
    app = home.sandboxes.accountview.client_app
    authorise_accountview(page, home.av_url, app.client_id, app.client_secret)
    page.get_by_role("button", name="Deny").click()
    refused = accountview_card(page).get_by_role("alert")
    expect(refused).to_contain_text("did not grant access (access_denied)")
    expect(refused).to_contain_text("start again and choose Allow")
    photograph(page, "wizard-bad-refused")
    expect(accountview_card(page).get_by_role("button", name="Authorise")).to_be_visible()
    assert home.store.connections.list(tenant_of(home)) == [], "a refused grant left a connection"


def test_a_wrong_client_secret_says_so_after_the_login(page: Page, home: Home) -> None:
    first_admin(page, home)
    choose_applications(page)
    app = home.sandboxes.accountview.client_app
    authorise_accountview(page, home.av_url, app.client_id, "not-the-secret")
    page.get_by_role("button", name="Allow").click()
    refused = accountview_card(page).get_by_role("alert")
    expect(refused).to_contain_text("AccountView refused the credentials")
    expect(refused).to_contain_text("check client_id and client_secret")
    photograph(page, "wizard-bad-client-secret")
    expect(accountview_card(page).get_by_role("button", name="Authorise")).to_be_visible()
    assert home.store.connections.list(tenant_of(home)) == [], "a failed grant left a connection"


def tenant_of(home: Home) -> int:
    tenant = home.store.tenants.get_by_name("acme")
    assert tenant is not None
    return tenant.id
