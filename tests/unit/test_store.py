"""Repository tests. They run on SQLite here and on PostgreSQL in tests/integration/
test_store_postgres.py, which imports them and points the `store_url` fixture at PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from threading import Thread

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from koppel.secrets import SecretDecryptionError
from koppel.store import (
    DeadLetterEntry,
    DeadLetterStatus,
    LinkEntry,
    NotFoundError,
    OutcomeEntry,
    OutcomeKind,
    RunStatus,
    Store,
    StoreError,
)
from koppel.store.context import upsert
from koppel.store.tables import DeadLetterRow, LinkRow, OutcomeRow, utc_now
from tests.fixtures_store import StoreFactory, seed_integration

# --- credentials -------------------------------------------------------------------------------


def test_credentials_are_never_stored_in_plain_text(store: Store) -> None:
    seeded = seed_integration(store, credentials={"api_key": "very-secret-pim-key"})

    with store.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT credentials, declared_credentials FROM connections")
        ).all()
    raw = b"".join(bytes(column) for row in rows for column in row)
    assert b"very-secret-pim-key" not in raw
    assert b"refresh-of-acme" not in raw
    assert store.connections.get_credentials(seeded.pim.id) == {"api_key": "very-secret-pim-key"}
    assert "very-secret" not in repr(store.connections.get(seeded.pim.id))


def test_rotated_refresh_token_survives_declaring_the_same_credentials(store: Store) -> None:
    seeded = seed_integration(store)
    declared = {"client_id": "x", "refresh_token": "refresh-of-acme"}
    store.connections.update_credentials(seeded.av.id, {**declared, "refresh_token": "rotated-2"})

    again = store.connections.put(
        seeded.tenant.id,
        "av",
        application=seeded.av.application,
        base_url=seeded.av.base_url,
        credentials=declared,
        options={},
    )
    assert not again.changed
    assert store.connections.get_credentials(seeded.av.id)["refresh_token"] == "rotated-2"

    renewed = store.connections.put(
        seeded.tenant.id,
        "av",
        application=seeded.av.application,
        base_url=seeded.av.base_url,
        credentials={**declared, "refresh_token": "pasted-by-user"},
        options={},
    )
    assert renewed.changed_fields == ("credentials",)
    assert store.connections.get_credentials(seeded.av.id)["refresh_token"] == "pasted-by-user"


def test_key_rotation_reencrypts_credentials_under_the_new_key(
    store_factory: StoreFactory, secret_key: str
) -> None:
    from cryptography.fernet import Fernet

    old_store = store_factory()
    seeded = seed_integration(old_store, credentials={"api_key": "pim-secret"})
    new_key = Fernet.generate_key().decode()

    both = store_factory(secret_key=f"{new_key},{secret_key}")
    assert both.connections.get_credentials(seeded.pim.id) == {"api_key": "pim-secret"}
    assert both.connections.rotate_credentials() == 2

    only_new = store_factory(secret_key=new_key)
    assert only_new.connections.get_credentials(seeded.pim.id) == {"api_key": "pim-secret"}
    with pytest.raises(SecretDecryptionError) as raised:
        old_store.connections.get_credentials(seeded.pim.id)
    assert "restore the old key or re-enter the credentials" in str(raised.value)
    assert "pim-secret" not in str(raised.value)


def test_credentials_can_be_reentered_after_the_key_was_lost(
    store_factory: StoreFactory,
) -> None:
    from cryptography.fernet import Fernet

    seeded = seed_integration(store_factory(), credentials={"api_key": "old"})
    new_store = store_factory(secret_key=Fernet.generate_key().decode())
    with pytest.raises(SecretDecryptionError):
        new_store.connections.get_credentials(seeded.pim.id)

    result = new_store.connections.put(
        seeded.tenant.id,
        "pim",
        application=seeded.pim.application,
        base_url=seeded.pim.base_url,
        credentials={"api_key": "re-entered"},
        options={},
    )
    assert result.changed_fields == ("credentials",)
    assert new_store.connections.get_credentials(seeded.pim.id) == {"api_key": "re-entered"}


# --- flows and mapping versions ---------------------------------------------------------------


def test_mapping_changes_are_versions_and_restore_makes_a_new_one(store: Store) -> None:
    flow = seed_integration(store).flow
    assert flow.mapping_version == 1

    assert store.flows.set_mapping(flow.id, {"name": "$.title"}, "no change") == 1
    assert store.flows.set_mapping(flow.id, {"name": "$.label"}, "label") == 2
    assert store.flows.restore_mapping(flow.id, 1) == 3

    current = store.flows.get(flow.id)
    assert current is not None
    assert (current.mapping, current.mapping_version) == ({"name": "$.title"}, 3)
    versions = store.flows.mapping_versions(flow.id)
    assert [(v.version, v.note) for v in versions] == [
        (1, "seeded"),
        (2, "label"),
        (3, "restored version 1"),
    ]
    with pytest.raises(NotFoundError):
        store.flows.restore_mapping(flow.id, 9)


def test_flow_must_run_between_the_integrations_connections(store: Store) -> None:
    seeded = seed_integration(store)
    with pytest.raises(StoreError, match="two connections"):
        store.flows.put(
            seeded.integration.id,
            "loop",
            entity="products",
            source_connection_id=seeded.pim.id,
            target_connection_id=seeded.pim.id,
            enabled=True,
            schedule_seconds=60,
            settings={},
            mapping={},
            mapping_note="",
        )


# --- runs and outcomes (the activity log) -----------------------------------------------------


def test_one_outcome_per_record_per_run_under_repeated_writes(store: Store) -> None:
    flow = seed_integration(store).flow
    run = store.runs.start(flow.id)

    store.outcomes.record_many(
        run.id,
        [
            OutcomeEntry("A", OutcomeKind.CREATED, target_key="1"),
            OutcomeEntry("B", OutcomeKind.FAILED, reason="SKU 'B' must contain only digits"),
            OutcomeEntry("A", OutcomeKind.UPDATED, target_key="1"),  # same key in one batch
        ],
    )
    # The batch is retried after a crash: same keys again, last write wins.
    store.outcomes.record_many(
        run.id,
        [
            OutcomeEntry("B", OutcomeKind.SKIPPED, reason="unchanged"),
            OutcomeEntry("C", OutcomeKind.CREATED, target_key="3"),
        ],
    )

    with store.engine.connect() as connection:
        rows = connection.execute(
            select(OutcomeRow.source_key, func.count())
            .where(OutcomeRow.run_id == run.id)
            .group_by(OutcomeRow.source_key)
        ).all()
    assert sorted(rows) == [("A", 1), ("B", 1), ("C", 1)]
    logged = {o.source_key: (o.outcome, o.reason) for o in store.outcomes.list(run.id)}
    assert logged == {
        "A": (OutcomeKind.UPDATED, None),
        "B": (OutcomeKind.SKIPPED, "unchanged"),
        "C": (OutcomeKind.CREATED, None),
    }
    finished = store.runs.finish(run.id, RunStatus.SUCCEEDED, api_calls=7)
    assert finished.counts == {"created": 1, "updated": 1, "skipped": 1, "failed": 0}
    assert finished.api_calls == 7
    assert [o.source_key for o in store.outcomes.list(run.id, outcome=OutcomeKind.CREATED)] == ["C"]


def test_runs_start_idempotently_and_list_newest_first(store: Store) -> None:
    flow = seed_integration(store).flow
    first = store.runs.start(flow.id, run_id="run-1")
    assert store.runs.start(flow.id, run_id="run-1") == first
    second = store.runs.start(flow.id)
    assert first.status is RunStatus.RUNNING and first.mapping_version == 1

    store.runs.finish(first.id, RunStatus.FAILED, error="AccountView unreachable")
    assert [r.id for r in store.runs.list(flow_id=flow.id)] == [second.id, first.id]
    assert [r.id for r in store.runs.list(status=RunStatus.RUNNING)] == [second.id]
    failed = store.runs.get(first.id)
    assert failed is not None and failed.error == "AccountView unreachable"
    with pytest.raises(StoreError):
        store.runs.finish(second.id, RunStatus.RUNNING)


def test_runs_are_found_by_the_start_of_their_id(store: Store) -> None:
    flow = seed_integration(store).flow
    store.runs.start(flow.id, run_id="flow-abc1")
    store.runs.start(flow.id, run_id="flow-abd2")
    store.runs.start(flow.id, run_id="flow-_x%3")
    assert [r.id for r in store.runs.find("flow-abc1")] == ["flow-abc1"]
    assert [r.id for r in store.runs.find("flow-abd")] == ["flow-abd2"]
    assert sorted(r.id for r in store.runs.find("flow-ab")) == ["flow-abc1", "flow-abd2"]
    assert [r.id for r in store.runs.find("flow-_x%")] == ["flow-_x%3"]
    assert store.runs.find("flow-z") == []


def test_the_log_is_searched_by_key_and_paged_newest_first_across_flows(store: Store) -> None:
    """Each flow's newest rows are read from its own index and merged: the pages must still be
    the whole log in id order, and the key search must find a record by either side's key or
    its record key in any case, in the tenant only."""
    acme = seed_integration(store, "acme")
    stock = store.flows.put(
        acme.integration.id,
        "stock",
        entity="stock",
        source_connection_id=acme.pim.id,
        target_connection_id=acme.av.id,
        enabled=True,
        schedule_seconds=None,
        settings={},
        mapping={},
        mapping_note="test",
    ).value
    other = seed_integration(store, "other")
    runs: list[str] = []
    for round_ in range(3):
        for flow in (acme.flow, stock, other.flow):
            run = store.runs.start(flow.id)
            runs.append(run.id)
            store.outcomes.record_many(
                run.id,
                [
                    OutcomeEntry(
                        f"{flow.id}-{round_}-{n}",
                        OutcomeKind.FAILED if n == 2 else OutcomeKind.UPDATED,
                        target_key=f"T-{flow.id}-{round_}-{n}",
                        record_key=f"Ann{flow.id}{round_}{n}@Example.com",
                    )
                    for n in range(3)
                ],
            )
    scoped = store.scoped(acme.tenant.id)
    everything = [o.id for o in scoped.outcomes.search(limit=1000)]
    assert len(everything) == 18 and everything == sorted(everything, reverse=True)
    paged: list[int] = []
    before: int | None = None
    while page := scoped.outcomes.search(before_id=before, limit=4):
        paged += [o.id for o in page]
        before = page[-1].id
    assert paged == everything
    failed = scoped.outcomes.search(outcome=OutcomeKind.FAILED, limit=1000)
    assert len(failed) == 6 and all(o.outcome is OutcomeKind.FAILED for o in failed)
    assert {o.flow_id for o in scoped.outcomes.search(flow_ids=[stock.id])} == {stock.id}
    assert len(scoped.outcomes.search(run_id=runs[0])) == 3
    assert scoped.outcomes.search(run_id=runs[2]) == []  # the other tenant's run
    key = f"{stock.id}-1-0"
    for typed in (key, f"T-{key}", f"ann{stock.id}10@EXAMPLE.com"):
        assert [o.source_key for o in scoped.outcomes.search(key=typed)] == [key], typed
    assert scoped.outcomes.search(key=f"{other.flow.id}-1-0") == []
    assert store.outcomes.search(key=f"{other.flow.id}-1-0")[0].record_key == (
        f"ann{other.flow.id}10@example.com"
    )
    assert store.runs.numbers(runs[:2]) == {r: store.runs.get(r).number for r in runs[:2]}  # type: ignore[union-attr]


def test_payload_excerpts_are_dropped_when_switched_off(store_factory: StoreFactory) -> None:
    store = store_factory(payload_excerpts=False)
    run = store.runs.start(seed_integration(store).flow.id)
    store.outcomes.record_many(
        run.id, [OutcomeEntry("A", OutcomeKind.CREATED, payload_excerpt={"email": "a@b.nl"})]
    )
    assert store.outcomes.list(run.id)[0].payload_excerpt is None


def test_payload_excerpts_shared_by_rows_are_stored_whole_for_each(store: Store) -> None:
    """Rows that share a piece of their excerpts (the variants of one product share its
    source record) each hold the whole document, valid JSON that reads back the same."""
    run = store.runs.start(seed_integration(store).flow.id)
    product = {
        "sku": "P1",
        "name": 'Zaag "extra" ö',
        "variants": [{"sku": "P1-a"}, {"sku": "P1-b"}],
    }
    store.outcomes.record_many(
        run.id,
        [
            OutcomeEntry(
                f"P1/{variant['sku']}",
                OutcomeKind.CREATED,
                warnings=("truncated",) if variant["sku"] == "P1-b" else (),
                payload_excerpt={"source": product, "sent": {"ART_CODE": variant["sku"]}},
            )
            for variant in product["variants"]
        ]
        + [OutcomeEntry("P2", OutcomeKind.SKIPPED, payload_excerpt={"source": None, "sent": None})],
    )
    logged = {o.source_key: o for o in store.outcomes.list(run.id)}
    assert {k: o.payload_excerpt for k, o in logged.items()} == {
        "P1/P1-a": {"source": product, "sent": {"ART_CODE": "P1-a"}},
        "P1/P1-b": {"source": product, "sent": {"ART_CODE": "P1-b"}},
        "P2": {"source": None, "sent": None},
    }
    assert [list(o.warnings) for o in logged.values()] == [[], ["truncated"], []]
    with store.engine.connect() as connection:
        stored = connection.scalar(
            text("SELECT payload_excerpt FROM outcomes WHERE source_key = 'P1/P1-b'")
        )
    whole = {"source": product, "sent": {"ART_CODE": "P1-b"}}
    # SQLite keeps the text as written; PostgreSQL's JSONB hands back the document.
    assert (json.loads(stored) if isinstance(stored, str) else stored) == whole


def test_a_page_synced_again_in_its_run_keeps_what_the_run_did_to_its_records(
    store: Store,
) -> None:
    """A resumed run syncs its last page again and finds its own writes unchanged: "skipped"
    must not replace the "created" it recorded, or the run's counts lose what it created. A
    record that changed again, or failed this time, still takes the new outcome."""
    run = store.runs.start(seed_integration(store).flow.id)
    first = [
        OutcomeEntry("A", OutcomeKind.CREATED, target_key="T-A"),
        OutcomeEntry("B", OutcomeKind.UPDATED, target_key="T-B"),
        OutcomeEntry("C", OutcomeKind.CREATED, target_key="T-C"),
        OutcomeEntry("D", OutcomeKind.FAILED, reason="no price"),
    ]
    store.outcomes.record_many(run.id, first)
    store.outcomes.record_many(
        run.id,
        [
            OutcomeEntry("A", OutcomeKind.SKIPPED, reason="unchanged"),
            OutcomeEntry("B", OutcomeKind.SKIPPED, reason="unchanged"),
            OutcomeEntry("C", OutcomeKind.FAILED, reason="AccountView refused it"),
            OutcomeEntry("D", OutcomeKind.SKIPPED, reason="unchanged"),
        ],
    )
    logged = {o.source_key: (o.outcome, o.reason) for o in store.outcomes.list(run.id)}
    assert logged == {
        "A": (OutcomeKind.CREATED, None),
        "B": (OutcomeKind.UPDATED, None),
        "C": (OutcomeKind.FAILED, "AccountView refused it"),
        "D": (OutcomeKind.SKIPPED, "unchanged"),
    }
    finished = store.runs.finish(run.id, RunStatus.SUCCEEDED)
    assert (finished.counts["created"], finished.counts["updated"]) == (1, 1), finished.counts
    other = store.runs.start(run.flow_id)
    store.outcomes.record_many(other.id, [OutcomeEntry("A", OutcomeKind.SKIPPED)])
    assert [o.outcome for o in store.outcomes.list(other.id)] == [OutcomeKind.SKIPPED]


# --- links, cursors, transactions -------------------------------------------------------------


def test_links_batch_lookup_upsert_and_reverse_lookup(store: Store) -> None:
    integration = seed_integration(store).integration
    keys = [f"SKU{i}" for i in range(1200)]  # more than one IN (...) chunk
    store.links.upsert_many(
        integration.id, "products", [LinkEntry(k, f"T{k}", content_hash="h1") for k in keys]
    )
    store.links.upsert_many(
        integration.id, "products", [LinkEntry("SKU5", "T-new", content_hash="h2")]
    )

    found = store.links.get_many(integration.id, "products", [*keys, "unknown"])
    assert len(found) == 1200 and "unknown" not in found
    assert (found["SKU5"].target_key, found["SKU5"].content_hash) == ("T-new", "h2")
    assert store.links.get_many(integration.id, "categories", keys) == {}
    assert [
        link.source_key
        for link in store.links.find_by_target(integration.id, "products", ["T-new", "TSKU7"])
    ] == ["SKU5", "SKU7"]


def test_links_read_back_as_written_for_every_number_of_keys(store: Store) -> None:
    """The link reads run a statement compiled per number of keys, filled up with the last key:
    every count reads each link once, with its JSON, its flag and aware UTC timestamps, on the
    tenant's own integrations only."""
    acme = seed_integration(store, "acme")
    other = seed_integration(store, "globex")
    keys = [f"K{i}" for i in range(9)]
    entries = [
        LinkEntry(k, f"T{k}", f"h{k}", extra={"n": i, "name": "Bremsbeläge"}, pending=i % 2 == 1)
        for i, k in enumerate(keys)
    ]
    store.links.upsert_many(acme.integration.id, "products", entries)
    store.links.upsert_many(other.integration.id, "products", [LinkEntry("K0", "TK0")])
    scoped = store.scoped(acme.tenant.id)
    before = utc_now()

    for count in range(1, len(keys) + 1):
        wanted = [*keys[:count], "unknown"]
        for links in (store.links, scoped.links):
            found = links.get_many(acme.integration.id, "products", wanted)
            assert sorted(found) == keys[:count]
            by_target = links.find_by_target(
                acme.integration.id, "products", [f"T{k}" for k in wanted]
            )
            assert [link.source_key for link in by_target] == keys[:count]
            for i, key in enumerate(keys[:count]):
                link = found[key]
                assert link == by_target[i]
                assert (link.integration_id, link.entity, link.target_key) == (
                    acme.integration.id,
                    "products",
                    f"T{key}",
                )
                assert (link.content_hash, link.extra) == (
                    f"h{key}",
                    {"n": i, "name": "Bremsbeläge"},
                )
                assert link.pending is (i % 2 == 1)
                assert link.created_at.tzinfo is UTC and link.updated_at.tzinfo is UTC
                assert before - timedelta(minutes=5) < link.created_at <= utc_now()
    assert store.scoped(other.tenant.id).links.get_many(acme.integration.id, "products", keys) == {}
    assert store.links.get_many(other.integration.id, "products", keys) == {
        "K0": store.links.find_by_target(other.integration.id, "products", ["TK0"])[0]
    }


