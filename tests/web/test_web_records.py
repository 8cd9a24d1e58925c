"""The activity log and the dead letters through the app's routes (pages and REST API), on a
real store; replays run on a real engine against both sandboxes served in-process."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from koppel.accounts.signin import csrf_token, issue_token, start_session
from koppel.flows.pipeline import Item
from koppel.settings import Settings
from koppel.store import DeadLetterStatus, OutcomeEntry, OutcomeKind, Store, User
from koppel.store.tables import utc_now
from koppel.web import create_app
from tests.web.conftest import Browser, World
from tests.web.records import FIXED_SKUS, TOO_LONG_SKUS, Shop, synced_shop


def test_a_record_is_found_by_the_key_in_its_label_in_any_case_or_by_either_side_key(
    store: Store, world: World
) -> None:
    assert Item("7", "relation 'Ann@Example.com'", {}).record_key == "Ann@Example.com"
    assert Item("7/2", "SKU 'AB-12' (variant of SKU 'AB')", {}).record_key == "AB-12"
    assert Item("7", "stock of SKU ''", {}).record_key is None
    run = store.runs.start(world.a.seeded.flow.id)
    store.outcomes.record_many(
        run.id,
        [OutcomeEntry("42", OutcomeKind.CREATED, target_key="10042", record_key="Ann@Example.com")],
    )
    scoped = store.scoped(world.a.tenant_id)
    for typed in ("ann@example.com", " ANN@example.COM ", "42", "10042"):
        assert [o.source_key for o in scoped.outcomes.search(key=typed)] == ["42"], typed
    assert scoped.outcomes.search(key="1004") == []
    assert store.scoped(world.b.tenant_id).outcomes.search(key="42") == []


def test_the_activity_page_searches_filters_and_pages_by_key(
    client_for: Callable[[User], Browser], store: Store, world: World
) -> None:
    run = store.runs.start(world.a.seeded.flow.id)
    store.outcomes.record_many(
        run.id, [OutcomeEntry(f"bulk-{n:02}", OutcomeKind.UPDATED) for n in range(55)]
    )
    viewer = client_for(world.a.viewer)
    first = viewer.get("/activity")
    assert first.status_code == 200
    shown = re.findall(r'href="/activity/(\d+)">([^<]+)</a>', first.text)
    assert len(shown) == 50 and shown[0][1].strip() == "bulk-54"
    older = re.search(r'href="(/activity\?before=\d+)" rel="next"', first.text)
    assert older, "the first page links to the older records"
    second = viewer.get(older.group(1))
    rest = [
        key.strip() for _, key in re.findall(r'href="/activity/(\d+)">([^<]+)</a>', second.text)
    ]
    assert rest[:5] == ["bulk-04", "bulk-03", "bulk-02", "bulk-01", "bulk-00"]
    assert len(rest) == 7 and 'rel="next"' not in second.text  # and the seeded two

    sku = world.a.activity.created.target_key
    found = viewer.get("/activity", params={"key": sku.lower() if sku else ""})
    assert re.findall(r'href="/activity/(\d+)"', found.text) == [str(world.a.activity.created.id)]
    failed = viewer.get("/activity", params={"outcome": "failed", "flow": "", "key": ""})
    assert re.findall(r'href="/activity/(\d+)"', failed.text) == [str(world.a.activity.failed.id)]
    in_run = viewer.get("/activity", params={"run": world.a.activity.run.id})
    assert len(re.findall(r'href="/activity/(\d+)"', in_run.text)) == 2
    assert f"Only the records of run {world.a.activity.run.number} of products" in in_run.text
    foreign_flow = viewer.get("/activity", params={"flow": str(world.b.seeded.flow.id)})
    assert foreign_flow.status_code == 404
    bad_kind = viewer.get("/activity", params={"outcome": "exploded"})
    assert bad_kind.status_code == 422


def test_an_entry_shows_both_payloads_and_says_when_they_are_gone(
    client_for: Callable[[User], Browser], store: Store, world: World
) -> None:
    viewer = client_for(world.a.viewer)
    created = viewer.get(f"/activity/{world.a.activity.created.id}")
    assert created.status_code == 200
    assert "From the source" in created.text and "Sent to the target" in created.text
    assert "<code>ART_DESC1</code>" in created.text and "<code>title</code>" in created.text
    failed = viewer.get(f"/activity/{world.a.activity.failed.id}")
    assert "price must be a number" in failed.text
    assert "Nothing was sent: the record was skipped or failed before the write." in failed.text

    run = store.runs.start(world.a.seeded.flow.id)
    store.outcomes.record_many(run.id, [OutcomeEntry("no-payload", OutcomeKind.SKIPPED)])
    (bare,) = store.outcomes.search(key="no-payload")
    assert "Payload expired" in viewer.get(f"/activity/{bare.id}").text

    store.retention.purge(now=utc_now() + timedelta(days=31))
    gone = viewer.get(f"/activity/{world.a.activity.created.id}")
    assert gone.status_code == 404
    assert "entries are kept 30 days after their run (KOPPEL_LOG_RETENTION_DAYS)" in gone.text
    foreign = client_for(world.b.admin).get(f"/activity/{world.a.activity.failed.id}")
    assert foreign.status_code == 404 and "price must be a number" not in foreign.text


def test_the_api_searches_outcomes_by_cursor_and_shows_one_with_its_payloads(
    app: FastAPI, store: Store, world: World
) -> None:
    client = TestClient(app)
    bearer = {"Authorization": f"Bearer {world.a.viewer_token.secret}"}
    first = client.get("/api/v1/outcomes", params={"limit": 1}, headers=bearer).json()
    assert [o["id"] for o in first["items"]] == [world.a.activity.failed.id]
    second = client.get(
        "/api/v1/outcomes", params={"limit": 1, "cursor": first["next_cursor"]}, headers=bearer
    ).json()
    assert [o["id"] for o in second["items"]] == [world.a.activity.created.id]
    assert second["next_cursor"] is None
    by_key = client.get("/api/v1/outcomes", params={"key": "sku-acme-1-bad"}, headers=bearer)
    assert [o["outcome"] for o in by_key.json()["items"]] == ["failed"]
    one = client.get(f"/api/v1/outcomes/{world.a.activity.created.id}", headers=bearer).json()
    assert one["source"]["title"] == "Brake disc" and one["sent"]["ART_DESC1"] == "Brake disc"
    assert one["payload_kept"] is True and one["flow"] == "products"
    foreign = client.get(
        f"/api/v1/outcomes/{world.a.activity.created.id}",
        headers={"Authorization": f"Bearer {world.b.admin_token.secret}"},
    )
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    assert "KOPPEL_LOG_RETENTION_DAYS" in foreign.json()["detail"]
    bad = client.get("/api/v1/outcomes", params={"cursor": "nonsense"}, headers=bearer)
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]


def test_a_discard_needs_a_reason_and_is_audited(
    app: FastAPI, client_for: Callable[[User], Browser], store: Store, world: World
) -> None:
    letter = world.a.activity.dead_letter
    admin = client_for(world.a.admin)
    page = admin.get("/dead-letters")
    assert letter.source_key in page.text and "Replay the chosen" in page.text
    assert "Only an admin" in client_for(world.a.viewer).get("/dead-letters").text

    refused = admin.form(f"/dead-letters/{letter.id}/discard", {"reason": "  "})
    assert refused.status_code == 422
    assert "Say why the dead letters are discarded" in refused.text
    assert store.dead_letters.get(letter.id).status is DeadLetterStatus.PENDING  # type: ignore[union-attr]

    api = TestClient(app)
    bearer = {"Authorization": f"Bearer {world.a.admin_token.secret}"}
    listed = api.get("/api/v1/dead-letters", headers=bearer).json()
    assert [(d["id"], d["last_outcome_id"]) for d in listed["items"]] == [
        (letter.id, world.a.activity.failed.id)
    ]
    done = api.post(
        f"/api/v1/dead-letters/{letter.id}/discard",
        json={"reason": "the product is no longer sold"},
        headers=bearer,
    )
    assert done.status_code == 200, done.text
    assert done.json()["source_key"] == letter.source_key
    assert store.dead_letters.get(letter.id).status is DeadLetterStatus.ABANDONED  # type: ignore[union-attr]
    (entry,) = [e for e in store.audit.list(world.a.tenant_id) if e.action == "dead_letter.discard"]
    assert entry.actor == world.a.admin.email and entry.subject == f"dead_letter:{letter.id}"
    assert entry.detail["reason"] == "the product is no longer sold"
    again = admin.form("/dead-letters/discard", {"dead_letter": str(letter.id), "reason": "x"})
    assert again.status_code == 422 and "no longer waits" in again.text
    assert api.get("/api/v1/dead-letters", headers=bearer).json()["items"] == []


def test_a_server_without_the_engine_says_how_to_replay(
    app: FastAPI, client_for: Callable[[User], Browser], world: World
) -> None:
    letter = world.a.activity.dead_letter
    answer = TestClient(app).post(
        "/api/v1/dead-letters/replay",
        json={"dead_letter_ids": [letter.id]},
        headers={"Authorization": f"Bearer {world.a.admin_token.secret}"},
    )
    assert answer.status_code == 409
    assert "koppel replay --flow NAME" in answer.json()["detail"]
    page = client_for(world.a.admin).form(f"/dead-letters/{letter.id}/replay")
    assert page.status_code == 409 and "--no-worker" in page.text


@pytest.fixture
def shop(store: Store, web_settings: Settings, tmp_path: Path) -> Iterator[Shop]:
    with synced_shop(store, web_settings, tmp_path) as synced:
        yield synced


@pytest.fixture
def shop_admin(shop: Shop, web_settings: Settings, store: Store) -> Iterator[Browser]:
    """The shop's admin in a client that also ran the app's lifespan: its requests share the
    engine's event loop, as they do under uvicorn (a replay is waited for in that loop)."""
    app = create_app(web_settings, store=store, runner=shop.runner(store))
    with Browser(app, follow_redirects=False) as client:
        token = start_session(store, shop.admin)
        client.cookies.set("koppel_session", token)
        client.csrf = csrf_token(token)
        yield client


