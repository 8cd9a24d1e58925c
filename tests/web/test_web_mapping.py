"""The mapping editor through the app's routes, on a real store whose products flow really
synced against both sandboxes (served in-process): the table of rules, a rule checked as it is
written (with "did you mean"), saved as an audited version that the next run uses, a preview on
a real source record, two versions compared, one restored; and what a viewer may not do."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi import FastAPI

from koppel.accounts.signin import csrf_token, issue_token, start_session
from koppel.services import runs
from koppel.settings import Settings
from koppel.store import Flow, Store, User
from koppel.web import create_app
from tests.web.conftest import Browser, World
from tests.web.records import Shop, synced_shop

EXPRESSION = "'Koppel: ' & name"


@pytest.fixture
def shop(store: Store, web_settings: Settings, tmp_path: Path) -> Iterator[Shop]:
    with synced_shop(store, web_settings, tmp_path) as synced:
        yield synced


@pytest.fixture
def app(shop: Shop, web_settings: Settings, store: Store) -> FastAPI:
    """The app over the shop with its engine's network (the in-process sandboxes); its
    lifespan is not run, so the test's own sync may start the one engine of this process."""
    return create_app(web_settings, store=store, runner=shop.runner(store))


def _client(app: FastAPI, store: Store, user: User) -> Browser:
    client = Browser(app, follow_redirects=False)
    token = start_session(store, user)
    client.cookies.set("koppel_session", token)
    client.csrf = csrf_token(token)
    return client


@pytest.fixture
def admin(app: FastAPI, shop: Shop, store: Store) -> Browser:
    return _client(app, store, shop.admin)


@pytest.fixture
def viewer(app: FastAPI, shop: Shop, store: Store) -> Browser:
    return _client(app, store, shop.viewer)


def _rule(expression: str) -> dict[str, str]:
    return {"side": "send", "target": "ART_DESC1", "kind": "expr", "value": expression}


def _sync(store: Store, shop: Shop, flow: Flow) -> None:
    async def once() -> None:
        async with runs.started_runner(
            store, shop.settings, handle_signals=False, transport=shop.sandboxes.transport
        ) as runner:
            await runs.run_flows(runner, store, [flow])

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, once()).result()


def test_the_table_shows_default_rows_and_the_flows_own_rules(
    admin: Browser, viewer: Browser, shop: Shop
) -> None:
    page = viewer.get(f"/flows/{shop.flow.id}/mapping")
    assert page.status_code == 200
    assert "ART_DESC1" in page.text and "ART_CODE" in page.text
    assert 'class="default-rule"' in page.text and 'class="override"' not in page.text
    assert "/mapping/rule" not in page.text, "a viewer gets no edit form"
    saved = admin.form(f"/flows/{shop.flow.id}/mapping/rule", _rule(EXPRESSION))
    assert saved.status_code == 303
    page = viewer.get(f"/flows/{shop.flow.id}/mapping")
    row = re.search(r'<tr class="override">.*?</tr>', page.text, re.S)
    assert row and "ART_DESC1" in row.group(0) and "Koppel: " in row.group(0)


def test_a_typo_is_answered_with_did_you_mean_and_a_fixed_rule_is_saved_and_synced(
    admin: Browser, shop: Shop, store: Store
) -> None:
    check = f"/flows/{shop.flow.id}/mapping/check"
    typo = admin.post(check, data=_rule("'Koppel: ' & nmae"), headers={"X-CSRF-Token": admin.csrf})
    assert typo.status_code == 200
    issues = typo.json()["issues"]
    assert issues and issues[0]["severity"] == "error", issues
    assert "did you mean" in issues[0]["message"] and "name" in issues[0]["message"]
    refused = admin.form(f"/flows/{shop.flow.id}/mapping/rule", _rule("'Koppel: ' & nmae"))
    assert refused.status_code == 422 and "did you mean" in refused.text
    assert store.flows.get(shop.flow.id).mapping_version == 1  # type: ignore[union-attr]

    fixed = admin.post(check, data=_rule(EXPRESSION), headers={"X-CSRF-Token": admin.csrf})
    assert fixed.json()["issues"] == []
    saved = admin.form(f"/flows/{shop.flow.id}/mapping/rule", _rule(EXPRESSION))
    assert saved.status_code == 303 and "notice=mapping-saved" in saved.headers["location"]
    flow = store.flows.get(shop.flow.id)
    assert flow is not None and flow.mapping_version == 2
    assert flow.mapping == {"send": {"fields": {"ART_DESC1": {"expr": EXPRESSION}}}}
    (entry,) = [e for e in store.audit.list(shop.tenant_id) if e.action == "flow.mapping_saved"]
    assert entry.actor == shop.admin.email and entry.detail["version"] == 2

    product = shop.sandboxes.partspim.store.create(
        "products", {"sku": "55501", "name": "Remklauw", "price_excl_vat": "12.00"}
    )
    _sync(store, shop, flow)
    articles = {r["ART_CODE"]: r for r in shop.sandboxes.accountview.rows("ARTICLE")}
    assert articles[product["sku"]]["ART_DESC1"] == "Koppel: Remklauw"