def test_confirming_claimed_links_clears_their_flag_and_writes_lost_ones_anew(
    store: Store,
) -> None:
    integration_id = seed_integration(store).integration.id
    claims = [LinkEntry(k, f"T{k}", f"h{k}", pending=True) for k in ("A", "B", "C")]
    store.links.upsert_many(integration_id, "products", claims)
    store.links.forget(integration_id, "products", drop=["B"], stale=[])

    store.links.confirm_many(
        integration_id, "products", [LinkEntry(k, f"T{k}", f"h{k}") for k in ("A", "B")]
    )

    found = store.links.get_many(integration_id, "products", ["A", "B", "C"])
    assert {k: (v.target_key, v.content_hash, v.pending) for k, v in found.items()} == {
        "A": ("TA", "hA", False),
        "B": ("TB", "hB", False),
        "C": ("TC", "hC", True),
    }


def test_an_upsert_refuses_rows_without_a_column_that_has_a_default(store: Store) -> None:
    integration_id = seed_integration(store).integration.id
    row = {"integration_id": integration_id, "entity": "products", "source_key": "A"}
    with pytest.raises(StoreError, match="'extra'"), Session(store.engine) as session:
        upsert(
            session,
            LinkRow,
            [{**row, "target_key": "TA", "content_hash": None, "pending": False}],
            key=("integration_id", "entity", "source_key"),
            update=("target_key",),
        )
    assert store.links.get_many(integration_id, "products", ["A"]) == {}


