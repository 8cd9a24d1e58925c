"""The reconciliation page in a real browser, over the demo's real runs and sandboxes: a price
changed by hand in AccountView shows as drift, field by field, and "sync these" puts it right.
Photographed at 1280 and 390 px wide."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from koppel.engine.runner import FlowRunner
from koppel.sandbox.accountview import AccountViewSandbox
from koppel.services import runs
from koppel.services.demo import DEMO_LOGIN, apply_demo, demo_admin, set_up_demo
from koppel.store import Store, open_store
from koppel.web import create_app
from tests.web.test_browser import LiveServer, photograph, sign_in

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Served:
    url: str
    store: Store
    accountview: AccountViewSandbox
    password: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home: Path = tmp_path_factory.mktemp("koppel-home")
    with set_up_demo(home, 20) as set_up:
        store = open_store(set_up.settings)
        try:
            flows = apply_demo(store, set_up)

            async def run_once() -> None:
                async with runs.started_runner(
                    store, set_up.settings, handle_signals=False
                ) as runner:
                    await runs.run_flows(runner, store, flows)

            # In a thread of its own: Playwright's sync API holds this thread's event loop.
            with ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, run_once()).result()
            _, password = demo_admin(store, set_up)
            runner = FlowRunner(store, set_up.settings, handle_signals=False)
            with LiveServer(create_app(set_up.settings, store=store, runner=runner)) as url:
                yield Served(url, store, set_up.sandboxes.accountview, password)
        finally:
            store.close()


@pytest.fixture
def page(chromium: Browser, served: Served) -> Iterator[Page]:
    context = chromium.new_context(base_url=served.url, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    yield page
    context.close()


def test_drift_is_shown_by_field_and_synced_away(page: Page, served: Served) -> None:
    sign_in(page, DEMO_LOGIN, served.password)
    page.get_by_role("link", name="Compare both systems (reconciliation)").first.click()
    expect(page.get_by_role("heading", name="Reconciliation", exact=True)).to_be_visible()
    page.get_by_role("button", name="Compare now").click()
    expect(page.get_by_text("Both systems are compared")).to_be_visible()
    products = page.locator("section", has=page.get_by_role("heading", name="products"))
    expect(products).to_contain_text("No drift")

    [integration] = served.store.integrations.list()
    linked = {link.target_key for link in served.store.links.page(integration.id, "products")}
    article = next(
        r for r in served.accountview.rows("ARTICLE") if r["ART_CODE"] in linked and r["PX_SELL"]
    )
    code, price = article["ART_CODE"], Decimal(str(article["PX_SELL"]))
    served.accountview.edit("ARTICLE", code, {"PX_SELL": float(price + 5)})
    page.get_by_role("button", name="Compare now").click()
    row = products.get_by_role("row").filter(has_text=f"SKU '{code}'")
    expect(row).to_contain_text("PX_SELL")
    expect(row.get_by_role("cell").nth(2)).to_have_text(format((price + 5).normalize(), "f"))
    expect(row.get_by_role("cell").nth(3)).to_have_text(format(price.normalize(), "f"))
    expect(products).to_contain_text("1 difference")
    photograph(page, "reconciliation-drift")

    page.get_by_role("button", name="Sync this record").click()
    expect(page.get_by_text("The drifted records are being synced again")).to_be_visible()
    for _ in range(30):
        current = served.accountview.rows("ARTICLE", ART_CODE=code)[0]["PX_SELL"]
        if Decimal(str(current)) == price:
            break
        page.wait_for_timeout(500)
    page.get_by_role("button", name="Compare now").click()
    expect(products).to_contain_text("No drift")
    expect(page.get_by_role("button", name="Sync this record")).to_have_count(0)
    photograph(page, "reconciliation")
