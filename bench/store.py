"""`python -m bench store`: what a products batch costs in Koppel's own store, nothing else.

Batches of 500 product-like items go through the store side of `TargetWriter`, as a first run
writes them: the links read before the target write (`get_many`, and `find_by_target` for the
shared-key check), the pending links claimed before it, and `record` (outcomes with their
payload excerpts, the links confirmed, dead letters resolved), on a SQLite file that already
holds `existing` links of the entity (a catalogue synced before). No HTTP, no mapping: the
items arrive mapped. Printed per record: CPU, and cProfile's count of Python function calls
(a second pass on a fresh file), a figure the load of the machine does not move.
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from koppel.connectors.accountview import AccountViewConnector
from koppel.flows.pipeline import Item, TargetWriter
from koppel.secrets import SecretBox
from koppel.store import Application, LinkEntry, OutcomeKind, Store, make_engine, upgrade

__all__ = ["StoreFigures", "format_store", "run_store"]

BATCH = 500
BATCHES = 20
EXISTING = (0, 50_000)


@dataclass
class StoreFigures:
    existing: int
    records: int
    cpu_us_per_record: float
    calls_per_record: float


def _source(n: int) -> dict[str, Any]:
    """A Parts Pim product as its API returns it (the fields an excerpt walks)."""
    return {
        "id": n,
        "sku": str(10_000_000 + n),
        "name": f"Remschijf {n} geventileerd",
        "short_description": "Geventileerde remschijf, per stuk",
        "description": "Remschijf met hoge warmteafvoer. " * 10,
        "price": {"amount": "42.50", "currency": "EUR"},
        "status": "active",
        "updated_at": "2026-12-01T10:00:00Z",
        "attributes": [{"code": f"attr{i}", "value": f"value {i}"} for i in range(5)],
        "category_keys": ["7"],
        "variants": [],
    }


def _sent(n: int) -> dict[str, Any]:
    """The AccountView article written for it."""
    return {
        "ART_CODE": str(10_000_000 + n),
        "ART_DESC1": f"Remschijf {n} geventileerd",
        "ART_DESC2": "Geventileerde remschijf, per",
        "PX_SELL": Decimal("42.50"),
        "COST_PX": Decimal("30.00"),
        "ART_GRP": "REM01",
        "EAN_CODE": "8712345678901",
        "BLOCKED": False,
    }


def _items(batch: int) -> list[Item]:
    items = []
    for n in range(batch * BATCH, (batch + 1) * BATCH):
        item = Item(str(n), f"SKU '{10_000_000 + n}'", _source(n))
        item.create = item.update = _sent(n)
        item.target_key = str(10_000_000 + n)
        item.warnings.append("ART_DESC2: truncated from 33 to 28 characters")
        items.append(item)
    return items


def _writer(home: Path, existing: int) -> tuple[TargetWriter, Store]:
    url = f"sqlite:///{home / 'koppel.db'}"
    upgrade(url)
    store = Store.from_engine(make_engine(url), SecretBox([Fernet.generate_key().decode()]))
    tenant = store.tenants.ensure("bench")
    pim, av = (
        store.connections.put(
            tenant.id,
            name,
            application=app,
            base_url="http://127.0.0.1:1",
            credentials={},
            options={},
        ).value
        for name, app in (("pim", Application.PARTSPIM), ("av", Application.ACCOUNTVIEW))
    )
    integration = store.integrations.put(
        tenant.id, "bench", connection_a_id=pim.id, connection_b_id=av.id, settings={}
    ).value
    flow = store.flows.put(
        integration.id,
        "products",
        entity="products",
        source_connection_id=pim.id,
        target_connection_id=av.id,
        enabled=True,
        schedule_seconds=None,
        settings={},
        mapping={},
        mapping_note="bench",
    ).value
    for start in range(0, existing, 5_000):
        store.links.upsert_many(
            integration.id,
            "products",
            [LinkEntry(f"old{n}", f"OLD{n}", "hash") for n in range(start, start + 5_000)],
        )
    # Never called: `record` and the claim do not talk to the target.
    unused = {"client_id": "-", "client_secret": "-", "company_id": "-"}
    target = AccountViewConnector({"base_url": "http://127.0.0.1:1", **unused})
    writer = TargetWriter(store, integration.id, flow.id, "products", target, "articles")
    return writer, store


def _batches(writer: TargetWriter, store: Store, batches: list[list[Item]]) -> None:
    """What `TargetWriter.write` and `record` ask of the store, for items it writes as new."""
    run = store.runs.start(writer.flow_id)
    for items in batches:
        keys = [i.source_key for i in items]
        store.links.get_many(writer.integration_id, writer.link_entity, keys)
        store.links.find_by_target(
            writer.integration_id, writer.link_entity, [str(i.target_key) for i in items]
        )
        writer._claim(items)
        for item in items:
            item.outcome = OutcomeKind.CREATED
        writer.record(run.id, items)


def _measure(existing: int, *, profile: bool) -> tuple[float, int]:
    batches = [_items(b) for b in range(BATCHES)]
    with tempfile.TemporaryDirectory(prefix="koppel-bench-store-") as home:
        writer, store = _writer(Path(home), existing)
        try:
            profiler = cProfile.Profile()
            started = time.process_time()
            if profile:
                profiler.enable()
            _batches(writer, store, batches)
            if profile:
                profiler.disable()
            cpu = time.process_time() - started
        finally:
            store.close()
    calls = pstats.Stats(profiler).total_calls if profile else 0  # type: ignore[attr-defined]
    return cpu, int(calls)


def run_store(*, existing: tuple[int, ...] = EXISTING) -> list[StoreFigures]:
    figures = []
    records = BATCH * BATCHES
    for links in existing:
        cpu, _ = _measure(links, profile=False)
        _, calls = _measure(links, profile=True)
        figures.append(StoreFigures(links, records, 1e6 * cpu / records, calls / records))
    return figures


def format_store(figures: list[StoreFigures]) -> str:
    lines = [f"== store: {BATCHES} batches of {BATCH} new products, claim and record (SQLite)"]
    for f in figures:
        lines.append(
            f"  {f.existing:>6,} links before: {f.cpu_us_per_record:.0f} us CPU per record, "
            f"{f.calls_per_record:.0f} function calls per record"
        )
    return "\n".join(lines)
