"""The mapping editor in a real browser (Debian's Chromium, Playwright), over a store whose
products flow really ran against both sandboxes: an admin writes an expression on ART_DESC1,
sees the validation error of a typo beside the field as they type, fixes it, adds a function
from the library, saves, previews a real source record, syncs it (a replay on the app's engine)
and finds the new value in the AccountView sandbox; then restores the previous version. Every
page is photographed at 1280 and 390 px."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from koppel.settings import Settings
from koppel.store import Store
from koppel.web import create_app
from tests.sandboxes_inprocess import ACCOUNTVIEW_URL, PARTSPIM_URL
from tests.web.records import TOO_LONG_SKUS, Shop, synced_shop
from tests.web.test_browser import LiveServer, photograph, sign_in

pytestmark = pytest.mark.browser
TYPO = "'Koppel: ' & nmae"
EXPRESSION = "'Koppel: ' & name"


@pytest.fixture
def shop(store: Store, web_settings: Settings, tmp_path: Path) -> Iterator[Shop]:
    with synced_shop(store, web_settings, tmp_path) as synced:
        yield synced


@pytest.fixture
def shop_url(web_settings: Settings, store: Store, shop: Shop) -> Iterator[str]:
    app = create_app(web_settings, store=store, runner=shop.runner(store))
    with LiveServer(app) as url:
        yield url


@pytest.fixture
def page(chromium: Browser, shop_url: str) -> Iterator[Page]:
    context = chromium.new_context(
        base_url=shop_url, locale="en-GB", timezone_id="Europe/Amsterdam"
    )
    page = context.new_page()
    yield page
    context.close()


def test_an_admin_edits_previews_saves_syncs_and_restores_a_mapping(
    page: Page, shop: Shop, store: Store
) -> None:
    sign_in(page, shop.admin.email)
    page.get_by_role("link", name="mapping products").click()
    expect(page.get_by_role("heading", name="Mapping of products")).to_be_visible()
    row = page.locator("table.mapping tr", has=page.get_by_role("rowheader", name="ART_DESC1"))
    expect(row).to_have_class("default-rule")
    expect(row).to_contain_text("name")
    photograph(page, "mapping-table")

    page.get_by_role("link", name="Edit ART_DESC1").click()
    expect(page.get_by_role("heading", name="Edit ART_DESC1")).to_be_visible()
    page.get_by_label("Value from").select_option("expr")
    value = page.get_by_label("Source field, expression or constant")
    value.fill(TYPO)
    check = page.locator("#rule-check")
    expect(check).to_contain_text("the expression reads nmae")
    expect(check).to_contain_text("did you mean name")
    photograph(page, "mapping-edit-error")

    value.fill(EXPRESSION)
    expect(check.locator(".issue-error")).to_have_count(0)
    page.get_by_label("Function", exact=True).select_option("truncate")
    page.get_by_label("Arguments").fill("40")
    page.get_by_role("button", name="Add to the transforms").click()
    expect(page.get_by_label("Transforms, one a line")).to_have_value("trim\ntruncate: 40")
    expect(check.locator(".issue-error")).to_have_count(0)
    photograph(page, "mapping-edit")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_role("status")).to_have_text(
        "The mapping is saved as a new version; the next runs use it."
    )
    expect(row).to_have_class("override")
    expect(row).to_contain_text(EXPRESSION)
    photograph(page, "mapping-table-saved")
    flow = store.flows.get(shop.flow.id)
    assert flow is not None and flow.mapping_version == 2

    page.get_by_role("link", name="Preview").click()
    samples = page.locator("ul.samples a")
    expect(samples).to_have_count(len(shop.sandboxes.partspim.store.all("products")))
    samples.first.click()
    sent = page.get_by_role("region", name="Sent to the target")
    expect(sent.get_by_role("row", name="ART_DESC1")).to_contain_text("Koppel: ")
    expect(page.get_by_role("alert")).to_have_count(0)
    photograph(page, "mapping-preview")
    page.get_by_label("Search the records").fill(TOO_LONG_SKUS[0])
    page.get_by_role("button", name="Search").click()
    expect(samples).to_have_count(1)
    samples.first.click()
    expect(page.get_by_role("region", name="Source", exact=True)).to_contain_text(TOO_LONG_SKUS[0])
    expect(page.get_by_role("alert")).to_contain_text("ART_CODE")  # too long for AccountView
    photograph(page, "mapping-preview-failing")

    sku = shop.fix_the_sku(0)
    page.goto("/dead-letters")
    page.get_by_role("checkbox", name=f"Choose {shop.dead_letter.source_key}").check()
    page.get_by_role("button", name="Replay the chosen").click()
    expect(page.get_by_role("status")).to_have_text(
        "The replay has run with today's mapping and settings."
    )
    articles = {r["ART_CODE"]: r for r in shop.sandboxes.accountview.rows("ARTICLE")}
    assert articles[sku]["ART_DESC1"] == "Koppel: Remschijf te lang"

    page.goto(f"/flows/{shop.flow.id}/mapping/versions")
    diff = page.locator("table.diff tbody tr")
    expect(diff).to_have_count(1)
    expect(diff.first).to_contain_text("send.fields.ART_DESC1")
    expect(diff.first).to_contain_text(EXPRESSION)
    photograph(page, "mapping-versions")
    questions: list[str] = []

    def answer(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.get_by_role("button", name="Restore v1").click()
    expect(page.get_by_role("status")).to_contain_text("The version is restored")
    assert questions == ["Make version 1 current again, as a new version?"]
    flow = store.flows.get(shop.flow.id)
    assert flow is not None and flow.mapping_version == 3 and flow.mapping == {}
    page.goto(f"/flows/{shop.flow.id}/mapping")
    expect(row).to_have_class("default-rule")
    actions = [e.action for e in store.audit.list(shop.tenant_id)]
    assert actions.count("flow.mapping_saved") == 1
    assert actions.count("flow.mapping_restored") == 1

    other = shop.fix_the_sku(1)
    page.goto("/dead-letters")
    page.get_by_role("checkbox", name=f"Choose {shop.bad_products[1]['id']}").check()
    page.get_by_role("button", name="Replay the chosen").click()
    expect(page.get_by_role("status")).to_contain_text("The replay has run")
    articles = {r["ART_CODE"]: r for r in shop.sandboxes.accountview.rows("ARTICLE")}
    assert articles[other]["ART_DESC1"] == "Remschijf te lang"  # the default mapping again


def test_an_admin_downloads_the_integration_file_and_uploads_a_changed_one(
    page: Page, shop: Shop, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pim = shop.sandboxes.partspim.credentials(PARTSPIM_URL)
    av = shop.sandboxes.accountview.credentials(ACCOUNTVIEW_URL)
    sign_in(page, shop.admin.email)
    page.get_by_role("link", name="Integration files").click()
    expect(page.get_by_role("heading", name="Integration files")).to_be_visible()
    photograph(page, "integration-files")
    with page.expect_download() as download:
        page.get_by_role("link", name="initech-shop.yaml").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert "${PIM_API_KEY}" in text and pim["api_key"] not in text
    assert av["client_secret"] not in text and av["refresh_token"] not in text

    changed = tmp_path / "initech-shop.yaml"
    changed.write_text(text.replace("schedule: manual", "schedule: 10m"), encoding="utf-8")
    page.get_by_label("Integration file (YAML)").set_input_files(str(changed))
    page.get_by_role("button", name="Apply the file").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("pre.reason")).to_contain_text("environment variable PIM_API_KEY")
    photograph(page, "integration-files-refused")
    assert store.flows.get(shop.flow.id).schedule_seconds is None  # type: ignore[union-attr]

    for name, value in {
        "PIM_API_KEY": pim["api_key"],
        "AV_CLIENT_ID": av["client_id"],
        "AV_CLIENT_SECRET": av["client_secret"],
        "AV_COMPANY_ID": av["company_id"],
        "AV_REFRESH_TOKEN": av["refresh_token"],
    }.items():
        monkeypatch.setenv(name, value)
    page.get_by_label("Integration file (YAML)").set_input_files(str(changed))
    page.get_by_role("button", name="Apply the file").click()
    expect(page.get_by_role("status")).to_have_text("The integration file is applied.")
    assert store.flows.get(shop.flow.id).schedule_seconds == 600  # type: ignore[union-attr]
