"""Hostile records seeded into the Parts Pim sandbox as a lax or foreign Parts Pim might hold
them: stored as given, past the contract's rules, so the flows meet them over real HTTP."""

from __future__ import annotations

import json
from typing import Any

from koppel.sandbox.partspim.store import PartsPimStore


def seed_unchecked(store: PartsPimStore, resource: str, records: list[dict[str, Any]]) -> None:
    """Insert `records` (each with its `id`) into a resource's table without any rule checked."""
    columns = PartsPimStore.resource(resource).columns
    now = store.now()
    rows = [
        (
            record["id"],
            json.dumps({k: v for k, v in record.items() if k != "id"}),
            now,
            now,
            *(_column(record, c) for c in columns),
        )
        for record in records
    ]
    table = PartsPimStore.resource(resource).table
    store.bulk_insert(table, ("id", "data", "created_at", "updated_at", *columns), rows)
    if resource == "products":
        skus = [
            (str(sku), record["id"])
            for record in records
            for sku in [record.get("sku"), *(v.get("sku") for v in record.get("variants") or [])]
            if isinstance(sku, str) and sku
        ]
        store.bulk_insert("product_skus", ("sku", "product_id"), list(dict(skus).items()))


def _column(record: dict[str, Any], column: str) -> Any:
    if column == "email_lower":
        email = record.get("email")
        return email.lower() if isinstance(email, str) else None
    value = record.get(column)
    return value if isinstance(value, str | int | float) or value is None else json.dumps(value)
