"""The activity log and the dead letters in a real browser (Debian's Chromium, Playwright),
over a store where the products flow really ran against both sandboxes: a failed record's
entry with both payloads, a replay after fixing the cause, a viewer who cannot replay, another
workspace's records that are not found. Every page is photographed at 1280 and 390 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from koppel.accounts.signin import csrf_token, start_session
from koppel.accounts.users import set_language
from koppel.settings import Settings
from koppel.store import DeadLetterStatus, Store
from koppel.web import create_app
from tests.web.conftest import World
from tests.web.records import TOO_LONG_SKUS, Shop, synced_shop
from tests.web.test_browser import LiveServer, photograph, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(store: Store, web_settings: Settings, tmp_path: Path, world: World) -> Iterator[Shop]:
    """The shop, beside the world's workspaces (the other workspace of the 404 test), whose
    flows point nowhere: off, so the engine's scheduler leaves them alone."""
    for workspace in (world.a, world.b):
        store.flows.set_enabled(workspace.seeded.flow.id, False)
    with synced_shop(store, web_settings, tmp_path) as synced:
        yield synced


@pytest.fixture
def shop_url(web_settings: Settings, store: Store, shop: Shop) -> Iterator[str]:
    app = create_app(web_settings, store=store, runner=shop.runner(store))
    with LiveServer(app) as url:
        yield url


def open_page(chromium: Browser, url: str) -> Page:
    context = chromium.new_context(base_url=url, locale="en-GB", timezone_id="Europe/Amsterdam")
    return context.new_page()


