"""The engine processes' page in a real browser (Debian's Chromium, Playwright), reached from
the connections page: a live, a silent, a stopped and a taken-over process, photographed at
1280 and 390 px wide, and the page before any process started."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from koppel.settings import Settings
from koppel.store import Store
from tests.web.conftest import World
from tests.web.test_browser import photograph, serve, sign_in
from tests.web.test_web_workers import seed_executors

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium: Browser, web_settings: Settings, store: Store, world: World) -> Iterator[Page]:
    with serve(web_settings, store) as url:
        context = chromium.new_context(base_url=url, locale="en-GB", timezone_id="UTC")
        yield context.new_page()
        context.close()


def test_the_processes_are_listed_from_the_connections_page(
    page: Page, store: Store, world: World
) -> None:
    seed_executors(store, world)
    sign_in(page, world.a.viewer.email)
    page.get_by_role("link", name="All connections").first.click()
    expect(page.get_by_text("Engine processes: 1 live")).to_be_visible()
    photograph(page, "connections-workers")
    page.get_by_role("link", name="see the engine processes").click()
    expect(page.get_by_role("heading", name="Engine processes", exact=True)).to_be_visible()
    expect(page.locator("table.workers tbody tr")).to_have_count(4)

    def state(process: str) -> Locator:
        return page.get_by_role("row", name=re.compile(f"^{process} ")).get_by_role("cell").nth(3)

    expect(state("web-1")).to_have_text("live")
    expect(state("web-2")).to_have_text("taken over by web-1")
    expect(state("night-7")).to_have_text(
        "silent for 10 minutes no live process has taken over its runs yet"
    )
    expect(state("cron-3")).to_have_text("stopped")
    photograph(page, "workers")


def test_before_any_process_the_page_says_what_to_start(page: Page, world: World) -> None:
    sign_in(page, world.a.viewer.email)
    expect(page.get_by_role("link", name="0 engine processes live")).to_be_visible()
    photograph(page, "home-workers")
    page.get_by_role("link", name="0 engine processes live").click()
    expect(page.get_by_text("No engine process has started yet.")).to_be_visible()
    photograph(page, "workers-none")