def test_a_replay_of_the_chosen_dead_letter_syncs_it_with_the_fix_and_leaves_the_other(
    shop_admin: Browser, shop: Shop, store: Store
) -> None:
    assert len(shop.pending(store)) == 2
    sku = shop.fix_the_sku(0)
    shop.fix_the_sku(1)  # fixed too, but not chosen: it must stay waiting
    admin = shop_admin
    answer = admin.form("/dead-letters/replay", {"dead_letter": str(shop.dead_letter.id)})
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/activity?run=") and location.endswith("notice=replayed")
    assert sku in shop.articles() and FIXED_SKUS[1] not in shop.articles()
    assert [d.source_key for d in shop.pending(store)] == [str(shop.bad_products[1]["id"])]
    records = admin.get(location)
    assert "The replay has run with today" in records.text and "created" in records.text
    (audit,) = [e for e in store.audit.list(shop.tenant_id) if e.action == "dead_letter.replay"]
    assert audit.actor == shop.admin.email and audit.detail["dead_letters"] == [shop.dead_letter.id]

    api = shop_admin
    rest = api.post(
        f"/api/v1/dead-letters/{shop.dead_letter.id}/replay",
        headers={"Authorization": f"Bearer {_token(store, shop.admin)}"},
    )
    assert rest.status_code == 422 and "no longer waits" in rest.json()["detail"]
    whole_flow = api.post(
        "/api/v1/dead-letters/replay",
        json={"flow_id": shop.flow.id},
        headers={"Authorization": f"Bearer {_token(store, shop.admin)}"},
    )
    assert whole_flow.status_code == 200, whole_flow.text
    [run] = whole_flow.json()
    assert run["finished"] is True and run["flow"] == "products"
    assert FIXED_SKUS[1] in shop.articles() and shop.pending(store) == []
    replayed = api.get(
        "/api/v1/outcomes",
        params={"run_id": run["run_id"]},
        headers={"Authorization": f"Bearer {_token(store, shop.viewer)}"},
    ).json()
    assert [(o["source_key"], o["outcome"]) for o in replayed["items"]] == [
        (str(shop.bad_products[1]["id"]), "created")
    ]
    assert TOO_LONG_SKUS[0] not in {o["target_key"] for o in replayed["items"]}


def _token(store: Store, user: User) -> str:
    return issue_token(store, user, name="test", days=30).secret