def test_cursor_and_outcomes_commit_together_or_not_at_all(store: Store) -> None:
    flow = seed_integration(store).flow
    run = store.runs.start(flow.id)
    store.cursors.set(flow.id, "2024-01-01T00:00:00", ["A"])

    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.outcomes.record_many(run.id, [OutcomeEntry("B", OutcomeKind.CREATED)])
        tx.cursors.set(flow.id, "2024-01-02T00:00:00", ["B"])
        raise RuntimeError("crash before commit")

    cursor = store.cursors.get(flow.id)
    assert cursor is not None
    assert (cursor.value, cursor.tie_keys) == ("2024-01-01T00:00:00", ["A"])
    assert store.outcomes.list(run.id) == []

    with store.transaction() as tx:
        tx.outcomes.record_many(run.id, [OutcomeEntry("B", OutcomeKind.CREATED)])
        tx.cursors.set(flow.id, "2024-01-02T00:00:00", ["B", "B"])
    cursor = store.cursors.get(flow.id)
    assert cursor is not None and cursor.tie_keys == ["B"]
    assert len(store.outcomes.list(run.id)) == 1


def test_concurrent_writers_on_overlapping_keys_neither_fail_nor_duplicate(
    store_factory: StoreFactory,
) -> None:
    seeded = seed_integration(store_factory())
    run_id = store_factory().runs.start(seeded.flow.id).id
    keys = [f"K{i:03}" for i in range(60)]
    errors: list[BaseException] = []

    def write(order: list[str], worker: str) -> None:
        store = store_factory()
        try:
            for start in range(0, len(order), 10):
                batch = order[start : start + 10]
                with store.transaction() as tx:
                    tx.outcomes.record_many(
                        run_id, [OutcomeEntry(k, OutcomeKind.UPDATED, reason=worker) for k in batch]
                    )
                    tx.links.upsert_many(
                        seeded.integration.id, "products", [LinkEntry(k, worker) for k in batch]
                    )
                    tx.cursors.set(seeded.flow.id, batch[-1], batch)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [
        Thread(target=write, args=(keys, "a")),
        Thread(target=write, args=(keys[::-1], "b")),
        Thread(target=write, args=(keys[20:] + keys[:20], "c")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    reader = store_factory()
    assert sorted(o.source_key for o in reader.outcomes.list(run_id, limit=1000)) == keys
    assert len(reader.links.get_many(seeded.integration.id, "products", keys)) == len(keys)


def test_excerpts_and_warnings_read_back_as_recorded(store: Store) -> None:
    """Excerpts and warnings are serialised by orjson, and what it refuses (an integer beyond
    64 bits) by the standard library: each reads back as it was recorded."""
    run = store.runs.start(seed_integration(store).flow.id)
    excerpts = {
        "plain": {"source": {"name": "Bremsbeläge 名前 🚗", "ids": [1, 2.5, None, True]}},
        "big": {"source": {"id": 2**70}, "sent": None},
    }
    store.outcomes.record_many(
        run.id,
        [
            OutcomeEntry(key, OutcomeKind.CREATED, warnings=(f"{key}: ö",), payload_excerpt=value)
            for key, value in excerpts.items()
        ],
    )
    logged = {o.source_key: o for o in store.outcomes.list(run.id)}
    assert {key: o.payload_excerpt for key, o in logged.items()} == excerpts
    assert {key: o.warnings for key, o in logged.items()} == {k: [f"{k}: ö"] for k in excerpts}


# --- dead letters -------------------------------------------------------------------------------


def test_a_record_is_on_the_dead_letter_list_at_most_once(store: Store) -> None:
    flow = seed_integration(store).flow
    now = utc_now()

    assert store.dead_letters.add_many(flow.id, [DeadLetterEntry("A", "timeout")], now=now) == {
        "A": 1
    }
    again = store.dead_letters.add_many(
        flow.id,
        [DeadLetterEntry("A", "HTTP 503", {"sku": "A"}), DeadLetterEntry("B", "bad EAN")],
        now=now,
    )
    assert again == {"A": 2, "B": 1}
    entries = {d.source_key: d for d in store.dead_letters.list(flow.id)}
    assert len(entries) == 2
    assert (entries["A"].attempts, entries["A"].reason) == (2, "HTTP 503")
    assert entries["A"].next_attempt_at == now + timedelta(minutes=2)

    assert store.dead_letters.due(flow.id, now) == []
    due = store.dead_letters.due(flow.id, now + timedelta(minutes=1))
    assert [d.source_key for d in due] == ["B"]

    assert store.dead_letters.resolve_many(flow.id, ["A", "A", "missing"]) == 1
    assert store.dead_letters.add_many(flow.id, [DeadLetterEntry("A", "again")], now=now) == {
        "A": 1
    }
    assert store.dead_letters.list(flow.id, status=DeadLetterStatus.PENDING)[0].attempts == 1
    assert len(store.dead_letters.list(flow.id)) == 2


def test_resolving_in_a_flow_with_nothing_pending_leaves_other_flows_alone(store: Store) -> None:
    """A batch resolves every key it recorded; a flow with no pending entry skips the
    update, and a pending entry of the same key in another flow stays pending."""
    mine = seed_integration(store, "acme").flow
    other = seed_integration(store, "globex").flow
    now = utc_now()
    store.dead_letters.add_many(mine.id, [DeadLetterEntry("A", "timeout")], now=now)
    store.dead_letters.add_many(other.id, [DeadLetterEntry("A", "timeout")], now=now)
    assert store.dead_letters.resolve_many(mine.id, ["A"]) == 1
    assert store.dead_letters.resolve_many(mine.id, ["A", "B"]) == 0
    assert [d.status for d in store.dead_letters.list(mine.id)] == [DeadLetterStatus.RESOLVED]
    assert [d.status for d in store.dead_letters.list(other.id)] == [DeadLetterStatus.PENDING]
    assert store.dead_letters.resolve_many(other.id, ["B", "A"]) == 1


# --- retention ----------------------------------------------------------------------------------


def test_retention_purge_removes_old_log_and_payloads(store_factory: StoreFactory) -> None:
    store = store_factory(log_retention_days=30)
    flow = seed_integration(store).flow
    run = store.runs.start(flow.id)
    store.outcomes.record_many(
        run.id,
        [
            OutcomeEntry("old", OutcomeKind.CREATED, payload_excerpt={"email": "old@x.nl"}),
            OutcomeEntry("new", OutcomeKind.CREATED, payload_excerpt={"email": "new@x.nl"}),
        ],
    )
    store.dead_letters.add_many(
        flow.id,
        [
            DeadLetterEntry("stale", "bad", {"email": "stale@x.nl"}),
            DeadLetterEntry("closed", "bad", {"email": "closed@x.nl"}),
            DeadLetterEntry("fresh", "bad", {"email": "fresh@x.nl"}),
        ],
    )
    store.dead_letters.resolve_many(flow.id, ["closed"])
    long_ago = utc_now() - timedelta(days=31)
    with store.engine.begin() as connection:
        connection.execute(
            update(OutcomeRow).where(OutcomeRow.source_key == "old").values(created_at=long_ago)
        )
        connection.execute(
            update(DeadLetterRow)
            .where(DeadLetterRow.source_key.in_(["stale", "closed"]))
            .values(updated_at=long_ago)
        )

    result = store.retention.purge()

    assert (result.outcomes_deleted, result.dead_letters_deleted) == (1, 1)
    assert result.dead_letter_payloads_cleared == 1
    assert [o.source_key for o in store.outcomes.list(run.id)] == ["new"]
    payloads = {d.source_key: d.payload for d in store.dead_letters.list(flow.id)}
    assert payloads == {"stale": None, "fresh": {"email": "fresh@x.nl"}}
    assert store.retention.purge() == type(result)(0, 0, 0)


def test_retention_purge_removes_e_mail_addresses_from_old_dead_letter_reasons(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(log_retention_days=30)
    flow = seed_integration(store).flow
    quoting = "relation 'Els.deBoer@example.nl': another flow is writing the debtor with e-mail"
    store.dead_letters.add_many(
        flow.id,
        [
            DeadLetterEntry("7", f"{quoting} els.deboer@example.nl right now"),
            DeadLetterEntry("8", f"{quoting} fresh@example.nl right now"),
        ],
    )
    with store.engine.begin() as connection:
        connection.execute(
            update(DeadLetterRow)
            .where(DeadLetterRow.source_key == "7")
            .values(updated_at=utc_now() - timedelta(days=31))
        )

    result = store.retention.purge()

    assert result.dead_letter_reasons_redacted == 1
    reasons = {d.source_key: d.reason for d in store.dead_letters.list(flow.id)}
    assert reasons["7"] == (
        "relation '<e-mail removed>': another flow is writing the debtor with e-mail "
        "<e-mail removed> right now"
    )
    assert "fresh@example.nl" in reasons["8"]
    assert store.retention.purge().dead_letter_reasons_redacted == 0


# --- key locks ------------------------------------------------------------------------------------


def test_key_locks_hold_across_two_database_connections(store_factory: StoreFactory) -> None:
    worker_a, worker_b = store_factory(), store_factory()
    assert worker_a.engine is not worker_b.engine
    now = utc_now()
    ttl = timedelta(minutes=5)

    assert worker_a.key_locks.acquire_many("orders", ["1", "2"], "a", ttl=ttl, now=now) == {
        "1",
        "2",
    }
    assert worker_b.key_locks.acquire_many("orders", ["2", "3"], "b", ttl=ttl, now=now) == {"3"}
    assert worker_b.key_locks.acquire_many("stock", ["2"], "b", ttl=ttl, now=now) == {"2"}
    # The holder may extend its own lock.
    assert worker_a.key_locks.acquire_many("orders", ["2"], "a", ttl=ttl, now=now) == {"2"}

    worker_b.key_locks.release_many("orders", ["1"], "b")  # not b's lock: stays
    assert worker_b.key_locks.acquire_many("orders", ["1"], "b", ttl=ttl, now=now) == set()
    worker_a.key_locks.release_many("orders", ["1"], "a")
    assert worker_b.key_locks.acquire_many("orders", ["1"], "b", ttl=ttl, now=now) == {"1"}

    # A crashed holder's lock expires.
    later = now + ttl + timedelta(seconds=1)
    assert worker_b.key_locks.acquire_many("orders", ["2"], "b", ttl=ttl, now=later) == {"2"}


# --- tenant isolation -----------------------------------------------------------------------------


def test_a_tenant_cannot_read_another_tenants_data(store: Store) -> None:
    acme = seed_integration(store, "acme")
    other = seed_integration(store, "globex")
    other_run = store.runs.start(other.flow.id)
    store.outcomes.record_many(other_run.id, [OutcomeEntry("X", OutcomeKind.CREATED)])
    store.links.upsert_many(other.integration.id, "products", [LinkEntry("X", "1")])
    store.cursors.set(other.flow.id, "v")
    store.dead_letters.add_many(other.flow.id, [DeadLetterEntry("Y", "bad")])

    scoped = store.scoped(acme.tenant.id)

    assert [t.name for t in scoped.tenants.list()] == ["acme"]
    assert scoped.tenants.get(other.tenant.id) is None
    assert {c.tenant_id for c in scoped.connections.list()} == {acme.tenant.id}
    assert scoped.connections.get(other.pim.id) is None
    with pytest.raises(NotFoundError):
        scoped.connections.get_credentials(other.pim.id)
    with pytest.raises(NotFoundError):
        scoped.connections.update_credentials(other.av.id, {"refresh_token": "stolen"})
    assert scoped.integrations.get(other.integration.id) is None
    assert [f.id for f in scoped.flows.list()] == [acme.flow.id]
    assert scoped.flows.get(other.flow.id) is None
    assert scoped.flows.get_by_name(other.integration.id, "products") is None
    assert scoped.runs.get(other_run.id) is None
    assert scoped.runs.list() == []
    assert scoped.outcomes.list(other_run.id) == []
    with pytest.raises(NotFoundError):
        scoped.outcomes.record_many(other_run.id, [OutcomeEntry("Z", OutcomeKind.CREATED)])
    with pytest.raises(NotFoundError):
        scoped.runs.start(other.flow.id)
    assert scoped.links.get_many(other.integration.id, "products", ["X"]) == {}
    assert scoped.cursors.get(other.flow.id) is None
    assert scoped.dead_letters.list(other.flow.id) == []
    assert scoped.dead_letters.due(other.flow.id, utc_now() + timedelta(days=1)) == []
    with pytest.raises(NotFoundError):
        scoped.audit.list(other.tenant.id)
    with pytest.raises(StoreError):
        scoped.tenants.ensure("initech")
    # The other tenant's data is still there for the system store.
    assert store.connections.get_credentials(other.av.id)["refresh_token"] == "refresh-of-globex"


# --- runs added up per period (the dashboard's charts) ------------------------------------------


def test_run_counts_add_up_per_period_in_the_database(store: Store) -> None:
    seeded = seed_integration(store)
    other = seed_integration(store, "globex")
    runs = []
    for kinds in (
        [OutcomeKind.CREATED, OutcomeKind.CREATED],
        [OutcomeKind.UPDATED, OutcomeKind.FAILED],
    ):
        run = store.runs.start(seeded.flow.id)
        store.outcomes.record_many(
            run.id,
            [OutcomeEntry(f"sku-{n}", kind) for n, kind in enumerate(kinds)]
            + [OutcomeEntry("categories:1", OutcomeKind.SKIPPED)],
        )
        runs.append(
            store.runs.finish(run.id, RunStatus.SUCCEEDED, entities={"categories:": "categories"})
        )
    elsewhere = store.runs.start(other.flow.id)
    store.outcomes.record_many(elsewhere.id, [OutcomeEntry("x", OutcomeKind.CREATED)])
    store.runs.finish(elsewhere.id, RunStatus.SUCCEEDED)
    start = min(run.started_at for run in runs) - timedelta(hours=1)
    bounds = [start, start + timedelta(minutes=30), start + timedelta(hours=2)]
    keys = {
        kind: [kind, f"categories.{kind}"] for kind in ("created", "updated", "skipped", "failed")
    }
    assert store.runs.sums([seeded.flow.id], bounds=bounds, keys=keys) == [
        {"created": 0, "updated": 0, "skipped": 0, "failed": 0},
        {"created": 2, "updated": 1, "skipped": 2, "failed": 1},
    ]
    both = store.runs.sums([seeded.flow.id, other.flow.id], bounds=bounds, keys=keys)
    assert both[1]["created"] == 3
    scoped = store.scoped(other.tenant.id)  # a workspace adds up only its own runs
    assert scoped.runs.sums([seeded.flow.id, other.flow.id], bounds=bounds, keys=keys)[1] == {
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert store.runs.sums([], bounds=bounds, keys=keys)[1]["created"] == 0


def test_a_rehearsal_sees_what_it_wrote_and_keeps_none_of_it(store: Store) -> None:
    """The dry run's store: outcomes, links, cursors, dead letters and the run itself are
    recorded as in a run (later batches see them), then rolled back."""
    seeded = seed_integration(store)
    flow_id, integration_id = seeded.flow.id, seeded.integration.id
    with store.rehearsal() as rehearsing:
        run = rehearsing.runs.start(flow_id)
        with rehearsing.transaction() as tx:  # a batch's transaction joins the rehearsal
            tx.outcomes.record_many(
                run.id, [OutcomeEntry(source_key="1", outcome=OutcomeKind.FAILED, reason="no")]
            )
            tx.links.upsert_many(integration_id, "products", [LinkEntry("1", "A", "h")])
            tx.dead_letters.add_many(flow_id, [DeadLetterEntry("1", "no", {"id": 1})])
        rehearsing.cursors.set(flow_id, "2024-01-01T00:00:00")
        assert rehearsing.links.get_many(integration_id, "products", ["1"])["1"].target_key == "A"
        assert rehearsing.outcomes.counts(run.id)["failed"] == 1
        assert rehearsing.dead_letters.count_pending(flow_id) == 1
        with pytest.raises(StoreError, match="inside a transaction"), rehearsing.rehearsal():
            pass
    assert store.runs.get(run.id) is None
    assert store.links.get_many(integration_id, "products", ["1"]) == {}
    assert store.cursors.get(flow_id) is None
    assert store.dead_letters.count_pending(flow_id) == 0


def test_the_outbox_queues_an_event_once_per_channel_and_moves_it_to_sent_once(
    store: Store,
) -> None:
    acme, other = store.tenants.ensure("acme"), store.tenants.ensure("other")
    now = utc_now()
    outbox = store.notifications
    assert outbox.enqueue(acme.id, "run-failed:r1", "run_failed", {}, ["email", "webhook"]) == 2
    assert outbox.enqueue(acme.id, "run-failed:r1", "run_failed", {}, ["email", "webhook"]) == 0
    assert outbox.enqueue(other.id, "run-failed:r1", "run_failed", {}, ["email"]) == 1
    later = now + timedelta(seconds=1)
    first = outbox.claim_due(now=later, limit=1)
    assert [(e.channel, e.status.value, e.attempts) for e in first] == [("email", "sending", 1)]
    outbox.mark_retry(first[0].id, "unreachable", at=later + timedelta(minutes=1))
    rest = outbox.claim_due(now=later, limit=10)
    assert sorted(e.channel for e in rest) == ["email", "webhook"]  # other's email, acme's webhook
    for entry in rest:
        outbox.mark_sent(entry.id, now=later)
        outbox.mark_sent(entry.id, now=later)  # only a sending entry moves
    assert outbox.claim_due(now=later, limit=10) == []
    [again] = outbox.claim_due(now=later + timedelta(minutes=2), limit=10)
    assert again.id == first[0].id and again.attempts == 2 and again.last_error == "unreachable"
    # Its sender dies: after the lease it is uncertain, never claimed again.
    assert outbox.expire_sending(now=later + timedelta(minutes=2), lease=timedelta(minutes=5)) == 0
    assert outbox.expire_sending(now=later + timedelta(hours=1), lease=timedelta(minutes=5)) == 1
    assert outbox.claim_due(now=later + timedelta(days=1), limit=10) == []
    statuses = {(e.tenant_id, e.channel): e.status.value for e in outbox.list_recent(acme.id)}
    assert statuses == {(acme.id, "email"): "uncertain", (acme.id, "webhook"): "sent"}
    assert outbox.waiting() == 0
    scoped = store.scoped(other.id)
    assert [e.tenant_id for e in scoped.notifications.list_recent(other.id)] == [other.id]
    with pytest.raises(NotFoundError):
        scoped.notifications.list_recent(acme.id)
    assert scoped.notifications.latest_event(other.id, "run-failed:") == "run-failed:r1"