def test_a_failed_records_entry_shows_what_came_and_what_was_sent(
    chromium: Browser, shop_url: str, shop: Shop
) -> None:
    page = open_page(chromium, shop_url)
    sign_in(page, shop.viewer.email)
    page.get_by_role("link", name="Activity log").click()
    expect(page.get_by_role("heading", name="Activity log", exact=True)).to_be_visible()
    photograph(page, "activity")
    page.get_by_label("Record key").fill(TOO_LONG_SKUS[0])
    page.get_by_label("Record key").press("Enter")
    expect(page.get_by_role("heading", name="Matching records")).to_be_visible()
    rows = page.locator("table.entries tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("failed")
    photograph(page, "activity-search")
    page.get_by_label("Outcome").select_option("created")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No record matches.")).to_be_visible()
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Outcome").select_option("failed")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(2)

    page.goto(f"/activity/{shop.failed.id}")
    expect(page.get_by_role("heading", name="Outcome: failed")).to_be_visible()
    source = page.get_by_role("region", name="From the source")
    sent = page.get_by_role("region", name="Sent to the target")
    expect(source.get_by_role("row", name=re.compile(r"^sku "))).to_contain_text(TOO_LONG_SKUS[0])
    expect(source.get_by_role("row", name=re.compile(r"^price_excl_vat "))).to_contain_text(
        "1234.56"
    )
    expect(sent).to_be_visible()
    expect(page.locator("dd.reason")).to_contain_text(TOO_LONG_SKUS[0])
    photograph(page, "activity-entry-failed")
    page.get_by_role("link", name="Activity log", exact=True).first.click()
    page.locator("table.entries tbody tr", has_text="created").first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Outcome: created")).to_be_visible()
    expect(page.get_by_role("region", name="Sent to the target")).to_contain_text("ART_CODE")
    photograph(page, "activity-entry")
    page.context.close()


def test_an_admin_fixes_the_cause_replays_the_dead_letter_and_sees_it_synced(
    chromium: Browser, shop_url: str, shop: Shop, store: Store
) -> None:
    page = open_page(chromium, shop_url)
    sign_in(page, shop.admin.email)
    page.get_by_role("link", name="Dead letters", exact=True).click()
    expect(page.get_by_role("heading", name="Dead letters", exact=True)).to_be_visible()
    rows = page.locator("table.letters tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("ART_CODE")
    photograph(page, "dead-letters")
    page.get_by_role("link", name=shop.dead_letter.source_key, exact=True).click()
    expect(page.get_by_role("heading", name="Outcome: failed")).to_be_visible()
    expect(page.get_by_role("region", name="From the source")).to_contain_text(TOO_LONG_SKUS[0])
    page.go_back()

    sku = shop.fix_the_sku(0)
    page.get_by_role("checkbox", name=f"Choose {shop.dead_letter.source_key}").check()
    page.get_by_role("button", name="Replay the chosen").press("Enter")
    expect(page.get_by_role("status")).to_have_text(
        "The replay has run with today's mapping and settings."
    )
    expect(page.locator("table.entries tbody tr")).to_have_count(1)
    expect(page.locator("table.entries tbody tr").first).to_contain_text("created")
    expect(page.locator("table.entries tbody tr").first).to_contain_text(sku)
    photograph(page, "activity-replayed")
    assert sku in shop.articles()
    assert store.dead_letters.get(shop.dead_letter.id).status is DeadLetterStatus.RESOLVED  # type: ignore[union-attr]

    page.goto("/dead-letters")
    expect(rows).to_have_count(1)
    questions: list[str] = []

    def answer(dialog: object) -> None:
        questions.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", answer)
    page.get_by_role("checkbox").check()
    page.get_by_label("Reason (kept in the audit log)").fill("discontinued product")
    page.get_by_role("button", name="Discard").click()
    expect(page.get_by_role("status")).to_contain_text("The dead letters are discarded")
    assert questions == ["Discard the chosen dead letters? They are not retried again."]
    expect(page.get_by_text("No record waits for a retry.")).to_be_visible()
    photograph(page, "dead-letters-empty")
    actions = [e.action for e in store.audit.list(shop.tenant_id)]
    assert actions.count("dead_letter.replay") == 1 and actions.count("dead_letter.discard") == 1
    page.context.close()


def test_a_viewer_sees_the_dead_letters_without_a_replay_and_is_refused_one(
    chromium: Browser, shop_url: str, shop: Shop, store: Store
) -> None:
    set_language(store, shop.viewer, "nl")  # the pages in Dutch once signed in
    page = open_page(chromium, shop_url)
    sign_in(page, shop.viewer.email)
    page.goto("/dead-letters")
    expect(page.get_by_role("heading", name="Dead letters", exact=True)).to_be_visible()
    expect(page.locator("table.letters tbody tr")).to_have_count(2)
    expect(page.get_by_role("button", name="Opnieuw verwerken")).to_have_count(0)
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(
        page.get_by_text("Alleen een beheerder van de werkruimte mag dead letters")
    ).to_be_visible()
    photograph(page, "dead-letters-viewer-nl")
    token = start_session(store, shop.viewer)
    page.context.add_cookies([{"name": "koppel_session", "value": token, "url": shop_url}])
    refused = page.request.post(
        f"/dead-letters/{shop.dead_letter.id}/replay",
        form={"csrf_token": csrf_token(token)},
        max_redirects=0,
    )
    assert refused.status == 403
    assert len(shop.pending(store)) == 2
    page.goto(f"/activity/{shop.failed.id}")
    expect(page.get_by_role("heading", name="Uit de bron")).to_be_visible()
    expect(page.get_by_text("1234.56").first).to_be_visible()
    photograph(page, "activity-entry-nl")
    page.context.close()


def test_another_workspaces_record_and_dead_letter_are_not_found(
    chromium: Browser, shop_url: str, shop: Shop, world: World
) -> None:
    page = open_page(chromium, shop_url)
    sign_in(page, world.b.admin.email)
    for path in (f"/activity/{shop.failed.id}", f"/dead-letters?flow={shop.flow.id}"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 404, path
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page.get_by_text(TOO_LONG_SKUS[0])).to_have_count(0)
    photograph(page, "activity-not-found")
    refused = page.request.post(
        f"/api/v1/dead-letters/{shop.dead_letter.id}/replay",
        headers={"Authorization": f"Bearer {world.b.admin_token.secret}"},
    )
    assert refused.status == 404
    page.goto("/activity")
    expect(page.get_by_text(TOO_LONG_SKUS[0])).to_have_count(0)
    page.context.close()
