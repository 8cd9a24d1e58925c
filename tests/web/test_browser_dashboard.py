"""The dashboard, the runs and the connections in a real browser, over the demo's real runs.

The module sets the demo up once as `koppel demo` does (both sandboxes served over HTTP, every
flow run for real through the engine), adds the workspaces of tests/web/conftest.py beside it,
and serves the web app over that store. Every page is photographed at 1280 and 390 px wide.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from koppel.accounts.users import create_user
from koppel.services import runs
from koppel.services.demo import DEMO_LOGIN, apply_demo, demo_admin, set_up_demo
from koppel.services.runs import FlowReport
from koppel.store import OutcomeKind, Role, Store, counted, open_store
from koppel.web import create_app
from tests.web.conftest import PASSWORD, World, make_workspace
from tests.web.test_browser import LiveServer, photograph, sign_in

pytestmark = pytest.mark.browser

DEMO_PRODUCTS = 40
DUTCH_VIEWER = "kees@demo.example"


@dataclass(frozen=True)
class DemoServed:
    url: str
    store: Store
    reports: list[FlowReport]
    password: str
    """The demo admin's (DEMO_LOGIN)."""
    world: World
    """acme and globex beside the demo: their connections point nowhere."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServed]:
    home: Path = tmp_path_factory.mktemp("koppel-home")
    with set_up_demo(home, DEMO_PRODUCTS) as set_up:
        store = open_store(set_up.settings)
        try:
            flows = apply_demo(store, set_up)

            async def run_once() -> list[FlowReport]:
                async with runs.started_runner(
                    store, set_up.settings, handle_signals=False
                ) as runner:
                    return await runs.run_flows(runner, store, flows)

            # In a thread of its own: Playwright's sync API holds this thread's event loop.
            with ThreadPoolExecutor(1) as thread:
                reports = thread.submit(asyncio.run, run_once()).result()
            _, password = demo_admin(store, set_up)
            create_user(
                store,
                actor="test",
                tenant_id=store.tenants.ensure("demo").id,
                email=DUTCH_VIEWER,
                name="Kees Kijker",
                password=PASSWORD,
                role=Role.VIEWER,
                locale="nl",
            )
            world = World(a=make_workspace(store, "acme"), b=make_workspace(store, "globex"))
            with LiveServer(create_app(set_up.settings, store=store)) as url:
                yield DemoServed(url, store, reports, password, world)
        finally:
            store.close()


@pytest.fixture
def page(chromium: Browser, demo: DemoServed) -> Iterator[Page]:
    context = chromium.new_context(base_url=demo.url, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    yield page
    context.close()


def test_the_dashboard_shows_the_demos_numbers_and_refreshes_itself(
    page: Page, demo: DemoServed
) -> None:
    assert demo.reports and all(report.status == "succeeded" for report in demo.reports)
    sign_in(page, DEMO_LOGIN, demo.password)
    expect(page.get_by_role("heading", name="Integrations of demo")).to_be_visible()
    [integration] = demo.store.integrations.list(demo.store.tenants.ensure("demo").id)
    created = sum(counted(report.counts, OutcomeKind.CREATED) for report in demo.reports)
    updated = sum(counted(report.counts, OutcomeKind.UPDATED) for report in demo.reports)
    skipped = sum(counted(report.counts, OutcomeKind.SKIPPED) for report in demo.reports)
    assert created > 0 and updated > 0 and skipped > 0
    day = page.locator(f"#day-{integration.id}-totals")
    expect(day).to_contain_text(f"{created:,} created")
    expect(day).to_contain_text(f"{updated:,} updated")
    expect(day).to_contain_text(f"{skipped:,} skipped")
    expect(day).to_contain_text("0 failed")
    expect(page.locator(f"#week-{integration.id}-totals")).to_contain_text(f"{created:,} created")
    expect(page.get_by_text("records written in 24 hours")).to_be_visible()
    tile = page.locator(".tile", has_text="records written in 24 hours")
    expect(tile).to_contain_text(f"{created + updated:,}")
    expect(page.get_by_role("link", name="0 records wait in the dead letters")).to_have_attribute(
        "href", "/dead-letters"
    )
    flows = page.get_by_role("table", name=f"Flows of {integration.name}")
    for report in demo.reports:
        name = page.get_by_role("link", name=report.flow, exact=True)
        row = flows.get_by_role("row").filter(has=name)
        expect(row).to_contain_text("succeeded")
        expect(row).to_contain_text("up to date")
        expect(row.get_by_role("link", name=report.flow, exact=True)).to_have_attribute(
            "href", re.compile(r"^/runs\?flow=\d+$")
        )
    connections = page.locator(".rows").first  # what the runs' calls left on them
    expect(connections.get_by_text("Last successful call: none yet")).to_have_count(0)
    expect(connections.get_by_text("Last successful call:")).to_have_count(2)
    photograph(page, "dashboard")
    # The part with the numbers is fetched again while the page is open (koppel.js).
    expect(page.locator("#dashboard")).to_have_attribute(
        "data-refreshed-at", re.compile(r"^\d{4}-"), timeout=40_000
    )
    expect(day).to_contain_text(f"{created:,} created")


def test_runs_are_filtered_and_a_run_shows_its_counts_and_records(
    page: Page, demo: DemoServed
) -> None:
    sign_in(page, DEMO_LOGIN, demo.password)
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(len(demo.reports) + 1)
    photograph(page, "runs")
    products = next(report for report in demo.reports if report.flow == "products")
    page.get_by_label("Flow").select_option(label="demo-pim-av · products")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Show runs").press("Enter")  # the keyboard works it
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("products")
    photograph(page, "runs-filtered")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Show runs").click()
    expect(page.get_by_text("No run matches the filter.")).to_be_visible()
    page.get_by_role("link", name="Clear the filter").click()
    products_row = page.get_by_role("row").filter(
        has=page.get_by_role("cell", name="products", exact=True)
    )
    products_row.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Run \d+ of products$"))).to_be_visible()
    facts = page.locator(".facts")
    expect(facts).to_contain_text(f"API calls{products.api_calls:,}")
    expect(facts).to_contain_text("succeeded")
    entities = page.get_by_role("table", name="Records per entity and outcome")
    own = entities.get_by_role("row").filter(has=page.get_by_role("rowheader", name="products"))
    expect(own).to_contain_text(str(products.counts["created"]))
    categories = entities.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="categories")
    )
    expect(categories).to_contain_text(str(products.counts["categories.skipped"]))
    records = page.get_by_role("table", name="The run's records in the order they were recorded")
    first = records.get_by_role("link").first
    expect(first).to_have_attribute("href", re.compile(r"^/activity/\d+$"))
    expect(page.get_by_role("link", name=re.compile("in the activity log"))).to_have_attribute(
        "href", f"/activity?run={products.run_id}"
    )
    photograph(page, "run")


def test_a_connection_test_says_it_works_or_why_not(page: Page, demo: DemoServed) -> None:
    sign_in(page, DEMO_LOGIN, demo.password)
    page.get_by_role("link", name="Connections", exact=True).click()
    page.get_by_role("button", name="Test connection pim").click()
    expect(page.get_by_role("status")).to_contain_text("The connection works.")
    photograph(page, "connections")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, demo.world.a.admin.email)
    page.goto("/connections")
    page.get_by_role("button", name="Test connection pim").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The test failed.")
    expect(alert).to_contain_text("check its address and that the service is up")
    card = page.locator("section", has=page.get_by_role("heading", name="pim · partspim"))
    expect(card.locator(".facts")).to_contain_text("refused the connection")  # its last error
    photograph(page, "connections-failed")


def test_a_viewer_tests_no_connection_and_another_workspaces_run_is_not_found(
    page: Page, demo: DemoServed
) -> None:
    sign_in(page, demo.world.a.viewer.email)
    page.goto("/connections")
    expect(page.get_by_role("heading", name="pim · partspim")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Test connection"))).to_have_count(0)
    photograph(page, "connections-viewer")
    demo_run = demo.reports[0].run_id
    page.goto(f"/runs/{demo_run}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    photograph(page, "run-not-found")
    page.goto("/")
    expect(page.get_by_role("heading", name="Integrations of acme")).to_be_visible()
    expect(page.get_by_text("demo-pim-av")).to_have_count(0)


def test_a_dutch_viewer_reads_the_pages_in_dutch(page: Page, demo: DemoServed) -> None:
    sign_in(page, DUTCH_VIEWER)
    expect(page.get_by_role("heading", name="Koppelingen van demo")).to_be_visible()
    created = sum(counted(report.counts, OutcomeKind.CREATED) for report in demo.reports)
    expect(page.locator(".legend").first).to_contain_text(f"{created} aangemaakt")
    expect(page.get_by_text("Laatste geslaagde aanroep").first).to_be_visible()
    expect(page.get_by_text("actueel").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Verbinding testen"))).to_have_count(0)
    photograph(page, "dashboard-nl")
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_label("Status")).to_be_visible()
    expect(page.get_by_role("button", name="Runs tonen")).to_be_visible()
    photograph(page, "runs-nl")
    page.get_by_role("table").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Hoe het ging")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text(" dec 2026")  # a Dutch date
    photograph(page, "run-nl")
    page.get_by_role("link", name="Verbindingen", exact=True).click()
    expect(page.get_by_role("heading", name="Verbindingen van demo")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Verbinding testen"))).to_have_count(0)
    photograph(page, "connections-nl")
