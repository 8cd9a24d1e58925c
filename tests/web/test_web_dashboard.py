"""The dashboard, the runs and the connections, through the app over a real store (pages and
API); the browser tests (test_browser_dashboard.py) show them over the demo's real runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from koppel.accounts.users import create_user
from koppel.services import dashboard
from koppel.store import (
    ConnectionState,
    Flow,
    OutcomeEntry,
    OutcomeKind,
    Role,
    RunStatus,
    Store,
    User,
)
from tests.web.conftest import PASSWORD, Browser, World


def _flow(schedule: int | None, *, enabled: bool = True) -> Flow:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return Flow(1, 1, "products", "products", 1, 2, enabled, schedule, {}, {}, 1, moment, moment)


def test_the_next_run_is_the_next_slot_of_the_schedule_and_freshness_follows_it() -> None:
    now = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    assert dashboard.next_run_at(_flow(60), now) == datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
    assert dashboard.next_run_at(_flow(3600), now) == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert dashboard.next_run_at(_flow(None), now) is None
    assert dashboard.next_run_at(_flow(60, enabled=False), now) is None
    fresh = dashboard.freshness
    assert fresh(_flow(60), now - timedelta(seconds=119), now) is dashboard.Freshness.FRESH
    assert fresh(_flow(60), now - timedelta(seconds=121), now) is dashboard.Freshness.STALE
    assert fresh(_flow(None), now - timedelta(days=30), now) is dashboard.Freshness.FRESH
    assert fresh(_flow(60), None, now) is dashboard.Freshness.NEVER
    assert fresh(_flow(60, enabled=False), now, now) is dashboard.Freshness.OFF


def test_the_dashboard_counts_the_runs_of_the_last_day_and_week(store: Store, world: World) -> None:
    scoped = store.scoped(world.a.tenant_id)
    flow = world.a.seeded.flow
    failed = scoped.runs.start(flow.id)
    scoped.runs.finish(
        failed.id, RunStatus.FAILED, error="connection av: refused\ncheck it: koppel ..."
    )
    [board] = dashboard.dashboards(scoped)
    assert all(h.last_good_at is None and h.last_error is None for h in board.connections)
    now = datetime.now(UTC)
    scoped.connections.record_health(world.a.seeded.pim.id, ok_at=now)
    scoped.connections.record_health(world.a.seeded.av.id, error="av: refused", error_at=now)
    earlier = now - timedelta(minutes=5)
    scoped.connections.record_health(world.a.seeded.av.id, error="older", error_at=earlier)
    scoped.connections.record_health(world.a.seeded.pim.id, ok_at=earlier)  # never goes back
    [board] = dashboard.dashboards(scoped)
    assert board.last_day.totals == {"created": 1, "updated": 0, "skipped": 0, "failed": 1}
    assert board.last_week.totals == board.last_day.totals
    assert sum(bar.total for bar in board.last_day.bars[-1:]) == 2  # this hour's bar
    assert len(board.last_day.bars) == 24 and len(board.last_week.bars) == 7
    [line] = board.flows
    assert line.last_run is not None and line.last_run.id == failed.id
    assert line.last_good_at == world.a.run.finished_at
    assert line.freshness is dashboard.Freshness.FRESH
    health = {h.connection.name: h for h in board.connections}
    assert health["av"].last_error == "av: refused" and health["av"].last_error_at == now
    assert health["pim"].last_error is None and health["pim"].last_good_at == now
    assert health["av"].last_good_at is None and not health["av"].needs_authorisation
    scoped.connections.set_state(
        world.a.seeded.av.id, ConnectionState.NEEDS_AUTHORISATION, "invalid_grant"
    )
    [av] = [h for h in dashboard.dashboards(scoped)[0].connections if h.connection.name == "av"]
    assert av.needs_authorisation and av.last_error == "invalid_grant"
    assert dashboard.dashboards(store.scoped(world.b.tenant_id))[0].last_day.totals["failed"] == 1


def test_the_dashboard_shows_flows_numbers_health_and_dead_letters(
    client_for: Callable[[User], Browser], world: World
) -> None:
    page = client_for(world.a.viewer).get("/")
    assert page.status_code == 200
    html = page.text
    assert "Integrations of acme" in html and "acme-pim-av" in html
    assert 'href="/dead-letters"' in html and f'href="/runs/{world.a.run.id}"' in html
    assert "partly failed" in html and "up to date" in html
    assert re.search(r"<li><span class=\"swatch bar-created\"[^>]*></span>1 created</li>", html)
    assert 'data-refresh="/dashboard/live"' in html
    assert "All connections" in html and "Test the connections" not in html  # a viewer
    assert "Test the connections" in client_for(world.a.admin).get("/").text
    live = client_for(world.a.viewer).get("/dashboard/live")
    assert live.status_code == 200 and "<html" not in live.text and "acme-pim-av" in live.text
    assert "globex" not in html


def test_the_runs_page_filters_by_flow_status_and_day_and_pages_by_key(
    client_for: Callable[[User], Browser], store: Store, world: World
) -> None:
    scoped = store.scoped(world.a.tenant_id)
    flow = world.a.seeded.flow
    extra = [scoped.runs.start(flow.id) for _ in range(3)]
    for run in extra:
        scoped.runs.finish(run.id, RunStatus.SUCCEEDED)
    viewer = client_for(world.a.viewer)
    everything = viewer.get("/runs").text
    assert all(f'href="/runs/{run.id}"' in everything for run in [world.a.run, *extra])
    partial = viewer.get("/runs", params={"status": "partial"}).text
    assert f'href="/runs/{world.a.run.id}"' in partial
    assert not any(f'href="/runs/{run.id}"' in partial for run in extra)
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date()  # KOPPEL_WEB_TIMEZONE
    later = viewer.get("/runs", params={"since": str(today + timedelta(days=2))}).text
    assert "No run matches the filter." in later
    by_flow = viewer.get("/runs", params={"flow": str(flow.id), "until": str(today)}).text
    assert f'href="/runs/{world.a.run.id}"' in by_flow
    wrong = viewer.get("/runs", params={"status": "done"})
    assert wrong.status_code == 422
    assert "The filter status does not take &#39;done&#39;: running, succeeded" in wrong.text
    foreign = viewer.get("/runs", params={"flow": str(world.b.seeded.flow.id)})
    assert foreign.status_code == 422 and "choose one of the workspace" in foreign.text
    older = viewer.get("/runs", params={"before": extra[1].id}).text
    assert f'href="/runs/{extra[0].id}"' in older and f'href="/runs/{extra[2].id}"' not in older


def test_a_run_page_shows_counts_duration_calls_error_and_records(
    client_for: Callable[[User], Browser], store: Store, world: World
) -> None:
    viewer = client_for(world.a.viewer)
    html = viewer.get(f"/runs/{world.a.run.id}").text
    assert "partly failed" in html and ">4 <" in html  # API calls
    assert "SKU-ACME-1-BAD" in html and "price must be a number" in html
    outcomes = store.outcomes.list(world.a.run.id)
    assert all(f'href="/activity/{o.id}"' in html for o in outcomes)
    assert f'href="/activity?run={world.a.run.id}"' in html
    scoped = store.scoped(world.a.tenant_id)
    failed = scoped.runs.start(world.a.seeded.flow.id)
    scoped.outcomes.record_many(failed.id, [OutcomeEntry("categories:7", OutcomeKind.SKIPPED)])
    scoped.runs.finish(
        failed.id,
        RunStatus.FAILED,
        error="connection av: the refresh token was refused",
        entities={"categories:": "categories"},
    )
    page = viewer.get(f"/runs/{failed.id}").text
    assert "Why it failed" in page and "the refresh token was refused" in page
    assert '<th scope="row">categories</th>' in page
    assert viewer.get(f"/runs/{world.b.run.id}").status_code == 404


def test_the_api_lists_integrations_flows_and_runs_by_cursor(
    anonymous: Browser, store: Store, world: World
) -> None:
    viewer = {"Authorization": f"Bearer {world.a.viewer_token.secret}"}
    [integration] = anonymous.get("/api/v1/integrations", headers=viewer).json()["items"]
    assert integration["name"] == "acme-pim-av" and integration["dead_letters_waiting"] == 1
    assert integration["last_24_hours"]["totals"] == {
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "failed": 1,
    }
    one = anonymous.get(f"/api/v1/integrations/{integration['id']}", headers=viewer).json()
    assert one["flows"][0]["last_run"]["id"] == world.a.run.id
    [flow] = anonymous.get("/api/v1/flows", headers=viewer).json()["items"]
    assert flow["freshness"] == "fresh" and flow["next_run_at"] is not None
    scoped = store.scoped(world.a.tenant_id)
    newer = scoped.runs.start(world.a.seeded.flow.id)
    first = anonymous.get("/api/v1/runs?limit=1", headers=viewer).json()
    assert [r["id"] for r in first["items"]] == [newer.id]
    second = anonymous.get(
        f"/api/v1/runs?limit=1&cursor={first['next_cursor']}", headers=viewer
    ).json()
    assert [r["id"] for r in second["items"]] == [world.a.run.id]
    assert second["next_cursor"] is None
    running = anonymous.get("/api/v1/runs?status=running", headers=viewer).json()["items"]
    assert [r["id"] for r in running] == [newer.id]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = anonymous.get("/api/v1/runs", params={"started_from": future}, headers=viewer)
    assert later.json()["items"] == []
    run = anonymous.get(f"/api/v1/runs/{world.a.run.id}", headers=viewer).json()
    assert run["api_calls"] == 4 and run["counts"]["failed"] == 1 and run["duration_seconds"] >= 0
    foreign = anonymous.get(f"/api/v1/runs/{world.b.run.id}", headers=viewer)
    assert foreign.status_code == 404 and foreign.json()["type"] == "urn:koppel:problem:not_found"
    bad = anonymous.get("/api/v1/runs?status=done", headers=viewer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.status"


def test_a_failing_connection_test_says_why_and_what_to_do(
    client_for: Callable[[User], Browser], anonymous: Browser, world: World
) -> None:
    admin = client_for(world.a.admin)
    page = admin.get("/connections").text
    assert "Test connection" in page and "pim" in page
    pim = world.a.seeded.pim
    answer = admin.form(f"/connections/{pim.id}/test")
    assert answer.status_code == 200
    assert "The test failed." in answer.text
    assert "check its address and that the service is up" in answer.text
    after = admin.get("/connections").text
    assert "Last error" in after and "refused the connection" in after  # kept as its health
    viewer = client_for(world.a.viewer)
    assert "Test connection" not in viewer.get("/connections").text
    assert viewer.form(f"/connections/{pim.id}/test").status_code == 403
    token = {"Authorization": f"Bearer {world.a.admin_token.secret}"}
    result = anonymous.post(f"/api/v1/connections/{pim.id}/test", headers=token).json()
    assert result["works"] is False and result["category"] == "connection"
    health = anonymous.get("/api/v1/connections", headers=token).json()["items"]
    assert [h["name"] for h in health] == ["av", "pim"]
    assert health[1]["last_error"] == result["message"] and health[1]["last_success_at"] is None


def test_the_dashboard_formats_numbers_in_the_users_language(
    client_for: Callable[[User], Browser], store: Store, world: World
) -> None:
    scoped = store.scoped(world.a.tenant_id)
    run = scoped.runs.start(world.a.seeded.flow.id)
    scoped.outcomes.record_many(
        run.id, [OutcomeEntry(f"sku-{n}", OutcomeKind.CREATED) for n in range(1234)]
    )
    scoped.runs.finish(run.id, RunStatus.SUCCEEDED)
    dutch = create_user(
        store,
        actor="test",
        tenant_id=world.a.tenant_id,
        email="kees@acme.example",
        name="Kees",
        password=PASSWORD,
        role=Role.VIEWER,
        locale="nl",
    )
    html = client_for(dutch).get("/").text
    assert "1.235 aangemaakt" in html and "Koppelingen van acme" in html
    english = client_for(world.a.viewer).get("/").text
    assert "1,235 created" in english


def test_the_days_of_the_week_chart_begin_at_midnight_in_the_apps_time_zone(
    store: Store, world: World
) -> None:
    scoped = store.scoped(world.a.tenant_id)
    clock_change = datetime(2026, 3, 29, 12, 30, tzinfo=UTC)  # Amsterdam: 02:00 becomes 03:00
    [board] = dashboard.dashboards(scoped, now=clock_change, zone=ZoneInfo("Europe/Amsterdam"))
    starts = [bar.start for bar in board.last_week.bars]
    assert starts[-1] == datetime(2026, 3, 28, 23, tzinfo=UTC)  # 29 March 00:00 CET
    assert starts[-2] == datetime(2026, 3, 27, 23, tzinfo=UTC)
    assert starts[0] == datetime(2026, 3, 22, 23, tzinfo=UTC)
    assert board.last_day.bars[-1].start == datetime(2026, 3, 29, 12, tzinfo=UTC)
    assert board.last_day.bars[0].start == datetime(2026, 3, 28, 13, tzinfo=UTC)
    [utc] = dashboard.dashboards(scoped, now=clock_change)
    assert utc.last_week.bars[-1].start == datetime(2026, 3, 29, tzinfo=UTC)
