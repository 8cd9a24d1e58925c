"""Driving the command line in the end-to-end tests: in-process (typer's CliRunner) or as a
worker process, against both sandboxes over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result
from typer.testing import CliRunner

from koppel.cli import app
from tests.e2e.conftest import Platform

PRODUCTS_FLOW = {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}
TOO_LONG_SKU = "12345678901234567"  # Parts Pim allows 20 digits, AccountView's ART_CODE 15


def koppel(*args: str, columns: int = 200) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})


@dataclass
class Setup:
    platform: Platform
    config: Path

    def write(self, document: dict[str, Any]) -> Path:
        self.config.write_text(yaml.safe_dump(document, sort_keys=False))
        return self.config

    def document(self, **flow: Any) -> dict[str, Any]:
        return self.platform.sandboxes.integration({"products": {**PRODUCTS_FLOW, **flow}})

    def articles(self) -> dict[str, dict[str, Any]]:
        return {r["ART_CODE"]: r for r in self.platform.sandboxes.accountview.rows("ARTICLE")}

    def add_product(self, sku: str, **fields: Any) -> dict[str, Any]:
        body = {"sku": sku, "name": f"Testartikel {sku}", "price_excl_vat": "9.95", **fields}
        return self.platform.sandboxes.partspim.store.create("products", body, over_api=False)


def sellable_skus(platform: Platform) -> set[str]:
    skus: set[str] = set()
    for product in platform.sandboxes.partspim.store.all("products"):
        variants = product.get("variants") or []
        if product["type"] == "configurable" and variants:
            skus.update(v["sku"] for v in variants)
        else:
            skus.add(product["sku"])
    return skus