def test_bad_transform_yaml_and_an_unknown_function_are_named_with_the_field(
    admin: Browser, shop: Shop
) -> None:
    check = f"/flows/{shop.flow.id}/mapping/check"
    headers = {"X-CSRF-Token": admin.csrf}
    broken = admin.post(
        check, data={**_rule("name"), "transforms": "{truncate: 40"}, headers=headers
    )
    (issue,) = broken.json()["issues"]
    assert issue["field"] == "ART_DESC1" and "transform step 1" in issue["message"]
    unknown = admin.post(check, data={**_rule("name"), "transforms": "trimm"}, headers=headers)
    assert any("did you mean 'trim'" in i["message"] for i in unknown.json()["issues"])


def test_a_preview_shows_a_real_source_record_on_its_way(
    admin: Browser, viewer: Browser, shop: Shop
) -> None:
    admin.form(f"/flows/{shop.flow.id}/mapping/rule", {**_rule(EXPRESSION), "truncate": "true"})
    listed = viewer.get(f"/flows/{shop.flow.id}/mapping/preview")
    assert listed.status_code == 200
    keys = re.findall(r"mapping/preview\?record=([^\"&]+)", listed.text)
    assert keys, "the source's records are offered"
    product = shop.sandboxes.partspim.store.get("products", keys[0])
    searched = viewer.get(f"/flows/{shop.flow.id}/mapping/preview?search={product['sku']}")
    assert re.findall(r"mapping/preview\?record=([^\"&]+)", searched.text) == [keys[0]]
    shown = viewer.get(f"/flows/{shop.flow.id}/mapping/preview?record={keys[0]}")
    assert shown.status_code == 200
    assert 'role="alert"' not in shown.text
    assert html.escape(f"Koppel: {product['name']}"[:40]) in shown.text
    assert "Sent to the target" in shown.text and product["sku"] in shown.text
    gone = viewer.get(f"/flows/{shop.flow.id}/mapping/preview?record=no-such-record")
    assert gone.status_code == 404


def test_versions_are_compared_and_one_is_restored_audited(
    admin: Browser, viewer: Browser, shop: Shop, store: Store
) -> None:
    admin.form(f"/flows/{shop.flow.id}/mapping/rule", _rule(EXPRESSION))
    page = viewer.get(f"/flows/{shop.flow.id}/mapping/versions")
    assert page.status_code == 200
    assert "send.fields.ART_DESC1" in page.text and "<ins><code>" in page.text
    assert "/mapping/restore" not in page.text
    refused = viewer.form(f"/flows/{shop.flow.id}/mapping/restore", {"version": "1"})
    assert refused.status_code == 403
    restored = admin.form(f"/flows/{shop.flow.id}/mapping/restore", {"version": "1"})
    assert restored.status_code == 303
    flow = store.flows.get(shop.flow.id)
    assert flow is not None and flow.mapping_version == 3 and flow.mapping == {}
    actions = [e.action for e in store.audit.list(shop.tenant_id)]
    assert actions.count("flow.mapping_restored") == 1
    same = viewer.get(f"/flows/{shop.flow.id}/mapping/versions?older=1&newer=3")
    assert "The two versions have the same rules." in same.text


