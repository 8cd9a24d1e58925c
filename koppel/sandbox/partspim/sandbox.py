"""The Parts Pim sandbox as one object: state, HTTP app, faults, data, credentials.

Fixture format (`load_fixture`): one JSON object whose keys are resource names and whose values are
lists of records in the API's create shape (docs/connectors/partspim.md). A record may carry an
`"id"` so that other records can refer to it (`category_ids`, `parent_id`, `relation_id`, ...).
Resources load in dependency order, through the same rules as the API:

    {"warehouses": [{"id": 1, "code": "HOOFD", "name": "Hoofdmagazijn"}],
     "employees": [{"number": "999999", "name": "Webshop"}],
     "payment-terms": [{"id": 1, "code": "30D", "name": "30 dagen", "days": 30}],
     "payment-methods": [{"id": 1, "code": "BANK", "name": "Bankoverschrijving"}],
     "categories": [{"id": 1, "code": "REM", "name": "Remmen"}],
     "products": [{"id": 1, "sku": "1001", "name": "Remblokken", "price_excl_vat": "19.95"}],
     "stock": [{"sku": "1001", "warehouse_id": 1, "on_hand": "12"}],
     "relations": [{"id": 1, "type": "person", "last_name": "Jansen", "email": "j@example.nl"}],
     "orders": [{"relation_id": 1, "employee_number": "999999", "reference": "WEB-1",
                 "lines": [{"sku": "1001", "quantity": "2"}]}],
     "invoices": []}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from koppel.sandbox.common import FaultConfig, FaultMiddleware, admin_router
from koppel.sandbox.partspim.app import API_KEY_HEADER, API_PREFIX, build_app, kind_of
from koppel.sandbox.partspim.generate import CatalogueGenerator
from koppel.sandbox.partspim.store import RESOURCES, PartsPimStore
from koppel.sandbox.partspim.webhooks import Delivery, WebhookDispatcher

FIXTURE_ORDER = (
    "warehouses",
    "employees",
    "payment-terms",
    "payment-methods",
    "categories",
    "products",
    "stock",
    "relations",
    "orders",
    "invoices",
)


class PartsPimSandbox:
    """A local Parts Pim: the assumed REST API over SQLite, with faults and webhooks."""

    name = "partspim"

    def __init__(
        self, db_path: str = ":memory:", faults: FaultConfig | None = None, seed: int = 0
    ) -> None:
        self.seed = seed
        self.store = PartsPimStore(db_path)
        self.webhooks = WebhookDispatcher(self.store)
        app = build_app(self.store)
        self.faults = FaultMiddleware(app, faults or FaultConfig(seed=seed), kind_of=kind_of)
        app.include_router(admin_router(self.faults))
        self.last_generate_s: float | None = None

    def asgi_app(self) -> ASGIApp:
        return self.faults

    def generate(
        self,
        products: int,
        *,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Add master data (once), categories, `products` products with stock, relations, orders.

        Relations and orders number products/20 each (at least 10), invoices products/80.
        """
        started = time.perf_counter()
        CatalogueGenerator(self.store, seed or self.seed).run(products, progress)
        self.last_generate_s = time.perf_counter() - started

    def load_fixture(self, path: Path) -> None:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        unknown = set(data) - set(FIXTURE_ORDER)
        if unknown:
            raise ValueError(f"fixture {path}: unknown resources {sorted(unknown)}")
        for resource in FIXTURE_ORDER:
            records = data.get(resource, [])
            if resource == "stock":
                if records:
                    self.store.upsert_stock(records)
                continue
            for index, record in enumerate(records):
                body = dict(record)
                record_id = body.pop("id", None)
                try:
                    self.store.create(resource, body, record_id=record_id, over_api=False)
                except Exception as error:
                    raise ValueError(f"fixture {path}: {resource}[{index}]: {error}") from error

    def credentials(self, base_url: str) -> dict[str, Any]:
        return {"base_url": base_url, "api_key": self.store.api_key}

    def describe(self, base_url: str) -> str:
        counts = ", ".join(
            f"{self.store.count(name)} {name}"
            for name in ("products", "categories", "stock", "relations", "orders", "invoices")
        )
        return (
            f"Parts Pim sandbox: its API at {base_url}{API_PREFIX}\n"
            f"  base_url       {base_url} (for Koppel; {base_url}{API_PREFIX} works too)\n"
            f"  API key ({API_KEY_HEADER} header): {self.store.api_key}\n"
            f"  data: {counts}\n"
            f"  faults: {base_url}/_admin/faults   requests: {base_url}/_admin/requests"
        )

    def deliveries(self) -> list[Delivery]:
        """Webhook deliveries tried so far (wait with `webhooks.wait_idle()` first)."""
        return self.webhooks.deliveries()

    def close(self) -> None:
        self.webhooks.close()
        self.store.close()


__all__ = ["FIXTURE_ORDER", "RESOURCES", "PartsPimSandbox"]
