"""The /reconciliation page over a stored reconciliation: everyone of the workspace reads the
drift by record and field, only admins get the buttons, another workspace sees none of it, and
a server that runs no flows refuses "sync these" saying what to do instead."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from koppel.services.reconcile import Difference, DriftKind
from koppel.store import LinkEntry, Store, User
from tests.web.conftest import Browser, World

Client = Callable[[User], Browser]


def reconciled(store: Store, world: World) -> list[Difference]:
    flow = world.a.seeded.flow
    differences = [
        Difference(
            "products",
            DriftKind.DIFFERS,
            "SKU '10000004'",
            "4",
            "10000004",
            "PX_SELL",
            "50.37",
            "60.37",
        ),
        Difference("products", DriftKind.MISSING, "SKU '10000005'", "5", "10000005"),
        Difference("products", DriftKind.NO_SOURCE, "article '10000009'", "9", "10000009"),
    ]
    now = datetime.now(UTC)
    store.reconciliations.add(
        flow.id,
        started_at=now,
        finished_at=now,
        compared=120,
        drift=len(differences),
        api_calls=4,
        differences=[d.to_json() for d in differences],
    )
    return differences


def test_everyone_reads_the_drift_and_only_admins_get_the_buttons(
    client_for: Client, world: World, store: Store
) -> None:
    reconciled(store, world)
    viewer = client_for(world.a.viewer).get("/reconciliation")
    assert viewer.status_code == 200
    for text in ("SKU &#39;10000004&#39;", "PX_SELL", "60.37", "50.37", "not in AccountView"):
        assert text in viewer.text, text
    assert "its Parts Pim record is gone" in viewer.text
    assert "120 records, 3 differences, 4 API calls" in " ".join(viewer.text.split())
    assert "Compare now" not in viewer.text and "Sync these" not in viewer.text
    admin = client_for(world.a.admin).get("/reconciliation")
    # The article without a source is not synced: two of the three differences are.
    assert "Compare now" in admin.text and "Sync these 2 records" in admin.text
    other = client_for(world.b.admin).get("/reconciliation")
    assert other.status_code == 200
    assert "10000004" not in other.text and "Not compared yet." in other.text


def test_a_server_without_the_engine_refuses_to_sync_and_forgets_no_link(
    client_for: Client, world: World, store: Store
) -> None:
    reconciled(store, world)
    integration = world.a.seeded.integration
    store.links.upsert_many(integration.id, "products", [LinkEntry("4", "10000004", "hash")])
    refused = client_for(world.a.admin).form("/reconciliation/sync")
    assert refused.status_code == 409
    assert "This server runs no flows (koppel serve --no-worker)" in refused.text
    assert "koppel reconcile --sync" in refused.text
    [link] = store.links.page(integration.id, "products")
    assert link.content_hash == "hash"
    assert client_for(world.a.viewer).form("/reconciliation/sync").status_code == 403