def test_a_viewer_may_not_check_or_save_a_rule(viewer: Browser, shop: Shop, store: Store) -> None:
    check = viewer.post(
        f"/flows/{shop.flow.id}/mapping/check",
        data=_rule(EXPRESSION),
        headers={"X-CSRF-Token": viewer.csrf},
    )
    assert check.status_code == 403
    save = viewer.form(f"/flows/{shop.flow.id}/mapping/rule", _rule(EXPRESSION))
    assert save.status_code == 403
    assert store.flows.get(shop.flow.id).mapping_version == 1  # type: ignore[union-attr]


def test_the_api_gets_validates_previews_saves_lists_and_restores_a_mapping(
    app: FastAPI, shop: Shop, store: Store
) -> None:
    client = Browser(app, follow_redirects=False)
    admin, viewer = (
        {"Authorization": f"Bearer {issue_token(store, user, name='script', days=30).secret}"}
        for user in (shop.admin, shop.viewer)
    )
    base = f"/api/v1/flows/{shop.flow.id}/mapping"
    got = client.get(base, headers=viewer).json()
    rule = next(r for r in got["sides"]["send"]["rules"] if r["target"] == "ART_DESC1")
    assert rule["kind"] == "from" and rule["value"] == "name" and not rule["overridden"]
    assert got["version"] == 1 and got["mapping"] == {}

    typo = {"send": {"fields": {"ART_DESC1": {"expr": "'Koppel: ' & nmae"}}}}
    checked = client.post(f"{base}/validate", headers=viewer, json={"mapping": typo}).json()
    assert checked["valid"] is False
    assert "did you mean" in checked["issues"]["send"][0]["message"]
    refused = client.put(base, headers=admin, json={"mapping": typo})
    assert refused.status_code == 422 and "nmae" in refused.json()["detail"]
    assert client.put(base, headers=viewer, json={"mapping": {}}).status_code == 403

    good = {"send": {"fields": {"ART_DESC1": {"expr": EXPRESSION, "overflow": "truncate"}}}}
    saved = client.put(base, headers=admin, json={"mapping": good, "note": "by script"})
    assert saved.json() == {"version": 2, "changed": True}
    again = client.put(base, headers=admin, json={"mapping": good})
    assert again.json() == {"version": 2, "changed": False}

    record = {"id": 1, "sku": "55502", "name": "Remklauw", "price_excl_vat": "1.00"}
    given = client.post(f"{base}/preview", headers=viewer, json={"record": record}).json()
    assert given["error"] is None and given["target"]["ART_DESC1"] == "Koppel: Remklauw"
    first = min(shop.sandboxes.partspim.store.all("products"), key=lambda p: p["id"])
    sampled = client.post(f"{base}/preview", headers=viewer, json={"key": str(first["id"])})
    assert sampled.json()["source"]["sku"] == first["sku"]

    versions = client.get(f"{base}/versions", headers=viewer).json()
    assert [(v["version"], v["current"], v["note"]) for v in versions] == [
        (1, False, "applied by test"),
        (2, True, "by script"),
    ]
    restored = client.post(f"{base}/restore", headers=admin, json={"version": 1})
    assert restored.json()["version"] == 3
    assert store.flows.get(shop.flow.id).mapping == {}  # type: ignore[union-attr]

    exported = client.get(
        f"/api/v1/integrations/{shop.flow.integration_id}/export", headers=viewer
    ).json()
    assert "api_key: ${PIM_API_KEY}" in exported["text"] and "PIM_API_KEY" in exported["variables"]


def test_a_stored_mapping_that_does_not_fit_shows_its_problem_and_is_not_saved_over(
    client_for: Callable[[User], Browser], world: World, store: Store
) -> None:
    """The seeded flow's mapping has a section that is neither get nor send."""
    admin = client_for(world.a.admin)
    page = admin.get(f"/flows/{world.a.seeded.flow.id}/mapping")
    assert page.status_code == 200
    assert "unknown section(s) name; use &#39;get&#39; and/or &#39;send&#39;" in page.text
    saved = admin.form(f"/flows/{world.a.seeded.flow.id}/mapping/rule", _rule("name"))
    assert saved.status_code == 422 and "unknown section(s) name" in saved.text
    assert store.flows.get(world.a.seeded.flow.id).mapping_version == 1  # type: ignore[union-attr]
