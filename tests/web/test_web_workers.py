"""The /workers page over executors seeded in the store as the engine's heartbeats leave them:
a live one, a silent one, a stopped one and one taken over, each worded for a user; the runs
each owns, of the reader's workspace only; and the empty state that says what to start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from koppel.accounts.users import set_language
from koppel.store import Store, User
from koppel.store.tables import ExecutorRow
from tests.web.conftest import Browser, World

Client = Callable[[User], Browser]
SINCE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def silence(store: Store, executor_id: str, seconds: float) -> None:
    """As if the executor's last beat was `seconds` ago (the page is read now, not later)."""
    with store.engine.begin() as connection:
        connection.execute(
            update(ExecutorRow)
            .where(ExecutorRow.id == executor_id)
            .values(last_beat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def seed_executors(store: Store, world: World) -> None:
    """`web-1` live and owning a run of workspace a that it took over from `web-2`; `night-7`
    silent for ten minutes; `cron-3` stopped."""
    for name, host, pid in (
        ("web-1", "app-a.example", 101),
        ("web-2", "app-b.example", 202),
        ("night-7", "batch.example", 707),
        ("cron-3", "batch.example", 303),
    ):
        store.executors.beat(name, host=host, pid=pid, started_at=SINCE)
    flow = world.a.seeded.flow
    store.runs.start(flow.id, run_id="run-of-web-2", executor="web-2", owner="web-2/1")
    silence(store, "web-2", 120)
    [gone] = [e for e in store.executors.others("web-1") if e.id == "web-2"]
    assert store.executors.take_over(gone, "web-1") == ["web-2"]
    silence(store, "night-7", 600)
    store.executors.stopped("cron-3")


def rows(html: str) -> dict[str, str]:
    """Each table row's words, by the process id it starts with."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    found = {}
    for row in body.split("<tr>")[1:]:
        words = " ".join(part.split(">")[-1] for part in row.split("<"))
        text = " ".join(words.split())
        found[text.split()[0]] = text
    return found


def test_every_user_reads_each_process_worded_and_its_runs_of_their_workspace(
    client_for: Client, world: World, store: Store
) -> None:
    seed_executors(store, world)
    viewer = client_for(world.a.viewer).get("/workers")
    assert viewer.status_code == 200
    text = " ".join(viewer.text.split())
    assert "is taken for dead: a live process takes over its runs" in text
    assert "koppel workers shows the same list" in text
    found = rows(viewer.text)
    assert list(found) == ["cron-3", "web-1", "web-2", "night-7"]  # most recently heard first
    assert found["web-1"].startswith("web-1 app-a.example 101 live ")
    assert found["web-1"].endswith(" 1 Dec 1, 2026, 10:00:00 AM")  # the run it took over
    assert "taken over by web-1" in found["web-2"] and " 2 minutes ago 0 " in found["web-2"]
    assert "silent for 10 minutes no live process has taken over its runs yet" in found["night-7"]
    assert "stopped" in found["cron-3"] and "live" not in found["cron-3"]
    # The processes serve every workspace; the runs they own are counted of the reader's alone.
    other = rows(client_for(world.b.viewer).get("/workers").text)
    assert list(other) == list(found)
    assert other["web-1"].endswith(" 0 Dec 1, 2026, 10:00:00 AM")


def test_the_connections_page_and_the_dashboard_link_the_list_by_its_live_count(
    client_for: Client, world: World, store: Store
) -> None:
    seed_executors(store, world)
    client = client_for(world.a.viewer)
    connections = " ".join(client.get("/connections").text.split())
    assert 'Engine processes: 1 live — <a href="/workers">see the engine processes</a>' in (
        connections
    )
    assert '<a href="/workers">1 engine process live</a>' in " ".join(client.get("/").text.split())


def test_without_a_process_the_page_says_what_to_start(client_for: Client, world: World) -> None:
    page = " ".join(client_for(world.a.viewer).get("/workers").text.split())
    assert "No engine process has started yet." in page
    assert "koppel serve runs the flows itself (unless started with --no-worker)" in page
    assert "start koppel worker on the server" in page and "<tbody>" not in page
    dashboard = " ".join(client_for(world.a.viewer).get("/dashboard/live").text.split())
    assert '<a href="/workers">0 engine processes live</a>' in dashboard


def test_a_dutch_reader_gets_the_states_in_dutch(
    client_for: Client, world: World, store: Store
) -> None:
    seed_executors(store, world)
    dutch = set_language(store, world.a.viewer, "nl")
    found = rows(client_for(dutch).get("/workers").text)
    assert " actief " in found["web-1"] and "overgenomen door web-1" in found["web-2"]
    assert "al 10 minuten stil nog geen actief proces heeft zijn runs" in found["night-7"]
    assert " gestopt " in found["cron-3"]
